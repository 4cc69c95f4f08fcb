"""Snow: soft flakes in depth layers, motion-blurred, and an optional veil.

Flakes are drawn in ``len(SNOW_LAYERS)`` layers; a layer at relative scale ``z`` (``z = 1``
the nearest) holds flakes of radius ``z * radius``, ``z ** -1.5`` times as many, opacity
``(0.4 + 0.6 z) * opacity`` and motion ``z * motion`` pixels: near flakes are large, soft
and sparse, far ones small and dense, as in Snow100K (Liu et al., "DesnowNet", TIP 2018).
A flake is a Gaussian blob (sigma = radius / 2) whose peak opacity is its ``opacity``,
smeared over ``motion`` pixels along the fall direction ``angle``; radius and opacity
vary +-25 % per flake. A flake is stamped (3 x 3 Gaussian weights, then a bilinear
splat) on a grid coarser by a power of two, chosen so its sigma spans at most half a
cell, and upsampled bilinearly: a blurred blob has nothing
finer than its own width, and rendering it at full resolution would need the large
kernels that are slow on a CPU. The veil is ``I (1 - v) + v C``.

The mask is the total compositing weight of snow: ``1 - (1 - v) * prod_l (1 - a_l)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from . import counter_rng
from .particles import (
    Medium,
    composite_layers,
    layer_colour,
    optical_depth,
    per_sample,
    rotate,
    splat,
)

__all__ = ["SNOW_LAYERS", "flake_opacity", "snow"]

# (relative scale z, distance in metres) of each layer, nearest first.
SNOW_LAYERS: tuple[tuple[float, float], ...] = ((1.0, 1.5), (0.5, 3.0), (0.25, 6.0))
_VEIL_DISTANCE = 12.0
_STREAM_FLAKES = 41
_JITTER = 0.25
_STAMP = 1  # blob stamp half-size in cells: (2 * _STAMP + 1) ** 2 points per flake
_LEVELS = 5  # grids of 1, 2, 4, 8 and 16 pixels per cell


def flake_opacity(
    seed: Tensor,
    density: Tensor,
    radius: Tensor,
    opacity: Tensor,
    motion: Tensor,
    angle: Tensor,
    size: tuple[int, int],
    layer: int,
    dtype: torch.dtype,
) -> Tensor:
    """Opacity ``(B, 1, H, W)`` of one layer of flakes.

    Each flake is stamped on the grid whose cell is the smallest power of two at least
    twice its blur sigma, so a flake's rendering depends on its own size only, never on
    the rest of the batch.

    Args:
        seed: ``(B,)`` flake seeds.
        density: ``(B,)`` flakes per megapixel in the nearest layer.
        radius: ``(B,)`` flake radius in the nearest layer, pixels.
        opacity: ``(B,)`` peak flake opacity in the nearest layer.
        motion: ``(B,)`` motion-blur length in the nearest layer, pixels.
        angle: ``(B,)`` fall direction, degrees from vertical.
        size: ``(H, W)``.
        layer: index into ``SNOW_LAYERS``.
    """
    height, width = size
    device = seed.device
    batch = seed.shape[0]
    scale = SNOW_LAYERS[layer][0]
    layer_radius = radius.to(device=device, dtype=dtype) * scale
    layer_motion = per_sample(motion.to(device=device, dtype=dtype) * scale, layer_radius)
    # Flake centres cover the frame plus a margin (flakes cross the edges), and the density
    # holds over that whole area.
    reach = (2.0 * layer_radius + layer_motion[:, 0]).double()
    area = (height + 2 * reach) * (width + 2 * reach)
    counts = torch.round(density.double().to(device) * area / 1e6 * scale**-1.5).long()
    slots = int(counts.max())
    if slots == 0:
        return torch.zeros(batch, 1, height, width, dtype=dtype, device=device)

    draws = counter_rng.uniform(seed, (slots, 4), _STREAM_FLAKES + 7 * layer, dtype)
    margin = 2.0 * per_sample(layer_radius, draws) + layer_motion
    centre_x = draws[..., 0] * (width + 2 * margin) - margin
    centre_y = draws[..., 1] * (height + 2 * margin) - margin
    sigma = per_sample(layer_radius, draws) / 2.0 * (1.0 + _JITTER * (2 * draws[..., 2] - 1))
    sigma = sigma.clamp_min(0.25)
    # Cells of at least 2 sigma: the 3x3 stamp and the bilinear splat then make the blob.
    level = torch.ceil(torch.log2(2.0 * sigma)).clamp(0, _LEVELS - 1)  # (B, N)
    cell = torch.exp2(level)
    peak = (per_sample(opacity, draws) * (0.4 + 0.6 * scale)).clamp(0.0, 0.999)
    peak = (peak * (1.0 + _JITTER * (2 * draws[..., 3] - 1))).clamp(0.0, 0.999)
    active = torch.arange(slots, device=device).view(1, -1) < counts.view(-1, 1)
    # A Gaussian blob of peak optical depth tau holds mass 2 pi sigma^2 tau.
    mass = optical_depth(peak) * active.to(dtype) * (2.0 * math.pi) * sigma**2

    # Stamp: (2 * _STAMP + 1)^2 points one cell apart, Gaussian weights summing to 1.
    offsets = torch.arange(-_STAMP, _STAMP + 1, device=device, dtype=dtype)
    stamp_y, stamp_x = torch.meshgrid(offsets, offsets, indexing="ij")
    stamp_x, stamp_y = stamp_x.reshape(1, 1, 1, -1), stamp_y.reshape(1, 1, 1, -1)
    sigma_cells = (sigma / cell)[..., None, None]
    profile = torch.exp(-(stamp_x**2 + stamp_y**2) / (2.0 * sigma_cells**2))
    profile = profile / profile.sum(dim=-1, keepdim=True)  # (B, N, 1, S)

    # Motion: points one cell apart along the fall direction, per flake.
    n_motion = torch.ceil(layer_motion / cell).clamp_min(0.0) + 1.0  # (B, N)
    longest = int(n_motion.max())
    j = torch.arange(longest, device=device, dtype=dtype).view(1, 1, -1, 1)
    count = n_motion[..., None, None]
    u = (j / (count - 1.0).clamp_min(1.0) - 0.5) * (count > 1).to(dtype)
    along = layer_motion[..., None, None] * u
    dx, dy = rotate(torch.zeros_like(along), along, per_sample(angle, draws)[..., None, None])
    cells = cell[..., None, None]
    xs = centre_x[..., None, None] + dx + stamp_x * cells  # (B, N, motion, stamp)
    ys = centre_y[..., None, None] + dy + stamp_y * cells
    weights = mass[..., None, None] * profile * ((j < count).to(dtype) / count)
    return 1.0 - torch.exp(
        -splat(xs, ys, weights, size, dtype, level=level[..., None, None].long())
    )


def snow(
    x: Tensor,
    density: Tensor,
    radius: Tensor,
    opacity: Tensor,
    motion: Tensor,
    angle: Tensor,
    brightness: Tensor,
    veil: Tensor,
    seed: Tensor,
    medium: Medium | None = None,
) -> tuple[Tensor, Tensor]:
    """Snow over a linear image ``x`` ``(B, 3, H, W)``.

    Args:
        brightness: ``(B,)`` linear radiance of flakes and veil (a grey).
        veil: ``(B,)`` veil opacity in [0, 1).
        medium: haze between camera and flakes, or ``None`` for clear air.
        Others: as in ``flake_opacity``.

    Returns:
        ``(image, mask)``, mask ``(B, 1, H, W)``.
    """
    size = (x.shape[-2], x.shape[-1])
    colour = brightness.to(device=x.device, dtype=x.dtype).view(-1, 1).expand(-1, 3)
    alphas = [
        flake_opacity(seed, density, radius, opacity, motion, angle, size, layer, x.dtype)
        for layer in range(len(SNOW_LAYERS))
    ]
    colours = [layer_colour(colour, distance, medium, x) for _, distance in SNOW_LAYERS]
    alphas.append(veil.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1))
    colours.append(layer_colour(colour, _VEIL_DISTANCE, medium, x))
    return composite_layers(x, alphas, colours)
