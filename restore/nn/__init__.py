"""The factorised restorer's network."""

from .config import CONFIGS, ModelConfig
from .model import Aux, F2DNet, build_model

__all__ = ["CONFIGS", "Aux", "F2DNet", "ModelConfig", "build_model"]
