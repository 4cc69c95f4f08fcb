"""What the ``Rain`` and ``Snow`` classes share: the ``medium`` and ``depth`` contexts and
colour."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from .._validate import check_map
from ..color import srgb_to_linear
from ..functional.particles import Medium


def particle_context(
    owner: str, context: dict[str, Any], x: Tensor
) -> tuple[Medium | None, Tensor | None]:
    """The optional contexts of a particle operator, ``medium`` (the haze in front of the
    particles) and ``depth`` (the scene's, in metres: particles behind it are hidden);
    nothing else is accepted."""
    medium = context.pop("medium", None)
    depth = context.pop("depth", None)
    if context:
        raise TypeError(
            f"{owner} takes only the contexts 'medium' and 'depth', got {sorted(context)}"
        )
    if medium is not None and not isinstance(medium, Medium):
        raise TypeError(f"{owner} medium must be a Medium, got {type(medium)!r}")
    return medium, None if depth is None else check_map(depth, x, "depth")


def linear_brightness(brightness: Tensor, like: Tensor) -> Tensor:
    """Particle brightness is given as an sRGB grey; the physics wants it linear."""
    return srgb_to_linear(brightness.to(device=like.device, dtype=like.dtype))
