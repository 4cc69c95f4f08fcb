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
"""

from .color import linear_to_srgb, srgb_to_linear
from .compose import DEGRADATIONS, ORDERS, TIERS, Composite, TierResult, degrade_tier, parse_tier
from .depth import depth_from_disparity, depth_to_tensor, load_depth
from .functional.particles import Medium
from .ops import Haze, LowLight, Operator, OpResult, Params, Rain, Snow

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
