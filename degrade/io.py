"""Images at the edges: files and numpy arrays to the tensor contract, and back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image, ImageOps
from torch import Tensor

__all__ = ["from_numpy", "read_image", "to_numpy", "write_image"]


def read_image(path: str | Path) -> NDArray[np.uint8]:
    """Read a photo as ``(H, W, 3)`` uint8 RGB, EXIF orientation applied.

    Grey, palette and CMYK images are converted to RGB; transparency is composited on
    white; 16-bit images are scaled (not clipped) to 8 bits.

    Raises:
        ValueError: the file is not an image Pillow can read.
    """
    path = Path(path)
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)
            image.load()
    except (OSError, SyntaxError, ValueError) as error:  # Pillow's ways of saying "not an image"
        raise ValueError(f"{path}: not a readable image ({error})") from error
    return _to_rgb8(image)


def _to_rgb8(image: Image.Image) -> NDArray[np.uint8]:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        wide = np.asarray(image, dtype=np.float64)
        grey = np.clip(np.round(wide * (255.0 / 65535.0)), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def from_numpy(image: NDArray[np.generic], device: torch.device | str = "cpu") -> Tensor:
    """An ``(H, W, 3)`` uint8 or float image as a ``(1, 3, H, W)`` float32 tensor in [0, 1]."""
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"image must have shape (H, W, 3), got {array.shape}")
    if array.dtype == np.uint8:
        values = array.astype(np.float32) / np.float32(255.0)
    elif np.issubdtype(array.dtype, np.floating):
        values = array.astype(np.float32)
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
            raise ValueError("float images must hold finite values in [0, 1]")
    else:
        raise TypeError(f"image dtype must be uint8 or float, got {array.dtype}")
    tensor = torch.from_numpy(np.ascontiguousarray(values.transpose(2, 0, 1)))
    return tensor.unsqueeze(0).to(device)


def to_numpy(image: Tensor) -> NDArray[np.uint8]:
    """A ``(3, H, W)`` or ``(1, 3, H, W)`` tensor in [0, 1] as ``(H, W, 3)`` uint8."""
    if image.ndim == 4:
        if image.shape[0] != 1:
            raise ValueError(f"expected a single image, got batch shape {tuple(image.shape)}")
        image = image[0]
    quantised = (image.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8)
    return quantised.permute(1, 2, 0).cpu().numpy()


def write_image(path: str | Path, image: NDArray[np.uint8]) -> None:
    """Write ``(H, W, 3)`` or ``(H, W)`` uint8 as PNG, creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
