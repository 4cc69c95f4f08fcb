"""Colour management of photos: the restorer works in sRGB, photos may not be.

A photo tagged with an RGB ICC profile other than sRGB (Adobe RGB, Display P3, a camera's
own) holds numbers that mean other colours than the same numbers in sRGB; the network was
trained on sRGB. ``to_srgb`` converts its pixels to sRGB with LittleCMS (Pillow's
``ImageCms``, relative colorimetric intent) before restoration, and ``from_srgb`` converts
a result back for ``restore run --keep-profile``. A profile is taken for sRGB when its
description names sRGB, as every sRGB profile in circulation does.

Pillow's colour management handles 8 bits per sample only: a 16-bit photo with another
profile is restored in its own colour space, and says so.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageCms

__all__ = ["ProfileError", "ProfileInfo", "from_srgb", "profile_info", "srgb_profile", "to_srgb"]

Kind = Literal["srgb", "rgb", "grey", "other"]
_INTENT = ImageCms.Intent.RELATIVE_COLORIMETRIC


class ProfileError(ValueError):
    """An ICC profile LittleCMS cannot read."""


@dataclass(frozen=True)
class ProfileInfo:
    """What an embedded ICC profile is.

    Attributes:
        kind: ``srgb``; ``rgb``, another RGB space; ``grey``; ``other`` (CMYK, Lab...).
        name: the profile's description, for people.
    """

    kind: Kind
    name: str


@functools.cache
def srgb_profile() -> bytes:
    """The bytes of LittleCMS's built-in sRGB profile, which results are tagged with."""
    return bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


def _open(data: bytes) -> ImageCms.ImageCmsProfile:
    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(data))
    except (OSError, ValueError, TypeError, ImageCms.PyCMSError) as error:
        raise ProfileError(f"unreadable ICC profile ({error})") from error


def profile_info(data: bytes) -> ProfileInfo:
    """Read ``data``'s colour space and description; ``ProfileError`` if unreadable."""
    profile = _open(data)
    name = (ImageCms.getProfileDescription(profile) or "").strip() or "unnamed"
    space = profile.profile.xcolor_space.strip().upper()
    if space == "RGB":
        return ProfileInfo("srgb" if "SRGB" in name.upper() else "rgb", name)
    if space == "GRAY":
        return ProfileInfo("grey", name)
    return ProfileInfo("other", name)


@functools.lru_cache(maxsize=8)
def _transform(source: bytes, forward: bool) -> ImageCms.ImageCmsTransform:
    """``ProfileError`` for a profile that opens but cannot convert (a device link, an
    output-only profile)."""
    own, srgb = _open(source), _open(srgb_profile())
    start, end = (own, srgb) if forward else (srgb, own)
    try:
        return ImageCms.buildTransform(start, end, "RGB", "RGB", renderingIntent=_INTENT)
    except ImageCms.PyCMSError as error:
        raise ProfileError(f"ICC profile that cannot convert to sRGB ({error})") from error


def to_srgb(rgb: NDArray[np.uint8], source: bytes) -> NDArray[np.uint8]:
    """``(H, W, 3)`` uint8 pixels in the space of profile ``source``, converted to sRGB;
    ``ProfileError`` where the profile cannot do it."""
    return _apply(rgb, _transform(source, True))


def from_srgb(rgb: NDArray[np.uint8], target: bytes) -> NDArray[np.uint8]:
    """``(H, W, 3)`` uint8 sRGB pixels converted to the space of profile ``target``."""
    return _apply(rgb, _transform(target, False))


def _apply(rgb: NDArray[np.uint8], transform: ImageCms.ImageCmsTransform) -> NDArray[np.uint8]:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"pixels must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    try:
        converted = ImageCms.applyTransform(Image.fromarray(np.ascontiguousarray(rgb)), transform)
    except ImageCms.PyCMSError as error:
        raise ProfileError(f"ICC profile conversion failed ({error})") from error
    assert converted is not None  # not in place
    return np.asarray(converted, dtype=np.uint8)
