"""What the ``Rain`` and ``Snow`` classes share: the ``medium`` context and colour."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ..color import srgb_to_linear
from ..functional.particles import Medium


def particle_context(owner: str, context: dict[str, Any]) -> Medium | None:
    """The optional ``medium`` context of a particle operator; nothing else is accepted."""
    medium = context.pop("medium", None)
    if context:
        raise TypeError(f"{owner} takes only the context 'medium', got {sorted(context)}")
    if medium is not None and not isinstance(medium, Medium):
        raise TypeError(f"{owner} medium must be a Medium, got {type(medium)!r}")
    return medium


def linear_brightness(brightness: Tensor, like: Tensor) -> Tensor:
    """Particle brightness is given as an sRGB grey; the physics wants it linear."""
    return srgb_to_linear(brightness.to(device=like.device, dtype=like.dtype))
