"""``Snow``: the operator class over ``functional.snow``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor

from ..functional.snow import snow
from .base import Operator, Params, Range, _Draws
from .particles import linear_brightness, particle_context

__all__ = ["Snow"]


@dataclass(frozen=True)
class Snow(Operator):
    """Snow: soft flakes in three depth layers, motion blur, and an optional veil.

    Sizes are in pixels of the image as given and describe the nearest layer; farther
    layers hold smaller, denser, fainter flakes (see ``functional.snow``). Contexts:
    ``medium``, the haze between camera and flakes (set by the tier composition);
    ``depth``, the scene's depth in metres ``(B, 1, H, W)``: layers behind it are hidden.

    Args:
        density: flakes per megapixel in the nearest layer; 0 turns flakes off.
        radius: flake radius, pixels.
        opacity: peak flake opacity.
        motion: motion-blur length, pixels (0 = frozen flakes).
        angle: fall direction, degrees from vertical.
        brightness: flake and veil grey level, sRGB.
        veil: opacity of the snow veil; 0 turns it off.
    """

    density: Range = (150.0, 600.0)
    radius: Range = (2.0, 5.0)
    opacity: Range = (0.6, 0.95)
    motion: Range = (0.0, 6.0)
    angle: Range = (-25.0, 25.0)
    brightness: Range = (0.85, 1.0)
    veil: Range = (0.0, 0.12)

    name: ClassVar[str] = "snow"
    param_names: ClassVar[tuple[str, ...]] = (
        "density",
        "radius",
        "opacity",
        "motion",
        "angle",
        "brightness",
        "veil",
        "seed",
    )
    _BOUNDS: ClassVar[dict[str, tuple[float, float]]] = {
        "density": (0.0, 1e5),
        "radius": (0.5, 64.0),
        "opacity": (0.0, 0.99),
        "motion": (0.0, 200.0),
        "angle": (-80.0, 80.0),
        "brightness": (0.0, 1.0),
        "veil": (0.0, 0.95),
    }

    def _draw(self, draw: _Draws) -> Params:
        return {name: draw.uniform(getattr(self, name)) for name in self.param_names[:-1]}

    def apply_linear(self, x: Tensor, params: Params, **context: Any) -> tuple[Tensor, Tensor]:
        medium, scene = particle_context("Snow", context, x)
        return snow(
            x,
            params["density"],
            params["radius"],
            params["opacity"],
            params["motion"],
            params["angle"],
            linear_brightness(params["brightness"], x),
            params["veil"],
            params["seed"],
            medium,
            scene,
        )
