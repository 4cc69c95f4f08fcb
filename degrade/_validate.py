"""Input checks shared by every operator: errors that name the bad value, never warnings."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

_HALF_DTYPES = (torch.float16, torch.bfloat16)


def check_image(x: object, name: str = "x") -> Tensor:
    """Check the image contract: a ``(B, 3, H, W)`` float tensor with values in [0, 1].

    float32 and float64 are accepted on every device; float16 and bfloat16 only on CUDA.

    Raises:
        TypeError: ``x`` is not a floating-point tensor of an accepted dtype.
        ValueError: wrong shape, an empty batch, or values outside [0, 1] (NaN included).
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, 3, H, W), got {type(x)!r}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor with sRGB values in [0, 1], got dtype "
            f"{x.dtype} (convert uint8 images with x.float() / 255)"
        )
    if x.dtype in _HALF_DTYPES and x.device.type != "cuda":
        raise TypeError(f"{name} has dtype {x.dtype} on {x.device}; half precision is CUDA-only")
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"{name} must have shape (B, 3, H, W), got {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(x.shape)}")
    low, high = torch.aminmax(_dense_flat(x.detach()))
    low_value, high_value = float(low), float(high)
    # aminmax propagates NaN, and every comparison with NaN is False.
    if not (low_value >= 0.0 and high_value <= 1.0):
        if bool(torch.isnan(x).any()):
            raise ValueError(f"{name} contains NaN")
        raise ValueError(
            f"{name} must hold sRGB values in [0, 1], got min {low_value:.6g} max {high_value:.6g}"
        )
    return x


def _dense_flat(x: Tensor) -> Tensor:
    """``x``'s values as one flat view where its memory is dense in some dimension order
    (a photo permuted from ``(H, W, 3)``, channels-last): a reduction over a tensor that is
    not contiguous costs up to 8x as much. Other tensors are returned as they are."""
    order = sorted(range(x.ndim), key=lambda dim: x.stride(dim), reverse=True)
    permuted = x.permute(order)
    return permuted.view(-1) if permuted.is_contiguous() else x


def check_map(
    value: object, x: Tensor, name: str, *, low: float = 0.0, allow_inf: bool = False
) -> Tensor:
    """Check a per-pixel context map such as depth: ``(B, 1, H, W)`` or ``(1, 1, H, W)``.

    The map must match ``x``'s batch (or broadcast from 1) and spatial size exactly, be
    finite (``+inf`` allowed only if ``allow_inf``) and ``>= low``. It is returned on
    ``x``'s device and dtype, expanded to ``x``'s batch.
    """
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, 1, H, W), got {type(value)!r}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    batch, _, height, width = x.shape
    if value.ndim != 4 or value.shape[1] != 1 or value.shape[0] not in (1, batch):
        raise ValueError(
            f"{name} must have shape ({batch}, 1, {height}, {width}) or (1, 1, {height}, "
            f"{width}), got {tuple(value.shape)}"
        )
    if tuple(value.shape[-2:]) != (height, width):
        raise ValueError(
            f"{name} has spatial size {tuple(value.shape[-2:])} but the image is "
            f"{(height, width)}; resize the map with the image"
        )
    smallest_t, largest_t = torch.aminmax(value.detach())  # one pass; NaN propagates
    smallest, largest = float(smallest_t), float(largest_t)
    if math.isnan(smallest) or math.isnan(largest):
        raise ValueError(f"{name} contains NaN")
    if not allow_inf and (math.isinf(largest) or math.isinf(smallest)):
        raise ValueError(f"{name} contains inf")
    if smallest < low:
        raise ValueError(f"{name} must be >= {low}, got a minimum of {smallest:.6g}")
    return value.to(device=x.device, dtype=x.dtype).expand(batch, 1, height, width)


def check_range(
    name: str,
    value: object,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    integer: bool = False,
) -> tuple[float, float]:
    """Check a constructor range: a ``(low, high)`` pair inside ``[low, high]`` bounds.

    Returns the pair as floats. ``low == high`` fixes the value.
    """
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) != 2:
        raise TypeError(f"{name} must be a (low, high) pair, got {value!r}")
    first, second = value
    for item in (first, second):
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise TypeError(f"{name} must hold numbers, got {value!r}")
        if not math.isfinite(item):
            raise ValueError(f"{name} must be finite, got {value!r}")
        if integer and float(item) != int(item):
            raise ValueError(f"{name} must hold whole numbers, got {value!r}")
    if first > second:
        raise ValueError(f"{name} must satisfy low <= high, got {value!r}")
    if first < low or second > high:
        raise ValueError(f"{name} must lie within [{low}, {high}], got {value!r}")
    return float(first), float(second)


def check_params(params: object, names: Sequence[str], batch: int, owner: str) -> dict[str, Tensor]:
    """Check that ``params`` holds exactly ``names``, each a tensor with leading dim ``batch``."""
    if not isinstance(params, dict):
        raise TypeError(f"{owner} params must be a dict of tensors, got {type(params)!r}")
    missing = [key for key in names if key not in params]
    extra = [key for key in params if key not in names]
    if missing or extra:
        raise ValueError(f"{owner} params: missing {missing}, unexpected {extra}")
    for key in names:
        value = params[key]
        if not isinstance(value, Tensor):
            raise TypeError(f"{owner} param {key!r} must be a tensor, got {type(value)!r}")
        if value.ndim == 0 or value.shape[0] != batch:
            raise ValueError(
                f"{owner} param {key!r} must have leading dimension {batch} (the batch), got "
                f"shape {tuple(value.shape)}"
            )
    return params
