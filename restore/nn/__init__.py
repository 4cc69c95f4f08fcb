"""The factorised restorer's network."""

from .config import CONFIGS, ModelConfig
from .model import Aux, F2DNet, build_model
from .statistics import ImageStatistics

__all__ = ["CONFIGS", "Aux", "F2DNet", "ImageStatistics", "ModelConfig", "build_model"]
