"""Rain: motion-blurred streaks in depth layers, and an optional veil.

A drop falling during the exposure draws a streak along its fall direction: a line of
``length`` by ``width`` pixels at ``angle`` degrees from vertical (Garg & Nayar, "Vision
and Rain", IJCV 2007). Streaks are drawn in ``len(RAIN_LAYERS)`` layers at increasing
distance; a layer at relative scale ``z`` (``z = 1`` the nearest) has streaks ``z`` times
as long and wide, ``z ** -1.5`` times as many, and ``sqrt(z)`` times the opacity. Streak
geometry is drawn from the sample's seed; lengths and opacities vary +-20 % per streak,
angles +-3 degrees. Each streak is ``ceil(width)`` parallel lines at most a pixel apart,
each a row of points one pixel apart, tapered at both ends, splatted into an optical
depth map (see ``particles``); ``density`` counts streaks over the frame extended by one
streak length on every side, where their centres may fall. The veil, a thin scattering
layer of the same colour, is ``I (1 - v) + v C``.

The mask is the total compositing weight of rain over the scene:
``1 - (1 - v) * prod_l (1 - a_l)``; with the veil off it is the streak opacity.
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

__all__ = ["RAIN_LAYERS", "rain", "streak_depth", "streak_opacity"]

# (relative scale z, distance in metres) of each layer, nearest first.
RAIN_LAYERS: tuple[tuple[float, float], ...] = ((1.0, 2.0), (0.5, 4.0), (0.25, 8.0))
_VEIL_DISTANCE = 16.0
_STREAM_STREAKS = 31
_JITTER = 0.2
_ANGLE_JITTER = 3.0


def streak_opacity(
    seed: Tensor,
    density: Tensor,
    length: Tensor,
    width: Tensor,
    angle: Tensor,
    opacity: Tensor,
    size: tuple[int, int],
    layer: int,
    dtype: torch.dtype,
) -> Tensor:
    """Opacity ``(B, 1, H, W)`` of one layer of streaks.

    Args:
        seed: ``(B,)`` streak seeds.
        density: ``(B,)`` streaks per megapixel in the nearest layer.
        length: ``(B,)`` streak length in the nearest layer, pixels.
        width: ``(B,)`` streak width in the nearest layer, pixels (>= 1).
        angle: ``(B,)`` fall direction, degrees from vertical.
        opacity: ``(B,)`` peak streak opacity in the nearest layer.
        size: ``(H, W)``.
        layer: index into ``RAIN_LAYERS``.
    """
    params = (density, length, width, angle, opacity)
    tau = streak_depth(seed, *params, size, (layer,), False, dtype)
    return 1.0 - torch.exp(-tau)


def streak_depth(
    seed: Tensor,
    density: Tensor,
    length: Tensor,
    width: Tensor,
    angle: Tensor,
    opacity: Tensor,
    size: tuple[int, int],
    layers: tuple[int, ...],
    apart: bool,
    dtype: torch.dtype,
) -> Tensor:
    """Optical depth of the streaks of ``layers``: ``(B, len(layers), H, W)`` if ``apart``,
    else their sum ``(B, 1, H, W)`` (enough when the layers share one colour).

    All layers are drawn together as one flat list of points, one per pixel of length
    of each line of each streak, so the cost follows the number of points and not the
    number of layers. A sample's streaks depend only on its own parameters, never on the
    rest of the batch. Arguments are those of ``streak_opacity``.
    """
    height, width_px = size
    device = seed.device
    batch = seed.shape[0]
    result, dtype = dtype, geometry_dtype(dtype)
    planes = len(layers) if apart else 1
    scales = torch.tensor([RAIN_LAYERS[layer][0] for layer in layers], dtype=dtype, device=device)
    # A streak reaches one streak length beyond its centre.
    reach = length.to(device=device, dtype=dtype).view(-1, 1) * scales
    streams = [_STREAM_STREAKS + 7 * layer for layer in layers]
    slots = draw_slots(seed, density, reach, scales, size, streams, 5, apart)
    if slots is None:
        return torch.zeros(batch, planes, height, width_px, dtype=result, device=device)

    # The active streaks as one flat list, each split into its lines: a streak is
    # n_lines parallel lines at most a pixel apart, spanning width - 1 pixels.
    keep, draws = slots.keep, [draw[slots.keep] for draw in slots.draws]
    scale = slots.scale[keep[1]]
    margin = length.to(device=device, dtype=dtype)[keep[0]] * scale
    span = margin * (1.0 + _JITTER * (2 * draws[2] - 1))
    theta = angle.to(device=device, dtype=dtype)[keep[0]] + _ANGLE_JITTER * (2 * draws[3] - 1)
    theta = theta * (math.pi / 180.0)
    peak = (opacity.to(device=device, dtype=dtype)[keep[0]] * scale.sqrt()).clamp(0.0, 0.999)
    peak = (peak * (1.0 + _JITTER * (2 * draws[4] - 1))).clamp(0.0, 0.999)
    wide = (width.to(device=device, dtype=dtype)[keep[0]] * scale).clamp_min(1.0)
    n_lines = torch.ceil(wide - 1e-6)
    n_points = torch.ceil(span).clamp_min(1.0) + 1.0
    # Optical depth tau across the streak's whole width: tau * width per unit length,
    # shared by the lines, spread over points span / (n_points - 1) apart.
    spacing = span / (n_points - 1.0)
    streaks = torch.stack(
        (
            draws[0] * (width_px + 2 * margin) - margin,  # centre x
            draws[1] * (height + 2 * margin) - margin,  # centre y
            torch.cos(theta),
            torch.sin(theta),
            -0.5 * (wide - 1.0),  # offset of the first line across the fall direction
            (wide - 1.0) / (n_lines - 1.0).clamp_min(1.0),  # from one line to the next
            n_points,
            spacing,
            optical_depth(peak) * spacing * wide / n_lines,  # mass of a point
        ),
        dim=1,
    )
    per_line, line, owner = segments(n_lines.long(), streaks)
    plane = slots.plane[owner]
    cx, cy, cos, sin, first, step, count, spacing, mass = per_line.unbind(1)
    across = first + line.to(dtype) * step
    # Each line is a row of ``count`` points one pixel apart along the fall direction,
    # from its first point (x0, y0) in steps (dx, dy), tapered by 1 - (2u)^4 for u in
    # [-1/2, 1/2] (a flat body with soft ends). Per point only the six columns that vary
    # are repeated: the point list is the largest memory a call touches.
    start = -0.5 * (count - 1.0) * spacing  # where a line starts, along the fall
    lines = torch.stack(
        (
            cx + across * cos + start * sin,
            cy - across * sin + start * cos,
            spacing * sin,
            spacing * cos,
            2.0 / (count - 1.0),
            mass,
        ),
        dim=1,
    )
    per_point, j, owner = segments(count.long(), lines)
    x0, y0, dx, dy, to_unit, mass = per_point.unbind(1)
    j = j.to(dtype)
    taper = torch.addcmul(to_unit.new_full((), -1.0), j, to_unit).square_()  # (2u)^2
    weight = taper.square_().neg_().add_(1.0).mul_(mass)
    depth = splat_planes(
        plane[owner],
        torch.addcmul(x0, j, dx),
        torch.addcmul(y0, j, dy),
        weight,
        batch * planes,
        size,
        dtype,
    )
    return depth.view(batch, planes, height, width_px).to(result)


def rain(
    x: Tensor,
    density: Tensor,
    length: Tensor,
    width: Tensor,
    angle: Tensor,
    opacity: Tensor,
    brightness: Tensor,
    veil: Tensor,
    seed: Tensor,
    medium: Medium | None = None,
    scene: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Rain over a linear image ``x`` ``(B, 3, H, W)``.

    Args:
        brightness: ``(B,)`` linear radiance of streaks and veil (a grey).
        veil: ``(B,)`` veil opacity in [0, 1).
        medium: haze between camera and drops, or ``None`` for clear air.
        scene: ``(B, 1, H, W)`` depth of the scene in metres: layers behind it are hidden
            (``particles.visibility``); ``None``: every layer in front of the scene.
        Others: as in ``streak_opacity``.

    Returns:
        ``(image, mask)``, mask ``(B, 1, H, W)``.
    """
    size = (x.shape[-2], x.shape[-1])
    layers = tuple(range(len(RAIN_LAYERS)))

    def depth(apart: bool) -> Tensor:
        return streak_depth(
            seed, density, length, width, angle, opacity, size, layers, apart, x.dtype
        )

    distances = [distance for _, distance in RAIN_LAYERS]
    return composite_particles(x, depth, distances, _VEIL_DISTANCE, brightness, veil, medium, scene)
