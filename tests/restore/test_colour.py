"""Colour management: photos in Adobe RGB are restored in sRGB, and written back on request."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms
from skyclear.restore.colour import ProfileError, from_srgb, profile_info, srgb_profile, to_srgb
from skyclear.restore.images import read_photo, write_photo
from skyclear.restore.png16 import write_png16

from ..photos import ADOBE_COLORANTS, ADOBE_GAMMA, adobe_rgb_profile


def _reference_to_srgb(pixels: np.ndarray) -> np.ndarray:
    """Adobe RGB codes to sRGB codes by the profiles' own matrices, in numpy."""
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).profile
    to_xyz_srgb = np.array([srgb.red_colorant[0], srgb.green_colorant[0],
                            srgb.blue_colorant[0]]).T  # fmt: skip
    linear = (pixels / 255.0) ** ADOBE_GAMMA
    xyz = linear @ np.array(ADOBE_COLORANTS)
    out = np.clip(xyz @ np.linalg.inv(to_xyz_srgb).T, 0.0, 1.0)
    encoded = np.where(out <= 0.0031308, 12.92 * out, 1.055 * out ** (1 / 2.4) - 0.055)
    return encoded * 255.0


def _photo(path: Path, pixels: np.ndarray, icc: bytes | None, exif: Image.Exif | None = None):
    extra: dict[str, object] = {}
    if icc is not None:
        extra["icc_profile"] = icc
    if exif is not None:
        extra["exif"] = exif
    Image.fromarray(pixels).save(path, **extra)
    return path


@pytest.fixture
def pixels() -> np.ndarray:
    """Adobe RGB codes of colours inside the sRGB gamut (so they survive a round trip)."""
    srgb = np.random.default_rng(0).integers(30, 220, (12, 16, 3), dtype=np.uint8)
    return from_srgb(srgb, adobe_rgb_profile())


def test_profiles_are_told_apart() -> None:
    assert profile_info(srgb_profile()).kind == "srgb"
    info = profile_info(adobe_rgb_profile())
    assert info.kind == "rgb" and info.name == "Adobe RGB (1998) test"
    with pytest.raises(ProfileError):
        profile_info(b"not a profile at all")


def test_adobe_rgb_converts_as_its_matrices_say(pixels: np.ndarray) -> None:
    anywhere = np.random.default_rng(3).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    reference = _reference_to_srgb(anywhere.astype(np.float64))  # clipped to the gamut
    assert np.abs(to_srgb(anywhere, adobe_rgb_profile()) - reference).max() <= 2.0
    converted = to_srgb(pixels, adobe_rgb_profile())
    assert np.abs(converted.astype(int) - pixels).max() > 10  # it did change the numbers
    back = from_srgb(converted, adobe_rgb_profile())
    assert np.abs(back.astype(int) - pixels).max() <= 3


def test_a_photo_in_adobe_rgb_is_restored_in_srgb_and_tagged_so(
    tmp_path: Path, pixels: np.ndarray
) -> None:
    adobe = adobe_rgb_profile()
    photo = read_photo(_photo(tmp_path / "adobe.png", pixels, adobe))
    expected = to_srgb(pixels, adobe)
    assert np.array_equal((photo.image[0].permute(1, 2, 0) * 255).round().byte().numpy(), expected)
    assert photo.icc_profile == srgb_profile() and photo.source_profile == adobe
    assert photo.notes == ()
    write_photo(tmp_path / "out.png", photo, photo.image)
    with Image.open(tmp_path / "out.png") as written:
        assert written.info["icc_profile"] == srgb_profile()
        assert np.array_equal(np.asarray(written), expected)
    write_photo(tmp_path / "kept.png", photo, photo.image, keep_profile=True)
    with Image.open(tmp_path / "kept.png") as kept:
        assert kept.info["icc_profile"] == adobe
        assert np.abs(np.asarray(kept).astype(int) - pixels).max() <= 3


def test_an_unreadable_profile_is_taken_as_srgb_with_a_note(
    tmp_path: Path, pixels: np.ndarray
) -> None:
    photo = read_photo(_photo(tmp_path / "odd.png", pixels, b"\x00" * 40))
    assert len(photo.notes) == 1 and "odd.png" in photo.notes[0]
    assert "restored as sRGB" in photo.notes[0]
    assert np.array_equal((photo.image[0].permute(1, 2, 0) * 255).round().byte().numpy(), pixels)
    assert photo.icc_profile == srgb_profile()


def test_a_16_bit_photo_in_adobe_rgb_keeps_its_space_and_says_so(tmp_path: Path) -> None:
    deep = np.random.default_rng(1).integers(0, 65536, (8, 10, 3), dtype=np.uint16)
    write_png16(tmp_path / "deep.png", deep, adobe_rgb_profile())
    photo = read_photo(tmp_path / "deep.png")
    assert photo.bits == 16 and photo.icc_profile == adobe_rgb_profile()
    assert len(photo.notes) == 1 and "own colour space" in photo.notes[0]


@pytest.mark.parametrize("bits", [8, 16])
def test_exif_is_kept_and_its_orientation_reset(tmp_path: Path, bits: int) -> None:
    exif = Image.Exif()
    exif[0x010F] = "skyclear test camera"  # Make
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    source = tmp_path / "turned.png"
    if bits == 8:
        stored = np.random.default_rng(2).integers(0, 256, (6, 9, 3), dtype=np.uint8)
        _photo(source, stored, None, exif)
    else:
        stored = np.random.default_rng(2).integers(0, 65536, (6, 9, 3), dtype=np.uint16)
        write_png16(source, stored, exif=exif.tobytes())
    photo = read_photo(source)
    assert tuple(photo.image.shape[-2:]) == (9, 6)  # turned upright
    write_photo(tmp_path / "out.png", photo, photo.image)
    with Image.open(tmp_path / "out.png") as written:
        kept = written.getexif()
        assert kept[0x010F] == "skyclear test camera"
        assert kept.get(0x0112, 1) == 1
        assert written.size == (6, 9)
    torch.testing.assert_close(read_photo(tmp_path / "out.png").image, photo.image)
