"""``Rain``: the operator class over ``functional.rain``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor

from ..functional.rain import rain
from .base import Operator, Params, Range, _Draws
from .particles import linear_brightness, particle_context

__all__ = ["Rain"]


@dataclass(frozen=True)
class Rain(Operator):
    """Rain: motion-blurred streaks in three depth layers, and an optional veil.

    Sizes are in pixels of the image as given and describe the nearest layer; farther
    layers are scaled down (see ``functional.rain``). Contexts: ``medium``, the haze
    between camera and drops (set by the tier composition); ``depth``, the scene's depth
    in metres ``(B, 1, H, W)``: layers behind the scene are hidden.

    Args:
        density: streaks per megapixel in the nearest layer; 0 turns streaks off.
        length: streak length, pixels.
        width: streak width, pixels (>= 1).
        angle: fall direction, degrees from vertical (positive leans right).
        opacity: peak streak opacity.
        brightness: streak and veil grey level, sRGB.
        veil: opacity of the rain veil; 0 turns it off.

    Example:
        >>> x = torch.rand(1, 3, 64, 64)
        >>> out = Rain(density=(0, 0), veil=(0, 0))(x)  # the identity, with a zero mask
        >>> bool((out.image - x).abs().max() < 1e-5), int(out.mask.count_nonzero())
        (True, 0)
    """

    density: Range = (400.0, 1600.0)
    length: Range = (15.0, 40.0)
    width: Range = (1.0, 2.0)
    angle: Range = (-20.0, 20.0)
    opacity: Range = (0.2, 0.5)
    brightness: Range = (0.75, 0.95)
    veil: Range = (0.0, 0.1)

    name: ClassVar[str] = "rain"
    param_names: ClassVar[tuple[str, ...]] = (
        "density",
        "length",
        "width",
        "angle",
        "opacity",
        "brightness",
        "veil",
        "seed",
    )
    _BOUNDS: ClassVar[dict[str, tuple[float, float]]] = {
        "density": (0.0, 1e5),
        "length": (1.0, 1000.0),
        "width": (1.0, 16.0),
        "angle": (-80.0, 80.0),
        "opacity": (0.0, 0.99),
        "brightness": (0.0, 1.0),
        "veil": (0.0, 0.95),
    }

    def _draw(self, draw: _Draws) -> Params:
        return {name: draw.uniform(getattr(self, name)) for name in self.param_names[:-1]}

    def apply_linear(self, x: Tensor, params: Params, **context: Any) -> tuple[Tensor, Tensor]:
        medium, scene = particle_context("Rain", context, x)
        return rain(
            x,
            params["density"],
            params["length"],
            params["width"],
            params["angle"],
            params["opacity"],
            linear_brightness(params["brightness"], x),
            params["veil"],
            params["seed"],
            medium,
            scene,
        )
