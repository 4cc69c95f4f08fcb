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

from .particles import (
    Medium,
    composite_particles,
    draw_slots,
    geometry_dtype,
    optical_depth,
    segments,
    splat_planes,
)

__all__ = ["SNOW_LAYERS", "flake_depth", "flake_opacity", "snow"]

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
    params = (density, radius, opacity, motion, angle)
    tau = flake_depth(seed, *params, size, (layer,), False, dtype)
    return 1.0 - torch.exp(-tau)


def flake_depth(
    seed: Tensor,
    density: Tensor,
    radius: Tensor,
    opacity: Tensor,
    motion: Tensor,
    angle: Tensor,
    size: tuple[int, int],
    layers: tuple[int, ...],
    apart: bool,
    dtype: torch.dtype,
) -> Tensor:
    """Optical depth of the flakes of ``layers``: ``(B, len(layers), H, W)`` if ``apart``,
    else their sum ``(B, 1, H, W)`` (enough when the layers share one colour).

    All layers are drawn together as one flat list of points. Each flake is stamped on
    the grid whose cell is the smallest power of two at least twice its blur sigma, so a
    flake's rendering depends on its own size only, never on the rest of the batch.
    Arguments are those of ``flake_opacity``.
    """
    height, width = size
    device = seed.device
    batch = seed.shape[0]
    result, dtype = dtype, geometry_dtype(dtype)
    planes = len(layers) if apart else 1
    scales = torch.tensor([SNOW_LAYERS[layer][0] for layer in layers], dtype=dtype, device=device)
    # A flake reaches two radii and its motion beyond its centre.
    radius, motion = radius.to(device=device, dtype=dtype), motion.to(device=device, dtype=dtype)
    reach = (2.0 * radius + motion).view(-1, 1) * scales
    streams = [_STREAM_FLAKES + 7 * layer for layer in layers]
    slots = draw_slots(seed, density, reach, scales, size, streams, 4, apart)
    if slots is None:
        return torch.zeros(batch, planes, height, width, dtype=result, device=device)

    # The active flakes as one flat list.
    keep, draws = slots.keep, [draw[slots.keep] for draw in slots.draws]
    scale = slots.scale[keep[1]]
    flake_radius = radius[keep[0]] * scale
    flake_motion = motion[keep[0]] * scale
    margin = 2.0 * flake_radius + flake_motion
    centre_x = draws[0] * (width + 2 * margin) - margin
    centre_y = draws[1] * (height + 2 * margin) - margin
    sigma = flake_radius / 2.0 * (1.0 + _JITTER * (2 * draws[2] - 1))
    sigma = sigma.clamp_min(0.25)
    # Cells of at least 2 sigma: the 3x3 stamp and the bilinear splat then make the blob.
    level = torch.ceil(torch.log2(2.0 * sigma)).clamp(0, _LEVELS - 1)
    cell = torch.exp2(level)
    peak = opacity.to(device=device, dtype=dtype)[keep[0]] * (0.4 + 0.6 * scale)
    peak = (peak.clamp(0.0, 0.999) * (1.0 + _JITTER * (2 * draws[3] - 1))).clamp(0.0, 0.999)
    # A Gaussian blob of peak optical depth tau holds mass 2 pi sigma^2 tau, spread evenly
    # over the points of the motion segment, ``cell`` apart.
    n_motion = torch.ceil(flake_motion / cell).clamp_min(0.0) + 1.0
    mass = optical_depth(peak) * (2.0 * math.pi) * sigma**2 / n_motion
    # Stamp: (2 * _STAMP + 1)^2 points one cell apart with separable Gaussian weights
    # summing to 1 (the 1-D weights of offsets -1, 0, 1 are e, 1, e over 1 + 2e).
    e = torch.exp(-0.5 * (cell / sigma) ** 2)
    side = torch.stack((e, torch.ones_like(e), e), dim=1) / (1.0 + 2.0 * e).view(-1, 1)
    stamp = (side.unsqueeze(2) * side.unsqueeze(1)).flatten(1) * mass.view(-1, 1)
    theta = angle.to(device=device, dtype=dtype)[keep[0]] * (math.pi / 180.0)
    flakes = torch.cat(
        (
            torch.stack(
                (
                    centre_x,
                    centre_y,
                    torch.sin(theta),
                    torch.cos(theta),
                    -0.5 * flake_motion,  # where the motion segment starts
                    flake_motion / (n_motion - 1.0).clamp_min(1.0),  # point spacing
                    cell,
                ),
                dim=1,
            ),
            stamp,
        ),
        dim=1,
    )
    points, j, owner = segments(n_motion.long(), flakes)
    cx, cy, sin, cos, start, spacing, cells = points[:, :7].unbind(1)
    along = torch.addcmul(start, j.to(dtype), spacing)
    offsets = torch.arange(-_STAMP, _STAMP + 1, device=device, dtype=dtype)
    stamp_y, stamp_x = torch.meshgrid(offsets, offsets, indexing="ij")
    cells = cells.view(-1, 1)
    xs = torch.addcmul(cx, along, sin).view(-1, 1) + stamp_x.reshape(1, -1) * cells
    ys = torch.addcmul(cy, along, cos).view(-1, 1) + stamp_y.reshape(1, -1) * cells
    stamps = stamp_x.numel()
    depth = splat_planes(
        slots.plane[owner].repeat_interleave(stamps),
        xs.view(-1),
        ys.view(-1),
        points[:, 7:].reshape(-1),
        batch * planes,
        size,
        dtype,
        level=level.long()[owner].repeat_interleave(stamps),
    )
    return depth.view(batch, planes, height, width).to(result)


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
    scene: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Snow over a linear image ``x`` ``(B, 3, H, W)``.

    Args:
        brightness: ``(B,)`` linear radiance of flakes and veil (a grey).
        veil: ``(B,)`` veil opacity in [0, 1).
        medium: haze between camera and flakes, or ``None`` for clear air.
        scene: ``(B, 1, H, W)`` depth of the scene in metres: layers behind it are hidden
            (``particles.visibility``); ``None``: every layer in front of the scene.
        Others: as in ``flake_opacity``.

    Returns:
        ``(image, mask)``, mask ``(B, 1, H, W)``.
    """
    size = (x.shape[-2], x.shape[-1])
    layers = tuple(range(len(SNOW_LAYERS)))

    def depth(apart: bool) -> Tensor:
        return flake_depth(
            seed, density, radius, opacity, motion, angle, size, layers, apart, x.dtype
        )

    distances = [distance for _, distance in SNOW_LAYERS]
    return composite_particles(x, depth, distances, _VEIL_DISTANCE, brightness, veil, medium, scene)
