"""Photos in and out of the restorer: any still image, to the tensor contract and back in
its own form.

``read_photo`` gives the ``(1, 3, H, W)`` float32 tensor in [0, 1] that the restorer takes,
upright (EXIF orientation applied to the pixels), and what writing the result back in the
input's form needs; ``write_photo`` writes the restored tensor as a PNG of that form:

* grey in, grey out (``1``, ``L``, 16-bit ``I;16``): the grey channel is repeated into RGB
  for the network, and the restored RGB is written back as its BT.601 luma
  ``0.299 R + 0.587 G + 0.114 B``, the weights Pillow's own RGB-to-grey conversion uses,
  so a restoration that leaves a grey picture grey gives back its grey exactly;
* alpha in, alpha out (``RGBA``, ``LA``, palettes with transparency): the alpha channel is
  kept unchanged, bit for bit, and reattached to the restored colours;
* 16-bit in, 16-bit out: 16-bit grey, grey+alpha, RGB and RGBA PNGs and 16-bit colour
  TIFFs are read at full precision and written as 16-bit PNGs;
* palette, CMYK and YCbCr images become RGB;
* colour management (``restore.colour``): an 8-bit photo tagged with an RGB profile other
  than sRGB (Adobe RGB, Display P3) is converted to sRGB for the network and its result
  is tagged sRGB (``write_photo(..., keep_profile=True)`` converts it back and embeds the
  photo's own profile); an sRGB or grey profile is carried over as it is; a profile that
  cannot be read, or one that is not RGB, leaves the photo taken as sRGB, with a note; a
  16-bit photo with another RGB profile is restored in its own space (Pillow converts 8
  bits only), with a note. The notes are in ``Photo.notes``, for the caller to show;
* EXIF is kept, with its orientation reset to upright (the pixels are turned already).

Refused, with ``UnusableImageError`` naming the file and the reason: files that are not
images, corrupt or truncated ones, animated or multi-frame ones, decompression bombs
(Pillow's limit, about 89 megapixels) and pixel formats with no RGB meaning (float
images, for instance).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image, ImageFile, PngImagePlugin
from skyclear.degrade.io import UnusableImageError, open_still
from torch import Tensor

from .colour import ProfileError, from_srgb, profile_info, srgb_profile, to_srgb
from .png16 import read_wide_png, wide_rawmode, write_png16

__all__ = [
    "LUMA",
    "Photo",
    "UnusableImageError",
    "orient",
    "read_photo",
    "restored_pixels",
    "save_png",
    "write_photo",
]

#: BT.601 luma weights of R, G, B: how a restored grey photo is brought back to one channel.
LUMA = (0.299, 0.587, 0.114)

_EXIF_ORIENTATION = 0x0112
_GREY16_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_RGB_MODES = ("RGB", "RGBX", "CMYK", "YCbCr")


@dataclass(frozen=True)
class Photo:
    """A photo read for restoration.

    Attributes:
        image: ``(1, 3, H, W)`` float32 in [0, 1], upright; a grey photo's channel repeated.
        grey: written back as one channel (the luma of the restored RGB).
        bits: bits per sample written back, 8 or 16.
        alpha: the ``(H, W)`` alpha channel (uint8 for 8 bits, uint16 for 16), upright,
            reattached unchanged; ``None`` without one.
        icc_profile: the ICC profile written with the result: the source's, or sRGB's
            where the pixels were converted to sRGB.
        source_mode: what the file held, for people (``RGBA``, ``I;16``, ``RGB;16``...).
        exif: the source's EXIF block, orientation reset to upright; ``None`` without one.
        source_profile: the source's own profile where the pixels were converted from it
            (for ``keep_profile``); else ``None``.
        notes: what a person should know about how the photo was read (one line each).
    """

    image: Tensor
    grey: bool
    bits: int
    alpha: NDArray[np.uint8] | NDArray[np.uint16] | None
    icc_profile: bytes | None
    source_mode: str
    exif: bytes | None = None
    source_profile: bytes | None = None
    notes: tuple[str, ...] = ()

    @property
    def mode(self) -> str:
        """The form written back: ``L``, ``LA``, ``RGB`` or ``RGBA``, with ``;16`` for 16 bits."""
        mode = ("L" if self.grey else "RGB") + ("A" if self.alpha is not None else "")
        return mode + (";16" if self.bits == 16 else "")


def read_photo(path: str | Path, max_pixels: int | None = None) -> Photo:
    """Read a still image for restoration (see the module docstring for what each pixel
    format becomes). ``max_pixels`` raises the decompression-bomb limit for trusted photos
    (default: Pillow's, about 89 megapixels).

    Raises:
        UnusableImageError: not an image, corrupt or truncated, animated, a decompression
            bomb, or a pixel format with no RGB meaning; ``reason`` says which.
    """
    path = Path(path)
    notes: list[str] = []
    with open_still(path, max_pixels) as opened:
        pixels, bits, source_mode = _pixels(path, opened)
        exif = opened.getexif()
        orientation = exif.get(_EXIF_ORIENTATION, 1)
        icc = opened.info.get("icc_profile") if opened.mode != "CMYK" else None
        # Serialised while the file is open: EXIF sub-blocks are read from it lazily.
        kept_exif = _upright(exif, opened.format, path, notes)
    pixels = orient(pixels, orientation)
    pixels, written, source, colour_notes = _manage_colour(path, pixels, bits, icc or None)
    photo = _photo(pixels, bits, written, source_mode)
    return dataclasses.replace(
        photo, exif=kept_exif, source_profile=source, notes=tuple(notes + colour_notes)
    )


#: Formats whose EXIF is a block of its own; a TIFF's tags describe its own layout.
_EXIF_FORMATS = ("JPEG", "MPO", "PNG", "WEBP")


def _upright(exif: Image.Exif, fmt: str | None, path: Path, notes: list[str]) -> bytes | None:
    """The EXIF block with its orientation reset to 1 (the pixels are turned already);
    ``None`` without one, for a TIFF, or where it cannot be written again (a note)."""
    if not len(exif) or fmt not in _EXIF_FORMATS:
        return None
    try:
        if _EXIF_ORIENTATION in exif:
            exif[_EXIF_ORIENTATION] = 1
        return bytes(exif.tobytes())
    except Exception as error:  # malformed EXIF: Pillow raises struct, type, value errors
        notes.append(f"{path.name}: its EXIF cannot be copied ({error}); written without it")
        return None


def _manage_colour(
    path: Path, pixels: NDArray[np.generic], bits: int, icc: bytes | None
) -> tuple[NDArray[np.generic], bytes | None, bytes | None, list[str]]:
    """``(pixels, profile to write, source profile if converted, notes)``: the pixels in
    sRGB where their profile says they are not (see the module docstring)."""
    if icc is None:
        return pixels, None, None, []
    rgb = pixels.shape[-1] in (3, 4)
    fallback = srgb_profile() if rgb else None  # no RGB profile in a grey PNG
    try:
        info = profile_info(icc)
    except ProfileError as error:
        return pixels, fallback, None, [f"{path.name}: {error}; restored as sRGB"]
    if info.kind == "srgb" or (info.kind == "grey" and not rgb) or not rgb:
        return pixels, icc, None, []
    if info.kind in ("grey", "other"):
        note = f"{path.name}: its ICC profile {info.name!r} is not an RGB profile; restored as sRGB"
        return pixels, srgb_profile(), None, [note]
    if bits == 16:
        note = (f"{path.name}: 16-bit photo in {info.name!r}: restored in its own colour "
                "space, profile kept (colour conversion is 8-bit only)")  # fmt: skip
        return pixels, icc, None, [note]
    converted = np.array(pixels, copy=True)
    try:
        converted[..., :3] = to_srgb(np.ascontiguousarray(pixels[..., :3], dtype=np.uint8), icc)
    except ProfileError as error:
        return pixels, srgb_profile(), None, [f"{path.name}: {error}; restored as sRGB"]
    return converted, srgb_profile(), icc, []


def _pixels(path: Path, opened: ImageFile.ImageFile) -> tuple[NDArray[np.generic], int, str]:
    """``(H, W, C)`` samples (C: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA), their bit depth and
    the source's mode for people."""
    rawmode = wide_rawmode(opened)
    if rawmode is not None:
        return read_wide_png(path, opened), 16, rawmode.replace("16B", "16")
    if _is_wide_tiff(opened):
        return _read_wide_tiff(path), 16, f"{opened.mode};16"
    opened.load()
    mode = opened.mode
    transparent = "transparency" in opened.info
    if mode in _GREY16_MODES:
        wide = np.asarray(opened)
        if mode == "I" and (wide.min() < 0 or wide.max() > 65535):
            raise UnusableImageError(path, "32-bit grey values outside the 16-bit range")
        return wide.astype(np.uint16)[..., None], 16, mode
    if mode in ("1", "L", "LA", "La"):
        target = "LA" if mode in ("LA", "La") or transparent else "L"
    elif mode in ("P", "PA"):
        target = "RGBA" if mode == "PA" or transparent else "RGB"
    elif mode in ("RGBA", "RGBa") or (mode == "RGB" and transparent):
        target = "RGBA"
    elif mode in _RGB_MODES:
        target = "RGB"
    else:
        raise UnusableImageError(path, f"unsupported pixel format {mode!r}")
    image = opened if opened.mode == target else opened.convert(target)
    array = np.asarray(image, dtype=np.uint8)
    return (array[..., None] if array.ndim == 2 else array), 8, mode


def _is_wide_tiff(opened: ImageFile.ImageFile) -> bool:
    """A TIFF with 16-bit colour samples, which Pillow would narrow to 8 bits."""
    if opened.format != "TIFF" or opened.mode not in ("RGB", "RGBA"):
        return False
    bits = opened.tag_v2.get(258, (8,))  # type: ignore[attr-defined]
    return max(bits if isinstance(bits, tuple) else (bits,)) > 8


def _read_wide_tiff(path: Path) -> NDArray[np.uint16]:
    import tifffile  # installed with scikit-image; only 16-bit colour TIFFs need it

    try:
        with tifffile.TiffFile(path) as tiff:
            page = tiff.pages[0]
            if not isinstance(page, tifffile.TiffPage):
                raise ValueError("its first page is not an image")
            samples = page.asarray()
            if page.planarconfig == tifffile.PLANARCONFIG.SEPARATE and samples.ndim == 3:
                samples = np.moveaxis(samples, 0, -1)
    except (KeyError, ValueError, OSError) as error:  # KeyError: a codec tifffile lacks
        raise UnusableImageError(path, f"16-bit TIFF not readable ({error})") from error
    if samples.dtype != np.uint16 or samples.ndim != 3 or samples.shape[-1] not in (3, 4):
        raise UnusableImageError(
            path, f"unsupported 16-bit TIFF layout {samples.shape} {samples.dtype}"
        )
    return np.asarray(samples)


def orient(pixels: NDArray[np.generic], orientation: int) -> NDArray[np.generic]:
    """``(H, W, ...)`` pixels turned as EXIF ``orientation`` (1 to 8) says they are to be
    seen; any other value leaves them as they are (as Pillow's ``exif_transpose`` does)."""
    turned = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: a.swapaxes(0, 1)[:, ::-1],
        7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
        8: lambda a: a.swapaxes(0, 1)[::-1],
    }
    return np.ascontiguousarray(turned[orientation](pixels) if orientation in turned else pixels)


def _photo(pixels: NDArray[np.generic], bits: int, icc: bytes | None, source_mode: str) -> Photo:
    channels = pixels.shape[-1]
    grey = channels in (1, 2)
    colour = pixels[..., :1].repeat(3, axis=-1) if grey else pixels[..., :3]
    scale = np.float32(2**bits - 1)
    values = torch.from_numpy(colour.astype(np.float32) / scale).permute(2, 0, 1)
    alpha = pixels[..., -1].copy() if channels in (2, 4) else None
    return Photo(values.unsqueeze(0).contiguous(), grey, bits, alpha, icc, source_mode)  # type: ignore[arg-type]


def restored_pixels(photo: Photo, restored: Tensor) -> NDArray[np.uint8] | NDArray[np.uint16]:
    """The restored ``(1, 3, H, W)`` tensor in ``photo``'s form: ``(H, W)`` or
    ``(H, W, C)``, uint8 or uint16, grey as BT.601 luma, alpha reattached."""
    if restored.shape != photo.image.shape:
        raise ValueError(
            f"restored must have the photo's shape {tuple(photo.image.shape)}, "
            f"got {tuple(restored.shape)}"
        )
    values = restored[0].detach().float().clamp(0.0, 1.0).cpu()
    if photo.grey:
        luma = torch.tensor(LUMA, dtype=torch.float32).view(3, 1, 1)
        values = (values * luma).sum(0, keepdim=True)
    dtype = np.uint16 if photo.bits == 16 else np.uint8
    samples = (values * (2**photo.bits - 1)).round().permute(1, 2, 0).numpy().astype(dtype)
    if photo.alpha is not None:
        samples = np.concatenate([samples, photo.alpha[..., None].astype(dtype)], axis=-1)
    return samples[..., 0] if samples.shape[-1] == 1 else samples


def write_photo(
    path: str | Path,
    photo: Photo,
    restored: Tensor,
    text: dict[str, str] | None = None,
    keep_profile: bool = False,
) -> None:
    """Write ``restored`` (``(1, 3, H, W)`` in [0, 1]) as a PNG in ``photo``'s form, with
    its EXIF, atomically: the file appears complete or not at all. ``text``: tEXt chunks to
    add. ``keep_profile``: a photo converted to sRGB on reading is converted back to its
    own profile and tagged with it (else it is tagged sRGB)."""
    pixels = restored_pixels(photo, restored)
    profile = photo.icc_profile
    if keep_profile and photo.source_profile is not None and pixels.dtype == np.uint8:
        back = np.array(pixels, dtype=np.uint8, copy=True)
        with contextlib.suppress(ProfileError):  # it converted on reading; written as sRGB
            back[..., :3] = from_srgb(np.ascontiguousarray(back[..., :3]), photo.source_profile)
            pixels, profile = back, photo.source_profile
    save_png(path, pixels, profile, text, photo.exif)


def save_png(
    path: str | Path,
    pixels: NDArray[np.uint8] | NDArray[np.uint16],
    icc_profile: bytes | None = None,
    text: dict[str, str] | None = None,
    exif: bytes | None = None,
) -> None:
    """Write ``(H, W)`` or ``(H, W, C)`` uint8 or uint16 pixels as a PNG (C: 1 grey,
    2 grey+alpha, 3 RGB, 4 RGBA), atomically, creating the folder; ``text`` becomes tEXt
    chunks, read back by Pillow's ``Image.open(path).text``; ``exif`` an eXIf chunk."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    try:
        if pixels.dtype == np.uint16:
            write_png16(temporary, pixels, icc_profile, text, exif)  # type: ignore[arg-type]
        elif pixels.dtype == np.uint8:
            extra: dict[str, Any] = {"icc_profile": icc_profile} if icc_profile else {}
            if exif:
                extra["exif"] = exif
            if text:
                extra["pnginfo"] = PngImagePlugin.PngInfo()
                for key, value in text.items():
                    extra["pnginfo"].add_text(key, value)
            Image.fromarray(pixels).save(temporary, format="PNG", **extra)
        else:
            raise TypeError(f"pixels must be uint8 or uint16, got {pixels.dtype}")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
