"""Haze: the atmospheric scattering model.

``I = J t + A (1 - t)``, ``t = exp(-beta d)`` (Koschmieder 1924; McCartney 1976; the model
of RESIDE, Li et al. 2019), in linear light. ``d`` is depth in metres, ``beta`` the
extinction coefficient in 1/m (meteorological visibility ``3.912 / beta``), ``A`` the
airlight colour. Non-homogeneous haze modulates ``beta`` by ``exp(s f) / mean(exp(s f))``
with ``f`` unit-variance fractal noise, so the mean extinction stays ``beta``.

The mask is the haze opacity ``1 - t``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .fields import fractal_field

__all__ = ["extinction_field", "geometric_depth", "haze", "scatter", "transmission"]

_LOG2_E = 1.0 / math.log(2.0)
_DENSITY_CELLS = 4
_STREAM_DENSITY = 21


def transmission(beta: Tensor, depth: Tensor) -> Tensor:
    """``t = exp(-beta d)``; ``beta`` is ``(B,)`` or ``(B, 1, H, W)``, depth ``(B, 1, H, W)``."""
    if beta.ndim == 1:
        beta = beta.to(device=depth.device, dtype=depth.dtype).view(-1, 1, 1, 1)
    # exp(-s) as exp2(-s log2 e): exp2 costs a third of exp on a CPU.
    return torch.mul(beta, depth).mul_(-_LOG2_E).exp2_()


def scatter(x: Tensor, t: Tensor, airlight: Tensor) -> Tensor:
    """``J t + A (1 - t)`` for linear ``x`` (B, 3, H, W), ``t`` (B, 1, H, W), ``A`` (B, 3)."""
    light = airlight.to(device=x.device, dtype=x.dtype).view(-1, 3, 1, 1)
    return light + (x - light) * t


def extinction_field(
    beta: Tensor, nonuniformity: Tensor, seed: Tensor, size: tuple[int, int], dtype: torch.dtype
) -> Tensor:
    """Per-pixel extinction ``beta * exp(s f) / mean(exp(s f))``, shape ``(B, 1, H, W)``."""
    field = fractal_field(seed, size, _DENSITY_CELLS, _STREAM_DENSITY, dtype)
    strength = nonuniformity.to(device=field.device, dtype=dtype).view(-1, 1, 1, 1)
    log_density = field * strength
    log_density = log_density - log_density.amax(dim=(-2, -1), keepdim=True)
    density = log_density.mul_(_LOG2_E).exp2_()
    density = density / density.mean(dim=(-2, -1), keepdim=True)
    return density * beta.to(device=field.device, dtype=dtype).view(-1, 1, 1, 1)


def geometric_depth(
    horizon: Tensor,
    near: Tensor,
    far: Tensor,
    size: tuple[int, int],
    dtype: torch.dtype,
    device: torch.device,
) -> Tensor:
    """A flat-ground depth prior for photos without a depth map (an approximation).

    A camera looking level over flat ground sees the ground at image row ``v`` (0 at the
    top, 1 at the bottom) at depth ``d = near * (1 - h) / (v - h)`` below the horizon row
    ``h`` (the bottom row is ``near`` metres away); the horizon and everything above it
    (sky, or whatever stands there) is at ``far``. Depth is clipped to ``[near, far]``.
    It knows nothing of the scene's objects: a close subject gets the ground's depth.

    Args:
        horizon: ``(B,)`` horizon row as a fraction of the height.
        near: ``(B,)`` depth of the bottom row, metres.
        far: ``(B,)`` depth of the horizon and above, metres.
        size: ``(H, W)``.
    """
    height, width = size
    rows = (torch.arange(height, dtype=dtype, device=device) + 0.5) / height
    h = horizon.to(device=device, dtype=dtype).view(-1, 1)
    near_m = near.to(device=device, dtype=dtype).view(-1, 1)
    far_m = far.to(device=device, dtype=dtype).view(-1, 1)
    below = (rows.view(1, -1) - h).clamp_min(1e-6)
    depth = torch.minimum(near_m * (1.0 - h) / below, far_m).clamp_min(near_m)
    return depth.view(-1, 1, height, 1).expand(-1, 1, height, width)


def haze(
    x: Tensor,
    depth: Tensor,
    beta: Tensor,
    airlight: Tensor,
    nonuniformity: Tensor,
    seed: Tensor,
) -> tuple[Tensor, Tensor]:
    """Haze a linear image ``x`` ``(B, 3, H, W)`` seen at ``depth`` ``(B, 1, H, W)`` metres.

    Args:
        beta: ``(B,)`` mean extinction coefficient, 1/m.
        airlight: ``(B, 3)`` airlight in linear light.
        nonuniformity: ``(B,)`` strength of the spatial variation of ``beta`` (0 = uniform).
        seed: ``(B,)`` seeds of that variation.

    Returns:
        ``(image, mask)`` with ``mask = 1 - t`` of shape ``(B, 1, H, W)``.
    """
    if bool((nonuniformity == 0).all()):
        t = transmission(beta, depth)  # homogeneous: skip the noise field entirely
    else:
        size = (x.shape[-2], x.shape[-1])
        t = transmission(extinction_field(beta, nonuniformity, seed, size, x.dtype), depth)
    return scatter(x, t, airlight), 1.0 - t
