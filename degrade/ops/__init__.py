"""The operator classes: ranges, a sampler and replay over the functional core."""

from .base import Operator, OpResult, Params, Range
from .haze import Haze
from .lowlight import LowLight
from .rain import Rain
from .snow import Snow

__all__ = ["Haze", "LowLight", "OpResult", "Operator", "Params", "Rain", "Range", "Snow"]
