"""Pure functions of the physics: explicit parameters in, images and masks out.

Everything here works on linear-light ``(B, 3, H, W)`` tensors with ``(B,)`` parameter
tensors, is deterministic given its parameters (random fields come from the per-sample
``seed`` through ``counter_rng``) and differentiable with respect to the image.
"""

from .counter_rng import normal, uniform
from .fields import fractal_field, smooth_field
from .haze import extinction_field, geometric_depth, haze, scatter, transmission
from .lowlight import illumination_gain, low_light, sensor_noise
from .particles import Medium, composite_layers, optical_depth, splat, splat_planes
from .rain import RAIN_LAYERS, rain, streak_depth, streak_opacity
from .snow import SNOW_LAYERS, flake_depth, flake_opacity, snow

__all__ = [
    "RAIN_LAYERS",
    "SNOW_LAYERS",
    "Medium",
    "composite_layers",
    "extinction_field",
    "flake_depth",
    "flake_opacity",
    "fractal_field",
    "geometric_depth",
    "haze",
    "illumination_gain",
    "low_light",
    "normal",
    "optical_depth",
    "rain",
    "scatter",
    "sensor_noise",
    "smooth_field",
    "snow",
    "splat",
    "splat_planes",
    "streak_depth",
    "streak_opacity",
    "transmission",
    "uniform",
]
