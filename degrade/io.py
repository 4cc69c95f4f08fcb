"""Images at the edges: files and numpy arrays to the tensor contract, and back."""

from __future__ import annotations

import contextlib
import struct
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

if TYPE_CHECKING:  # torch is imported where tensors are made: reading files needs none
    import torch
    from torch import Tensor

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "UnusableImageError",
    "from_numpy",
    "open_still",
    "read_image",
    "to_numpy",
    "write_image",
]


class UnusableImageError(ValueError):
    """A file that cannot be a clean RGB photo; ``reason`` says why, for a person."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


#: Pixels a photo may have unless the caller trusts it with more: Pillow's
#: decompression-bomb limit (about 89 megapixels), which skyclear refuses at, not warns at.
DEFAULT_MAX_PIXELS: int = Image.MAX_IMAGE_PIXELS or 89_478_485


def read_image(path: str | Path, max_pixels: int | None = None) -> NDArray[np.uint8]:
    """Read a photo as ``(H, W, 3)`` uint8 RGB, EXIF orientation applied.

    Grey, palette and CMYK images are converted to RGB; transparency is composited on
    white; 16-bit images are scaled (not clipped) to 8 bits. An image of more than
    ``max_pixels`` pixels (default ``DEFAULT_MAX_PIXELS``, Pillow's decompression-bomb
    limit) is refused, not opened.

    Raises:
        UnusableImageError: not an image, corrupt or truncated, a decompression bomb, animated,
            or a pixel format with no RGB meaning.
    """
    path = Path(path)
    with open_still(path, max_pixels) as opened:
        opened.load()
        return _to_rgb8(ImageOps.exif_transpose(opened), path)


@contextlib.contextmanager
def open_still(path: str | Path, max_pixels: int | None = None) -> Iterator[ImageFile.ImageFile]:
    """Open a single-frame image; any failure, inside the ``with`` block too, becomes an
    ``UnusableImageError`` whose reason says what is wrong with the file.

    An image of more than ``max_pixels`` pixels (default ``DEFAULT_MAX_PIXELS``) is refused
    as a decompression bomb before any pixel is decoded; a caller that trusts its photos
    raises the limit.
    """
    path = Path(path)
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    if limit < 1:
        raise ValueError(f"max_pixels must be positive, got {limit}")
    with warnings.catch_warnings(), _pixel_limit(limit):
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as opened:
                frames = getattr(opened, "n_frames", 1)
                if frames > 1:
                    raise UnusableImageError(path, f"animated ({frames} frames)")
                yield opened
        except UnusableImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise UnusableImageError(
                path,
                f"decompression bomb: more than {limit} pixels; for a photo you trust, raise "
                "the limit (--max-pixels)",
            ) from error
        except UnidentifiedImageError as error:
            raise UnusableImageError(path, "not an image") from error
        except FileNotFoundError as error:
            raise UnusableImageError(path, "no such file") from error
        except PermissionError as error:
            raise UnusableImageError(path, "not readable (permission denied)") from error
        except (OSError, SyntaxError, ValueError, EOFError, zlib.error, struct.error) as error:
            raise UnusableImageError(path, f"corrupt or truncated ({error})") from error


@contextlib.contextmanager
def _pixel_limit(limit: int) -> Iterator[None]:
    """Pillow's bomb check at ``limit`` for the ``with`` block. Pillow reads the limit from a
    module attribute only; it is set here and put back, and a command runs one open at a
    time per process."""
    before = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = limit
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = before


def _to_rgb8(image: Image.Image, path: Path) -> NDArray[np.uint8]:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        wide = np.asarray(image, dtype=np.float64)
        if wide.min() < 0 or wide.max() > 65535:
            raise UnusableImageError(path, f"{image.mode} values outside the 16-bit range")
        grey = np.round(wide * (255.0 / 65535.0)).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    if image.mode not in _CONVERTIBLE:
        raise UnusableImageError(path, f"unsupported pixel format {image.mode!r}")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        image.mode == "P" and "transparency" in image.info
    ):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


_CONVERTIBLE = frozenset(
    {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"}
)


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
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(values.transpose(2, 0, 1)))
    return tensor.unsqueeze(0).to(device)


def to_numpy(image: Tensor) -> NDArray[np.uint8]:
    """A ``(3, H, W)`` or ``(1, 3, H, W)`` tensor in [0, 1] as ``(H, W, 3)`` uint8."""
    if image.ndim == 4:
        if image.shape[0] != 1:
            raise ValueError(f"expected a single image, got batch shape {tuple(image.shape)}")
        image = image[0]
    import torch

    quantised = (image.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8)
    return quantised.permute(1, 2, 0).cpu().numpy()


def write_image(path: str | Path, image: NDArray[np.uint8]) -> None:
    """Write ``(H, W, 3)`` or ``(H, W)`` uint8 as PNG, creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
