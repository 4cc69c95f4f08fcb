"""Smooth random fields: the spatial variation of illumination and of haze density.

A field is a lattice of standard-normal values (drawn from the sample's seed) upsampled
with bicubic interpolation. Upsampling goes through an intermediate grid of at most
``_DETAIL`` pixels per side and then bilinearly to full size: bicubic to full size costs
several milliseconds on a CPU, while a smooth field sampled every few pixels loses nothing
visible to linear interpolation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from . import counter_rng

__all__ = ["fractal_field", "smooth_field"]

_DETAIL = 96  # side of the intermediate grid, in pixels


def _lattice_shape(height: int, width: int, cells: int) -> tuple[int, int]:
    """Lattice points per side: ``cells`` cells along the longer side, square cells."""
    longer = max(height, width)
    rows = max(1, round(cells * height / longer)) + 1
    cols = max(1, round(cells * width / longer)) + 1
    return rows, cols


def _intermediate_size(height: int, width: int) -> tuple[int, int]:
    scale = min(1.0, _DETAIL / max(height, width))
    return max(2, round(height * scale)), max(2, round(width * scale))


def smooth_field(
    seed: Tensor, size: tuple[int, int], cells: int, stream: int, dtype: torch.dtype
) -> Tensor:
    """Zero-mean, unit-variance smooth random field of shape ``(B, 1, H, W)``.

    Args:
        seed: ``(B,)`` per-sample seeds.
        size: ``(H, W)`` of the output.
        cells: lattice cells along the longer side (feature size ~ longer side / cells).
        stream: stream of ``counter_rng`` to draw the lattice from.
        dtype: floating dtype of the result.
    """
    return fractal_field(seed, size, cells, stream, dtype, octaves=1)


def fractal_field(
    seed: Tensor,
    size: tuple[int, int],
    cells: int,
    stream: int,
    dtype: torch.dtype,
    *,
    octaves: int = 4,
    persistence: float = 0.5,
) -> Tensor:
    """Fractal (multi-octave) noise of shape ``(B, 1, H, W)``, standardised per sample.

    Octave ``k`` has ``cells * 2**k`` cells and amplitude ``persistence**k``; the sum is
    shifted and scaled to zero mean and unit standard deviation over each image, so the
    strength parameter of a caller means the same thing at every size.
    """
    height, width = size
    batch = seed.shape[0]
    detail = _intermediate_size(height, width)
    total = torch.zeros(batch, 1, *detail, dtype=dtype, device=seed.device)
    for octave in range(octaves):
        rows, cols = _lattice_shape(height, width, cells * 2**octave)
        lattice = counter_rng.normal(seed, (1, rows, cols), stream + 97 * octave, dtype)
        layer = F.interpolate(lattice, size=detail, mode="bicubic", align_corners=True)
        total = total.add_(layer, alpha=persistence**octave)
    total = total - total.mean(dim=(-2, -1), keepdim=True)
    total = total / total.std(dim=(-2, -1), keepdim=True).clamp_min(1e-6)
    if detail != (height, width):
        total = F.interpolate(total, size=(height, width), mode="bilinear", align_corners=True)
    return total
