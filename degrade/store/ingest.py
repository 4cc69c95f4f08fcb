"""From a folder of photos to the list of usable sources, and each source to S x S.

Every file under ``--src`` is a candidate, walked recursively in sorted order. A file that
cannot be a clean RGB photo is skipped with a reason: not an image, corrupt or truncated,
a decompression bomb, animated, an unsupported pixel format, too small for the size, or
a symlink that leads outside ``--src`` (never followed). Symlinked folders are not
descended into (listed as skipped): their targets inside ``--src`` are walked anyway.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from ..depth import load_depth
from ..io import UnusableImageError, read_image
from .kept import KeptPhotos

if TYPE_CHECKING:
    from ..depth_model import DepthModel

__all__ = [
    "Skipped",
    "find_depth",
    "find_sources",
    "fit_depth",
    "fit_photo",
    "load_source_depth",
    "read_source",
    "source_depth",
]


@dataclass(frozen=True)
class Skipped:
    """A file left out, and why."""

    file: str
    reason: str


def _candidates(src: Path) -> tuple[list[str], list[Skipped]]:
    root = src.resolve()
    files: list[str] = []
    skipped: list[Skipped] = []
    for folder, dirs, names in os.walk(src, followlinks=False):
        dirs.sort()
        here = Path(folder)
        for name in list(dirs):
            link = here / name
            if not link.is_symlink():
                continue
            relative_dir = link.relative_to(src).as_posix()
            if link.resolve().is_relative_to(root):
                reason = "symlinked folder not followed (its target is walked where it lies)"
            else:
                reason = "symlink leads outside --src"
            skipped.append(Skipped(relative_dir, reason))
        for name in sorted(names):
            path = here / name
            relative = path.relative_to(src).as_posix()
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                skipped.append(Skipped(relative, "symlink leads outside --src"))
                continue
            files.append(relative)
    return sorted(files), skipped


def read_source(path: Path, size: int, max_pixels: int | None = None) -> NDArray[np.uint8]:
    """Read a photo at full size and check it can give a ``size`` x ``size`` crop.

    A photo of more than ``max_pixels`` pixels (default: Pillow's decompression-bomb limit,
    see ``read_image``) is refused before it is decoded.

    Raises:
        UnusableImageError: the file cannot be a clean photo of at least ``size`` pixels.
    """
    photo = read_image(path, max_pixels)
    height, width = photo.shape[:2]
    if min(height, width) < size:
        raise UnusableImageError(
            path, f"too small: {width}x{height}, --size {size} needs a short side >= {size}"
        )
    return photo


def _check_item(item: tuple[Path, str, int, KeptPhotos | None, int | None]) -> str | None:
    src, relative, size, keep, max_pixels = item
    try:
        photo = read_source(src / relative, size, max_pixels)
    except UnusableImageError as error:
        return error.reason
    if keep is not None:
        keep.save(relative, fit_photo(photo, size), (photo.shape[0], photo.shape[1]))
    return None


def find_sources(
    src: Path,
    size: int,
    mapper: Callable[..., Iterable[str | None]] = map,
    keep: KeptPhotos | None = None,
    max_pixels: int | None = None,
) -> tuple[list[str], list[Skipped]]:
    """Usable photos under ``src`` (relative POSIX paths, sorted) and the files skipped.

    Args:
        src: the folder of photos.
        size: the crop size every source must reach.
        mapper: ``map`` or a process pool's ``imap``, to decode candidates in parallel.
        keep: where to keep each usable photo fitted to ``size``, for the writers.
        max_pixels: the largest photo to decode (``None``: Pillow's decompression-bomb
            limit); a larger one is skipped as a decompression bomb.
    """
    candidates, skipped = _candidates(src)
    sources = []
    items = [(src, relative, size, keep, max_pixels) for relative in candidates]
    reasons = mapper(_check_item, items)
    for relative, reason in zip(candidates, reasons, strict=True):
        if reason is None:
            sources.append(relative)
        else:
            skipped.append(Skipped(relative, reason))
    return sources, sorted(skipped, key=lambda item: item.file)


def _crop_box(
    height: int, width: int, size: int
) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    scale = size / min(height, width)
    resized = (max(size, round(width * scale)), max(size, round(height * scale)))
    left = (resized[0] - size) // 2
    top = (resized[1] - size) // 2
    return resized, (left, top, left + size, top + size)


def fit_photo(photo: NDArray[np.uint8], size: int) -> NDArray[np.uint8]:
    """Resize the short side to ``size`` (Lanczos, antialiased) and crop the centre."""
    fitted = _fit(Image.fromarray(photo), size, Image.Resampling.LANCZOS)
    return np.asarray(fitted, dtype=np.uint8).copy()


def fit_depth(depth: NDArray[np.float32], size: int) -> NDArray[np.float32]:
    """Bring a depth map to ``size`` x ``size`` with the photo's geometry (bilinear)."""
    image = Image.fromarray(np.asarray(depth, dtype=np.float32), mode="F")
    return np.asarray(_fit(image, size, Image.Resampling.BILINEAR), dtype=np.float32).copy()


def _fit(image: Image.Image, size: int, resample: Image.Resampling) -> Image.Image:
    """The centre ``size`` x ``size`` crop of ``image`` resized to a short side of ``size``.

    Only the crop is resampled: the resize is given the crop's box in source pixels, so
    it samples where resizing the whole image and cropping would, for a third less work
    on a 3:2 photo. Pixels may differ from that by Pillow's rounding between its two
    passes (it may take them in the other order): a code or two on photos, more where
    Lanczos overshoots on noise.
    """
    width, height = image.size
    resized, (left, top, right, bottom) = _crop_box(height, width, size)
    if (width, height) == resized:
        return image.crop((left, top, right, bottom))
    sx, sy = width / resized[0], height / resized[1]
    return image.resize((size, size), resample, box=(left * sx, top * sy, right * sx, bottom * sy))


def find_depth(depth_dir: Path, source: str) -> Path | None:
    """The depth file of ``source`` in ``depth_dir``, matched by stem.

    Looked up at the source's relative folder, as ``STEM.depth.npy``, ``STEM.npy`` or
    ``STEM.png`` (16-bit, millimetres).
    """
    relative = Path(source)
    folder = depth_dir / relative.parent
    for name in (f"{relative.stem}.depth.npy", f"{relative.stem}.npy", f"{relative.stem}.png"):
        if (folder / name).is_file():
            return folder / name
    return None


def load_source_depth(
    depth_dir: Path, source: str, photo_shape: tuple[int, int], size: int
) -> NDArray[np.float32]:
    """Read, check and fit the depth of ``source`` (metres)."""
    path = find_depth(depth_dir, source)
    if path is None:
        raise FileNotFoundError(
            f"no depth map for {source} in {depth_dir} (STEM.depth.npy, STEM.npy or STEM.png)"
        )
    depth = load_depth(path)
    if depth.shape != photo_shape:
        raise ValueError(
            f"{path}: depth is {depth.shape[1]}x{depth.shape[0]} but the photo is "
            f"{photo_shape[1]}x{photo_shape[0]}"
        )
    return fit_depth(depth, size)


def source_depth(
    source: str,
    clean: NDArray[np.uint8],
    photo_shape: tuple[int, int],
    depth_dir: Path | None = None,
    model: DepthModel | None = None,
) -> tuple[NDArray[np.float32] | None, str]:
    """The depth of one source at the store's size, and where it came from: its file in
    ``depth_dir`` (``"file"``), else ``model`` run on the fitted photo ``clean``
    (``"model"``), else none (``"prior"``: haze uses its depth prior)."""
    if depth_dir is not None and find_depth(depth_dir, source) is not None:
        return load_source_depth(depth_dir, source, photo_shape, clean.shape[0]), "file"
    if model is not None:
        return model(clean), "model"
    return None, "prior"
