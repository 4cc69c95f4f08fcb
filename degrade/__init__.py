"""skyclear.degrade: physically modelled low light, haze, rain and snow with masks.

Images are batched ``(B, 3, H, W)`` float tensors, sRGB-encoded in [0, 1], on any device;
physics happens in linear light. Each operator returns the degraded image, a
``(B, 1, H, W)`` mask of how strongly it acts at each pixel, and the parameters that
replay it exactly.

Example:
    >>> import torch
    >>> from skyclear.degrade import Haze, degrade_tier
    >>> x = torch.rand(4, 3, 128, 128)
    >>> g = torch.Generator().manual_seed(0)
    >>> hazy = Haze(beta=(0.5, 0.5))(x, generator=g, depth=torch.full((1, 1, 128, 128), 2.0))
    >>> out = degrade_tier(x, "low_haze_rain", generator=g)
    >>> out.image.shape, out.masks.shape
    (torch.Size([4, 3, 128, 128]), torch.Size([4, 4, 128, 128]))

The facade loads its submodules on first use (as scikit-image does), so that reading
``TIERS`` or running ``degrade --help`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .names import DEGRADATIONS, ORDERS, TIERS

if TYPE_CHECKING:
    from .color import linear_to_srgb, srgb_to_linear
    from .compose import Composite, TierResult, degrade_tier, parse_tier
    from .depth import depth_from_disparity, depth_to_tensor, load_depth
    from .functional.particles import Medium
    from .ops import Haze, LowLight, Operator, OpResult, Params, Rain, Snow

# Public name -> the submodule that defines it.
_LAZY: dict[str, str] = {
    "linear_to_srgb": "color",
    "srgb_to_linear": "color",
    "Composite": "compose",
    "TierResult": "compose",
    "degrade_tier": "compose",
    "parse_tier": "compose",
    "depth_from_disparity": "depth",
    "depth_to_tensor": "depth",
    "load_depth": "depth",
    "Medium": "functional.particles",
    "Haze": "ops",
    "LowLight": "ops",
    "OpResult": "ops",
    "Operator": "ops",
    "Params": "ops",
    "Rain": "ops",
    "Snow": "ops",
}

__all__ = [
    "DEGRADATIONS",
    "ORDERS",
    "TIERS",
    "Composite",
    "Haze",
    "LowLight",
    "Medium",
    "OpResult",
    "Operator",
    "Params",
    "Rain",
    "Snow",
    "TierResult",
    "degrade_tier",
    "depth_from_disparity",
    "depth_to_tensor",
    "linear_to_srgb",
    "load_depth",
    "parse_tier",
    "srgb_to_linear",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
