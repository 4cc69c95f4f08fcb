"""Depth maps for haze, read from files or converted from stereo disparity.

Depth is in metres everywhere in skyclear. A disparity map is never used as depth: it is
converted by ``depth = focal_baseline / (disparity + doffs)`` (``focal_baseline`` = focal
length in pixels times baseline in metres, ``doffs`` the principal-point offset between
the two cameras in pixels, as in the Middlebury calibration files), after occluded or
unknown disparities are filled from their row.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from PIL import Image

if TYPE_CHECKING:  # torch is imported where tensors are made: reading files needs none
    import torch
    from torch import Tensor

__all__ = ["depth_from_disparity", "depth_to_tensor", "fill_invalid_disparity", "load_depth"]

# Motorcycle (Middlebury 2014) as shipped downscaled 4x in scikit-image: f = 994.978 px,
# baseline 193.001 mm, doffs = 31.086 px (documented in skimage.data.stereo_motorcycle).
MOTORCYCLE_FOCAL_BASELINE = 994.978 * 0.193001
MOTORCYCLE_DOFFS = 31.086


def load_depth(path: str | Path, *, scale: float = 0.001) -> NDArray[np.float32]:
    """Read a depth map in metres from a 16-bit PNG or a ``.npy`` file.

    Args:
        path: a ``.png`` holding 16-bit integer depth, or a ``.npy`` holding an ``(H, W)``
            float array already in metres.
        scale: metres per PNG unit (0.001 for the common millimetre encoding; ignored for
            ``.npy``).

    Returns:
        ``(H, W)`` float32 depth in metres.

    Raises:
        ValueError: unknown extension, a PNG that is not 16-bit single-channel, a wrong
            shape, or non-finite or negative depth.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        array = np.load(path, allow_pickle=False)
        if not np.issubdtype(array.dtype, np.floating) and not np.issubdtype(
            array.dtype, np.integer
        ):
            raise ValueError(f"{path}: depth must be numeric, got dtype {array.dtype}")
        depth = array.astype(np.float32)
    elif suffix == ".png":
        with Image.open(path) as image:
            if image.mode not in ("I;16", "I;16B", "I;16L", "I"):
                raise ValueError(
                    f"{path}: a depth PNG must be 16-bit single-channel, got mode {image.mode!r}"
                    " (an 8-bit PNG cannot hold metric depth)"
                )
            depth = np.asarray(image, dtype=np.float32) * np.float32(scale)
    else:
        raise ValueError(f"{path}: depth files must be .png (16-bit) or .npy, got {suffix!r}")
    if depth.ndim == 3 and depth.shape[-1] == 1:
        depth = depth[..., 0]
    if depth.ndim != 2:
        raise ValueError(f"{path}: depth must be an (H, W) map, got shape {depth.shape}")
    _check_depth(depth, str(path))
    return depth


def fill_invalid_disparity(disparity: NDArray[np.floating]) -> NDArray[np.float32]:
    """Fill NaN, infinite and non-positive disparities from their row.

    Each invalid pixel takes the smaller (farther) of the nearest valid disparities to its
    left and right on the same row, the usual fill for stereo occlusions, which are
    background seen by one camera only. Rows with no valid pixel take the map's minimum.
    """
    disp = np.asarray(disparity, dtype=np.float32)
    valid = np.isfinite(disp) & (disp > 0)
    if not valid.any():
        raise ValueError("disparity map has no valid (finite, positive) value")
    height, width = disp.shape
    columns = np.broadcast_to(np.arange(width), (height, width))
    left_index = np.maximum.accumulate(np.where(valid, columns, -1), axis=1)
    right_index = np.where(valid, columns, width)[:, ::-1]
    right_index = np.minimum.accumulate(right_index, axis=1)[:, ::-1]
    floor_value = np.float32(disp[valid].min())
    padded = np.concatenate([disp, np.full((height, 1), np.inf, np.float32)], axis=1)
    padded = np.where(np.isfinite(padded) & (padded > 0), padded, np.inf)
    rows = np.arange(height)[:, None]
    left = padded[rows, np.where(left_index >= 0, left_index, width)]
    right = padded[rows, right_index]
    filled = np.minimum(left, right)
    filled = np.where(np.isfinite(filled), filled, floor_value)
    return np.where(valid, disp, filled).astype(np.float32)


def depth_from_disparity(
    disparity: NDArray[np.floating], focal_baseline: float, doffs: float = 0.0
) -> NDArray[np.float32]:
    """Convert stereo disparity (pixels) to depth (metres).

    ``depth = focal_baseline / (disparity + doffs)`` after ``fill_invalid_disparity``.

    Args:
        disparity: ``(H, W)`` disparity in pixels; NaN/inf/<=0 mark unknown pixels.
        focal_baseline: focal length in pixels times baseline in metres (> 0).
        doffs: disparity offset of the rectified pair, pixels (>= 0).
    """
    if not focal_baseline > 0:
        raise ValueError(f"focal_baseline must be > 0 (pixels * metres), got {focal_baseline}")
    if not doffs >= 0:
        raise ValueError(f"doffs must be >= 0 pixels, got {doffs}")
    disp = np.asarray(disparity)
    if disp.ndim != 2:
        raise ValueError(f"disparity must be an (H, W) map, got shape {disp.shape}")
    depth = np.float32(focal_baseline) / (fill_invalid_disparity(disp) + np.float32(doffs))
    return depth.astype(np.float32)


def depth_to_tensor(depth: NDArray[np.floating], device: torch.device | str = "cpu") -> Tensor:
    """An ``(H, W)`` depth array as a ``(1, 1, H, W)`` float32 tensor."""
    array = np.asarray(depth, dtype=np.float32)
    if array.ndim != 2:
        raise ValueError(f"depth must be an (H, W) map, got shape {array.shape}")
    _check_depth(array, "depth")
    import torch

    return torch.from_numpy(np.ascontiguousarray(array)).to(device).view(1, 1, *array.shape)


def _check_depth(depth: NDArray[np.floating], where: str) -> None:
    if not np.isfinite(depth).all():
        raise ValueError(f"{where}: depth contains NaN or inf")
    if depth.size and float(depth.min()) < 0:
        raise ValueError(f"{where}: depth must be >= 0 metres, got minimum {float(depth.min())}")
