"""What rain and snow share: splatting particles into an opacity map, and compositing.

Particles are rendered as sums of weighted points splatted bilinearly into an
optical-depth map ``tau`` (one ``index_add_`` for the whole batch, no per-particle or
per-sample Python loop), which becomes opacity ``a = 1 - exp(-tau)``: overlapping
particles of opacities ``o_i`` then combine as ``1 - prod(1 - o_i)``, as alpha
compositing demands. Layers are composited far to near with the ``over`` operator
``I (1 - a) + a C`` in linear light (in closed form, see ``composite_layers``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "Medium",
    "composite_layers",
    "layer_colour",
    "optical_depth",
    "splat",
]


@dataclass(frozen=True)
class Medium:
    """The haze between the camera and a particle: ``(B,)`` extinction, ``(B, 3)`` airlight.

    A particle ``d`` metres away is seen through the same atmosphere as the scene, so its
    colour ``C`` reaches the camera as ``C t + A (1 - t)`` with ``t = exp(-beta d)``.
    """

    beta: Tensor
    airlight: Tensor


def per_sample(value: Tensor, like: Tensor) -> Tensor:
    """A ``(B,)`` parameter as a ``(B, 1)`` column in ``like``'s dtype and device, to
    broadcast over a sample's particles."""
    return value.to(device=like.device, dtype=like.dtype).view(-1, 1)


def optical_depth(opacity: Tensor) -> Tensor:
    """``tau = -log(1 - o)``: the optical depth of a particle of opacity ``o``.

    Computed in float32 at least: in bfloat16 the 0.999 cap rounds to 1 and ``tau`` to inf.
    """
    wide = opacity.float() if opacity.dtype in (torch.float16, torch.bfloat16) else opacity
    return (-torch.log1p(-wide.clamp(0.0, 0.999))).to(opacity.dtype)


def splat(
    x: Tensor,
    y: Tensor,
    weight: Tensor,
    size: tuple[int, int],
    dtype: torch.dtype,
    level: Tensor | None = None,
) -> Tensor:
    """Accumulate weighted points into a ``(B, 1, H, W)`` density map, bilinearly.

    A point may be drawn on a coarser grid, ``2**level`` pixels per cell, which suits
    blurred particles: their blur is wider than a cell, and their cost on the coarse grid
    is a fraction of the cost at full resolution. Every grid is one cell larger on every
    side than the image and positions are clamped to it, so one ``index_add_`` serves
    all points of all samples on all grids; the border (clamped and outlying mass) is
    cropped away, and the grids are collapsed from the coarsest by bilinear upsampling.

    Args:
        x: ``(B, ...)`` horizontal positions in pixels (pixel ``i`` spans ``[i, i + 1)``).
        y: ``(B, ...)`` vertical positions in pixels.
        weight: ``(B, ...)`` mass of each point in pixel units (0 for padding points).
        size: ``(H, W)`` of the map.
        dtype: floating dtype of the map.
        level: integer grid level of each point, broadcastable to ``x`` (``None``: 0).
    """
    height, width = size
    batch, shape = x.shape[0], x.shape
    x = x.reshape(batch, -1)
    y = y.reshape(batch, -1)
    mass = weight.to(dtype).expand(shape).reshape(batch, -1)
    pick = None if level is None else level.expand(shape).reshape(batch, -1)
    lowest, highest = (0, 0) if pick is None else (int(pick.min()), int(pick.max()))
    used = range(lowest, highest + 1)
    grids = [(math.ceil(height / 2**k), math.ceil(width / 2**k)) for k in used]
    strides = [w + 2 for _, w in grids]
    planes = [(h + 2) * (w + 2) for h, w in grids]
    starts = [0]
    for plane in planes:
        starts.append(starts[-1] + batch * plane)
    sample = torch.arange(batch, device=x.device, dtype=torch.int64).view(-1, 1)
    scale: Tensor | float
    stride: Tensor | int
    if pick is None or lowest == highest:
        scale, stride = 2.0**-lowest, strides[0]
        base = sample * planes[0]
        x_max = torch.tensor(grids[0][1] + 1.0, device=x.device, dtype=dtype)
        y_max = torch.tensor(grids[0][0] + 1.0, device=x.device, dtype=dtype)
    else:
        slot = pick - lowest

        def table(values: list[float] | list[int], kind: torch.dtype) -> Tensor:
            return torch.tensor(values, device=x.device, dtype=kind)[slot]

        scale = table([2.0**-k for k in used], dtype)
        stride = table(strides, torch.int64)
        base = table(starts[:-1], torch.int64) + sample * table(planes, torch.int64)
        x_max = table([w + 1.0 for _, w in grids], dtype)
        y_max = table([h + 1.0 for h, _ in grids], dtype)
    mass = mass * (scale * scale)  # mass per coarse cell becomes density per pixel
    # Grid coordinates: cell j's centre at j + 0.5, image cell i at i + 1.
    px = torch.minimum((x * scale + 0.5).clamp_min(0.0), x_max).to(dtype)
    py = torch.minimum((y * scale + 0.5).clamp_min(0.0), y_max).to(dtype)
    # A point on the far edge would have x0 = W + 1; one cell in, its taps stay inside.
    x0 = torch.minimum(px.floor(), x_max - 1.0)
    y0 = torch.minimum(py.floor(), y_max - 1.0)
    fx = px - x0
    fy = py - y0
    corner = base + y0.to(torch.int64) * stride + x0.to(torch.int64)
    upper = mass - mass * fy
    lower = mass * fy
    below = corner + stride
    index = torch.cat((corner, corner + 1, below, below + 1), dim=1)
    taps = torch.cat((upper - upper * fx, upper * fx, lower - lower * fx, lower * fx), dim=1)
    buffer = torch.zeros(starts[-1], dtype=dtype, device=x.device)
    buffer.index_add_(0, index.reshape(-1), taps.reshape(-1))

    # Collapse from the coarsest grid used: upsample x2, add the next finer grid, down to
    # full resolution. A grid's contribution takes the same path (x2 steps from its level
    # to 0) whichever other levels are present, so a sample never depends on its batch.
    total: Tensor | None = None
    for level_index in reversed(range(lowest, highest + 1)):
        k = level_index - lowest
        grid_h, grid_w = grids[k]
        grid = buffer[starts[k] : starts[k + 1]].view(batch, 1, grid_h + 2, grid_w + 2)
        grid = grid[:, :, 1 : grid_h + 1, 1 : grid_w + 1]
        total = grid if total is None else _upsample2(total, (grid_h, grid_w)) + grid
    assert total is not None
    for level_index in reversed(range(lowest)):
        total = _upsample2(
            total, (math.ceil(height / 2**level_index), math.ceil(width / 2**level_index))
        )
    return total


def _upsample2(grid: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear x2 upsampling, cropped to the next grid's ``size``."""
    up = F.interpolate(grid, scale_factor=2, mode="bilinear", align_corners=False)
    return up[:, :, : size[0], : size[1]]


def composite_layers(
    x: Tensor, alphas: list[Tensor], colours: list[Tensor]
) -> tuple[Tensor, Tensor]:
    """Composite layers over ``x`` and return ``(image, total opacity)``.

    Applying ``I <- I (1 - a_l) + a_l C_l`` from the farthest layer to the nearest equals
    ``x T + sum_l w_l C_l`` with ``w_l = a_l * prod_{k nearer than l} (1 - a_k)`` and
    ``T = prod_l (1 - a_l)``; that form touches the three colour channels only twice.

    Args:
        x: ``(B, 3, H, W)`` linear image behind every layer.
        alphas: opacities ``(B, 1, H, W)`` (or broadcastable), nearest layer first.
        colours: linear colours ``(B, 3)``, in the same order.
    """
    batch, _, height, width = x.shape
    clear = x.new_ones(batch, 1, height, width)
    weights = []
    for alpha in alphas:
        weights.append(alpha * clear)
        clear = clear - weights[-1]
    stacked = torch.stack([w.expand(batch, 1, height, width) for w in weights], dim=1)
    colour = torch.stack(colours, dim=1).to(device=x.device, dtype=x.dtype)  # (B, L, 3)
    light = torch.bmm(colour.transpose(1, 2), stacked.view(batch, len(alphas), -1))
    image = torch.addcmul(light.view(batch, 3, height, width), x, clear)
    return image, 1.0 - clear


def layer_colour(colour: Tensor, depth_m: float, medium: Medium | None, like: Tensor) -> Tensor:
    """The linear colour ``(B, 3)`` of particles of colour ``colour`` ``depth_m`` metres away."""
    colour = colour.to(device=like.device, dtype=like.dtype)
    if medium is None:
        return colour
    beta = medium.beta.to(device=like.device, dtype=like.dtype).view(-1, 1)
    airlight = medium.airlight.to(device=like.device, dtype=like.dtype).view(-1, 3)
    t = torch.exp(-beta * depth_m)
    return airlight + (colour - airlight) * t


def rotate(dx: Tensor, dy: Tensor, angle_deg: Tensor) -> tuple[Tensor, Tensor]:
    """Rotate offsets given along/across the fall direction into image axes.

    ``dy`` runs along the fall direction (down the image at angle 0), ``dx`` across it;
    a positive angle leans the fall to the right.
    """
    theta = angle_deg * (math.pi / 180.0)
    cos, sin = torch.cos(theta), torch.sin(theta)
    return dx * cos + dy * sin, dy * cos - dx * sin
