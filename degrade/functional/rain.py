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

__all__ = ["RAIN_LAYERS", "rain", "streak_opacity"]

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

    A sample's streaks depend only on its own parameters, never on the rest of the batch:
    each streak has its own number of points (one per pixel of length), and the batch
    pads to the longest with massless points.

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
    height, width_px = size
    device = seed.device
    batch = seed.shape[0]
    scale = RAIN_LAYERS[layer][0]
    layer_length = length.to(device=device, dtype=dtype) * scale
    # Streak centres cover the frame plus one streak length on every side (streaks cross
    # the edges), and the density holds over that whole area.
    area = (height + 2 * layer_length.double()) * (width_px + 2 * layer_length.double())
    counts = torch.round(density.double().to(device) * area / 1e6 * scale**-1.5).long()
    slots = int(counts.max())
    if slots == 0:
        return torch.zeros(batch, 1, height, width_px, dtype=dtype, device=device)

    draws = counter_rng.uniform(seed, (slots, 5), _STREAM_STREAKS + 7 * layer, dtype)
    margin = per_sample(layer_length, draws)
    centre_x = draws[..., 0] * (width_px + 2 * margin) - margin
    centre_y = draws[..., 1] * (height + 2 * margin) - margin
    streak_length = margin * (1.0 + _JITTER * (2 * draws[..., 2] - 1))
    streak_angle = per_sample(angle, draws) + _ANGLE_JITTER * (2 * draws[..., 3] - 1)
    peak = (per_sample(opacity, draws) * math.sqrt(scale)).clamp(0.0, 0.999)
    peak = (peak * (1.0 + _JITTER * (2 * draws[..., 4] - 1))).clamp(0.0, 0.999)
    active = torch.arange(slots, device=device).view(1, -1) < counts.view(-1, 1)
    tau = optical_depth(peak) * active.to(dtype)

    # A streak is ceil(width) parallel lines at most a pixel apart, each a row of points
    # one pixel apart along the fall direction: shapes (B, N, line, point). Padding lines
    # and points (past a streak's own counts) weigh nothing.
    streak_width = (per_sample(width, draws) * scale).clamp_min(1.0)  # (B, 1)
    n_lines = torch.ceil(streak_width - 1e-6)
    q = torch.arange(int(n_lines.max()), device=device, dtype=dtype).view(1, 1, -1, 1)
    lines = n_lines[..., None, None]
    across = ((q / (lines - 1.0).clamp_min(1.0)) - 0.5) * (streak_width[..., None, None] - 1.0)
    n_points = torch.ceil(streak_length).clamp_min(1.0) + 1.0  # (B, N)
    j = torch.arange(int(n_points.max()), device=device, dtype=dtype).view(1, 1, 1, -1)
    count = n_points[..., None, None]
    u = (j / (count - 1.0) - 0.5).clamp(-0.5, 0.5)
    dx, dy = rotate(
        across.expand(-1, slots, -1, -1),
        streak_length[..., None, None] * u,
        streak_angle[..., None, None],
    )
    taper = 1.0 - (2.0 * u) ** 4  # flat body, soft ends
    spacing = (streak_length / (n_points - 1.0))[..., None, None]
    # Optical depth tau across the streak's whole width: tau * width per unit length.
    per_line = (streak_width / n_lines)[..., None, None] * (q < lines).to(dtype)
    mass = (tau[..., None, None] * spacing) * per_line * taper * (j < count).to(dtype)
    tau_map = splat(
        centre_x[..., None, None] + dx, centre_y[..., None, None] + dy, mass, size, dtype
    )
    return 1.0 - torch.exp(-tau_map)


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
) -> tuple[Tensor, Tensor]:
    """Rain over a linear image ``x`` ``(B, 3, H, W)``.

    Args:
        brightness: ``(B,)`` linear radiance of streaks and veil (a grey).
        veil: ``(B,)`` veil opacity in [0, 1).
        medium: haze between camera and drops, or ``None`` for clear air.
        Others: as in ``streak_opacity``.

    Returns:
        ``(image, mask)``, mask ``(B, 1, H, W)``.
    """
    size = (x.shape[-2], x.shape[-1])
    colour = brightness.to(device=x.device, dtype=x.dtype).view(-1, 1).expand(-1, 3)
    alphas = [
        streak_opacity(seed, density, length, width, angle, opacity, size, layer, x.dtype)
        for layer in range(len(RAIN_LAYERS))
    ]
    colours = [layer_colour(colour, distance, medium, x) for _, distance in RAIN_LAYERS]
    alphas.append(veil.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1))
    colours.append(layer_colour(colour, _VEIL_DISTANCE, medium, x))
    return composite_layers(x, alphas, colours)
