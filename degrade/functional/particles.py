"""What rain and snow share: splatting particles into an opacity map, and compositing.

Particles are rendered as sums of weighted points splatted bilinearly into an
optical-depth map ``tau`` (one ``index_add_`` for the whole batch, no per-particle or
per-sample Python loop), which becomes opacity ``a = 1 - exp(-tau)``: overlapping
particles of opacities ``o_i`` then combine as ``1 - prod(1 - o_i)``, as alpha
compositing demands. Layers are composited far to near with the ``over`` operator
``I (1 - a) + a C`` in linear light (in closed form, see ``composite_layers``).

Given the scene's depth, a layer ``z`` metres away is hidden wherever the scene is nearer:
its optical depth is scaled by the visibility ``sigmoid((d - z) / (s z))`` (``s`` =
``OCCLUSION_SOFTNESS``), so a streak passes behind a wall a metre away and stays in front
of a street twenty metres away, with a soft transition where the scene's depth is close to
the layer's; the veil likewise. A depth of 0 (a hole in a depth map) hides nothing.
Without the scene's depth every layer lies in front of everything.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .._scratch import scratch_like
from . import counter_rng

_LOG2_E = 1.0 / math.log(2.0)
#: Width of the transition from hidden to seen, as a fraction of the layer's distance.
OCCLUSION_SOFTNESS = 0.1

__all__ = [
    "OCCLUSION_SOFTNESS",
    "Medium",
    "Slots",
    "composite_layers",
    "composite_particles",
    "draw_slots",
    "layer_colour",
    "optical_depth",
    "segments",
    "splat",
    "splat_planes",
    "visibility",
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


def geometry_dtype(dtype: torch.dtype) -> torch.dtype:
    """Particles are placed and splatted in float32 at least: half precision cannot even
    count the pixels of a large image."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def optical_depth(opacity: Tensor) -> Tensor:
    """``tau = -log(1 - o)``: the optical depth of a particle of opacity ``o``.

    Computed in float32 at least: in bfloat16 the 0.999 cap rounds to 1 and ``tau`` to inf.
    """
    wide = opacity.float() if opacity.dtype in (torch.float16, torch.bfloat16) else opacity
    return (-torch.log1p(-wide.clamp(0.0, 0.999))).to(opacity.dtype)


@dataclass(frozen=True)
class Slots:
    """The particles of several layers of a batch, before their shapes are drawn.

    Slot ``n`` of every sample belongs to layer ``which[n]``; a layer has as many slots
    as its fullest sample has particles, and the slots past a sample's own count are
    inactive. ``draws`` holds each sample's uniform values for every slot (the same,
    whatever the batch); ``keep`` indexes the active ``(sample, slot)`` pairs, in order,
    and ``plane`` is the output map of each active particle.
    """

    draws: tuple[Tensor, ...]
    scale: Tensor
    keep: tuple[Tensor, Tensor]
    plane: Tensor


def draw_slots(
    seed: Tensor,
    density: Tensor,
    reach: Tensor,
    scales: Tensor,
    size: tuple[int, int],
    streams: list[int],
    values: int,
    apart: bool,
) -> Slots | None:
    """Count the particles of each layer and draw ``values`` uniforms for each.

    A layer of relative scale ``z`` holds ``round(density / 1e6 * (H + 2 r)(W + 2 r) *
    z ** -1.5)`` particles: centres cover the frame plus the particles' reach ``r`` on
    every side (particles cross the edges), and the density holds over that whole area.

    Args:
        seed: ``(B,)`` particle seeds.
        density: ``(B,)`` particles per megapixel in the nearest layer.
        reach: ``(B, L)`` margin of each layer, pixels.
        scales: ``(L,)`` relative scale of each layer.
        size: ``(H, W)``.
        streams: the ``counter_rng`` stream of each layer.
        values: uniforms per particle.
        apart: one output plane per layer (else one plane for all).

    Returns:
        The slots, or ``None`` if no sample has a particle.
    """
    height, width = size
    device, batch = seed.device, seed.shape[0]
    area = (height + 2 * reach.double()) * (width + 2 * reach.double())
    rate = density.to(device=device, dtype=torch.float64).view(-1, 1) / 1e6
    counts = torch.round(rate * area * scales.double() ** -1.5).long()
    slots = counts.max(dim=0).values.tolist()  # per layer, the batch's largest count
    if sum(slots) == 0:
        return None
    uniforms = counter_rng.uniform_streams(seed, [values * n for n in slots], streams, scales.dtype)
    which = torch.repeat_interleave(torch.tensor(slots, device=device))  # layer of each slot
    rank = torch.cat([torch.arange(n, device=device) for n in slots])  # slot in its layer
    keep = (rank < counts[:, which]).nonzero(as_tuple=True)
    planes = len(slots) if apart else 1
    plane = keep[0] * planes + (which[keep[1]] if apart else 0)
    draws = uniforms.view(batch, -1, values).unbind(-1)
    return Slots(draws, scales[which], (keep[0], keep[1]), plane)


def segments(sizes: Tensor, rows: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Row ``i`` of ``rows`` repeated ``sizes[i]`` times, each copy's rank ``0 ..
    sizes[i] - 1`` within its row, and the row it came from."""
    total = int(sizes.sum())
    owner = torch.repeat_interleave(sizes, output_size=total)
    starts = torch.cumsum(sizes, 0).sub_(sizes)
    rank = torch.arange(total, device=sizes.device).sub_(torch.index_select(starts, 0, owner))
    return torch.index_select(rows, 0, owner), rank, owner


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
    is a fraction of the cost at full resolution (see ``splat_planes``).

    Args:
        x: ``(B, ...)`` horizontal positions in pixels (pixel ``i`` spans ``[i, i + 1)``).
        y: ``(B, ...)`` vertical positions in pixels.
        weight: ``(B, ...)`` mass of each point in pixel units (0 for padding points).
        size: ``(H, W)`` of the map.
        dtype: floating dtype of the map.
        level: integer grid level of each point, broadcastable to ``x`` (``None``: 0).
    """
    batch, shape = x.shape[0], x.shape
    plane = torch.arange(batch, device=x.device).view(-1, *([1] * (len(shape) - 1)))
    return splat_planes(
        plane.expand(shape).reshape(-1),
        x.reshape(-1),
        y.reshape(-1),
        weight.to(dtype).expand(shape).reshape(-1),
        batch,
        size,
        dtype,
        None if level is None else level.expand(shape).reshape(-1),
    ).view(batch, 1, *size)


def splat_planes(
    plane: Tensor,
    x: Tensor,
    y: Tensor,
    mass: Tensor,
    planes: int,
    size: tuple[int, int],
    dtype: torch.dtype,
    level: Tensor | None = None,
) -> Tensor:
    """Accumulate a flat list of weighted points into ``(planes, H, W)`` density maps.

    Point ``i`` adds ``mass[i]`` to plane ``plane[i]`` around ``(x[i], y[i])``, split
    bilinearly over the four nearest cells of its grid: the full-resolution grid, or for
    ``level[i] = k`` one of ``2**k`` pixels per cell. Every grid is one cell larger on every
    side than the image and positions are clamped to it, so one ``index_add_`` serves all
    points of all planes on all grids; the border (clamped and outlying mass) is cropped
    away, and the grids are collapsed from the coarsest by bilinear upsampling. A plane's
    map depends only on its own points, in their order, never on the other planes.

    Args:
        plane: ``(P,)`` integer plane of each point, in ``[0, planes)``.
        x, y: ``(P,)`` positions in pixels (pixel ``i`` spans ``[i, i + 1)``).
        mass: ``(P,)`` mass of each point in pixel units.
        planes: number of maps.
        size: ``(H, W)`` of the maps.
        dtype: floating dtype of the maps.
        level: ``(P,)`` integer grid level of each point (``None``: 0).
    """
    height, width = size
    device = x.device
    lowest, highest = 0, 0
    if level is not None and level.numel() > 0:
        lowest, highest = int(level.min()), int(level.max())
    used = range(lowest, highest + 1)
    grids = [(math.ceil(height / 2**k), math.ceil(width / 2**k)) for k in used]
    strides = [w + 2 for _, w in grids]
    areas = [(h + 2) * (w + 2) for h, w in grids]
    starts = [0]
    for area in areas:
        starts.append(starts[-1] + planes * area)
    plane = plane.to(torch.int64)
    scale: Tensor | float
    stride: Tensor | int
    if level is None or lowest == highest:
        scale, stride = 2.0**-lowest, strides[0]
        base = plane * areas[0]
        x_max = torch.tensor(grids[0][1] + 1.0, device=device, dtype=dtype)
        y_max = torch.tensor(grids[0][0] + 1.0, device=device, dtype=dtype)
    else:
        slot = level - lowest

        def table(values: list[float] | list[int], kind: torch.dtype) -> Tensor:
            return torch.tensor(values, device=device, dtype=kind)[slot]

        scale = table([2.0**-k for k in used], dtype)
        stride = table(strides, torch.int64)
        base = table(starts[:-1], torch.int64) + plane * table(areas, torch.int64)
        x_max = table([w + 1.0 for _, w in grids], dtype)
        y_max = table([h + 1.0 for h, _ in grids], dtype)
    mass = mass.to(dtype) * (scale * scale)  # mass per coarse cell becomes density per pixel
    # Grid coordinates: cell j's centre at j + 0.5, image cell i at i + 1.
    px = torch.minimum((x * scale + 0.5).clamp_min(0.0), x_max).to(dtype)
    py = torch.minimum((y * scale + 0.5).clamp_min(0.0), y_max).to(dtype)
    # A point on the far edge would have x0 = W + 1; one cell in, its taps stay inside.
    x0 = torch.minimum(px.floor(), x_max - 1.0)
    y0 = torch.minimum(py.floor(), y_max - 1.0)
    fx = px - x0
    fy = py - y0
    corner = base + y0.to(torch.int64) * stride + x0.to(torch.int64)
    lower = mass * fy
    upper = mass - lower
    below = corner + stride
    index = torch.cat((corner, corner + 1, below, below + 1))
    upper_right, lower_right = upper * fx, lower * fx
    taps = torch.cat((upper - upper_right, upper_right, lower - lower_right, lower_right))
    buffer = torch.zeros(starts[-1], dtype=dtype, device=device)
    buffer.index_add_(0, index, taps)

    # Collapse from the coarsest grid used: upsample x2, add the next finer grid, down to
    # full resolution. A grid's contribution takes the same path (x2 steps from its level
    # to 0) whichever other levels are present, so a plane never depends on the others.
    total: Tensor | None = None
    for k in reversed(range(len(grids))):
        grid_h, grid_w = grids[k]
        grid = buffer[starts[k] : starts[k + 1]].view(planes, 1, grid_h + 2, grid_w + 2)
        grid = grid[:, :, 1 : grid_h + 1, 1 : grid_w + 1]
        total = grid if total is None else _upsample2(total, (grid_h, grid_w)).add_(grid)
    assert total is not None
    for level_index in reversed(range(lowest)):
        total = _upsample2(
            total, (math.ceil(height / 2**level_index), math.ceil(width / 2**level_index))
        )
    return total.reshape(planes, height, width)


def _upsample2(grid: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear x2 upsampling, cropped to the next grid's ``size``."""
    up = F.interpolate(grid, scale_factor=2, mode="bilinear", align_corners=False)
    return up[:, :, : size[0], : size[1]]


def composite_layers(
    x: Tensor, tau: Tensor, colours: Tensor, veil: Tensor, veil_colour: Tensor
) -> tuple[Tensor, Tensor]:
    """Composite particle layers and a veil over ``x``; return ``(image, total weight)``.

    The veil (uniform opacity ``v``) is the farthest layer, and the particle layers of
    optical depth ``tau_l`` (opacity ``a_l = 1 - exp(-tau_l)``) lie in front of it, nearest
    first. Applying ``I <- I (1 - a) + a C`` from far to near equals, with the
    transmittance ``E_l = exp(-(tau_1 + ... + tau_l))`` of the ``l`` nearest layers,

        ``I = C_1 + sum_{l < L} (C_{l+1} - C_l) E_l + E_L ((1 - v) x + v C_v - C_L)``

    and the total weight of the layers is ``1 - (1 - v) E_L``. Layers that share a colour
    may be summed into one ``tau`` beforehand: the result is the same.

    Args:
        x: ``(B, 3, H, W)`` linear image behind every layer.
        tau: ``(B, L, H, W)`` optical depth of each layer, nearest first; consumed (the
            transmittances are computed in its memory).
        colours: ``(B, L, 3)`` linear colour of each layer.
        veil: ``(B,)`` veil opacity, or ``(B, 1, H, W)`` where it varies (hidden in part).
        veil_colour: ``(B, 3)`` linear veil colour.
    """
    batch, layers, height, width = tau.shape
    colours = colours.to(device=x.device, dtype=x.dtype)
    veil_colour = veil_colour.to(device=x.device, dtype=x.dtype).view(batch, 3, 1, 1)
    if veil.ndim == 1:
        veil = per_sample(veil, x).view(-1, 1, 1, 1)
    clear = 1.0 - veil
    farthest = colours[:, -1].view(batch, 3, 1, 1)
    # exp(-s) as exp2(-s log2 e): exp2 costs a third of exp on a CPU.
    transmit = (tau.cumsum_(1) if layers > 1 else tau).mul_(-_LOG2_E).exp2_()
    last = transmit[:, layers - 1 : layers]
    # (1 - v) x + v C_v - C_L; where the veil varies over the image, as
    # (x - C_v)(1 - v) + C_v - C_L, which needs no image-sized v C_v.
    if veil.shape[-1] == 1:
        image = torch.mul(x, clear).add_(veil * veil_colour - farthest)
    else:
        image = torch.sub(x, veil_colour).mul_(clear).add_(veil_colour - farthest)
    image.mul_(last)
    if layers > 1:
        steps = (colours[:, 1:] - colours[:, :-1]).transpose(1, 2)  # (B, 3, L - 1)
        nearer = transmit[:, : layers - 1]
        tracked = torch.is_grad_enabled() and (nearer.requires_grad or steps.requires_grad)
        if not (nearer.is_contiguous() or tracked):
            # A splat's planes keep their padding: lay them out flat in a reused buffer.
            nearer = scratch_like("particle-nearer", nearer, memory="contiguous").copy_(nearer)
        flat = nearer.reshape(batch, layers - 1, height * width)
        image.view(batch, 3, height * width).baddbmm_(steps, flat)
    image.add_(colours[:, 0].view(batch, 3, 1, 1))
    return image, last.mul(clear).neg_().add_(1.0)


def visibility(scene: Tensor, distances: list[float], out: Tensor | None = None) -> Tensor:
    """How much of each layer ``z`` metres away (one per ``distances``) is seen in front of
    a scene at depth ``scene`` ``(B, 1, H, W)``: ``sigmoid((d - z) / (OCCLUSION_SOFTNESS
    z))``, ``(B, len(distances), H, W)``, computed in that one tensor's memory (``out``
    where given)."""
    z = torch.tensor(distances, device=scene.device, dtype=scene.dtype).view(1, -1, 1, 1)
    return torch.sub(scene, z, out=out).mul_(1.0 / (OCCLUSION_SOFTNESS * z)).sigmoid_()


def composite_particles(
    x: Tensor,
    depth: Callable[[bool], Tensor],
    distances: list[float],
    veil_distance: float,
    brightness: Tensor,
    veil: Tensor,
    medium: Medium | None,
    scene: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Composite grey particle layers ``distances`` metres away (nearest first) and their
    veil over ``x``; return ``(image, mask)``.

    ``depth(apart)`` gives the layers' optical depth, ``(B, L, H, W)`` if ``apart``, else
    summed into ``(B, 1, H, W)``. Through a ``medium`` each layer has its own colour; in
    clear air all have ``brightness``, and the summed map is all that is needed. Given the
    ``scene``'s depth ``(B, 1, H, W)`` in metres, each layer and the veil are hidden where
    the scene is nearer (``visibility``).
    """
    apart = medium is not None or scene is not None
    colour = brightness.to(device=x.device, dtype=x.dtype).view(-1, 1).expand(-1, 3)
    near = distances if apart else distances[:1]
    colours = torch.stack([layer_colour(colour, d, medium, x) for d in near], dim=1)
    veil_colour = layer_colour(colour, veil_distance, medium, x)
    tau = depth(apart)
    if scene is not None:
        # A depth of 0 is a hole in a depth map (as PNG depth maps mark them), not a wall
        # at the lens: particles there are seen.
        scene = scene.to(device=x.device, dtype=x.dtype)
        if scene.numel() and float(scene.amin()) <= 0:  # a copy only where there are holes
            scene = scene.masked_fill(scene <= 0, math.inf)
        if torch.is_grad_enabled() and (tau.requires_grad or scene.requires_grad):
            tau = tau.mul_(visibility(scene, distances))
        else:  # consumed at once: a buffer this thread reuses
            shape = (scene.shape[0], len(distances), *scene.shape[-2:])
            held = scratch_like("particle-visibility", scene.expand(shape), memory="contiguous")
            tau = tau.mul_(visibility(scene, distances, out=held))
        veil = visibility(scene, [veil_distance]).mul_(per_sample(veil, x).view(-1, 1, 1, 1))
    return composite_layers(x, tau, colours, veil, veil_colour)


def layer_colour(colour: Tensor, depth_m: float, medium: Medium | None, like: Tensor) -> Tensor:
    """The linear colour ``(B, 3)`` of particles of colour ``colour`` ``depth_m`` metres away."""
    colour = colour.to(device=like.device, dtype=like.dtype)
    if medium is None:
        return colour
    beta = medium.beta.to(device=like.device, dtype=like.dtype).view(-1, 1)
    airlight = medium.airlight.to(device=like.device, dtype=like.dtype).view(-1, 3)
    t = torch.exp(-beta * depth_m)
    return airlight + (colour - airlight) * t
