"""Photos in and out of the restorer: every pixel format read and written back in its form."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms, ImageOps
from skyclear.restore.images import (
    LUMA,
    UnusableImageError,
    orient,
    read_photo,
    restored_pixels,
    write_photo,
)
from skyclear.restore.png16 import write_png16

HEIGHT, WIDTH = 37, 53  # odd on purpose


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def _wide(channels: int, seed: int = 1) -> np.ndarray:
    shape = (HEIGHT, WIDTH, channels) if channels > 1 else (HEIGHT, WIDTH)
    return np.random.default_rng(seed).integers(0, 65536, shape, dtype=np.uint16)


def _png16_sub_filtered(pixels: np.ndarray) -> bytes:
    """A 16-bit PNG written independently of the code under test: rows alternate the
    None, Sub and Up filters, so decoding with the wrong pixel stride would show."""
    samples = pixels[..., None] if pixels.ndim == 2 else pixels
    height, width, channels = samples.shape
    raw = samples.astype(">u2").view(np.uint8).reshape(height, -1).astype(np.int16)
    stride = 2 * channels
    rows = []
    for y in range(height):
        kind = y % 3
        if kind == 1:
            row = raw[y].copy()
            row[stride:] -= raw[y, :-stride]
        elif kind == 2:
            row = raw[y] - raw[y - 1]
        else:
            row = raw[y]
        rows.append(bytes([kind]) + (row % 256).astype(np.uint8).tobytes())
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 16, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("mode", "written"),
    [("RGB", "RGB"), ("L", "L"), ("LA", "LA"), ("RGBA", "RGBA"), ("P", "RGB"), ("1", "L")],
)
def test_8bit_modes_round_trip(tmp_path: Path, rgb: np.ndarray, mode: str, written: str) -> None:
    source = Image.fromarray(rgb).convert("RGBA" if mode == "RGBA" else "RGB")
    if mode == "RGBA":
        alpha = np.random.default_rng(2).integers(0, 256, (HEIGHT, WIDTH), dtype=np.uint8)
        source.putalpha(Image.fromarray(alpha))
    source = source.convert(mode)
    source.save(tmp_path / "in.png")
    photo = read_photo(tmp_path / "in.png")
    assert photo.image.shape == (1, 3, HEIGHT, WIDTH) and photo.image.dtype == torch.float32
    assert float(photo.image.min()) >= 0 and float(photo.image.max()) <= 1
    assert photo.bits == 8 and photo.mode == written
    write_photo(tmp_path / "out.png", photo, photo.image)
    with Image.open(tmp_path / "out.png") as back:
        assert back.mode == written and back.size == (WIDTH, HEIGHT)
        assert np.array_equal(np.asarray(back), np.asarray(source.convert(written)))


def test_alpha_is_kept_bit_exact_while_colours_change(tmp_path: Path, rgb: np.ndarray) -> None:
    alpha = np.random.default_rng(3).integers(0, 256, (HEIGHT, WIDTH), dtype=np.uint8)
    Image.fromarray(np.dstack([rgb, alpha])).save(tmp_path / "in.png")
    photo = read_photo(tmp_path / "in.png")
    write_photo(tmp_path / "out.png", photo, 1.0 - photo.image)
    back = np.asarray(Image.open(tmp_path / "out.png"))
    assert np.array_equal(back[..., 3], alpha)
    assert np.array_equal(back[..., :3], 255 - rgb)


def test_grey_comes_back_as_bt601_luma(rgb: np.ndarray, tmp_path: Path) -> None:
    Image.fromarray(rgb[..., 0]).save(tmp_path / "grey.png")
    photo = read_photo(tmp_path / "grey.png")
    assert photo.grey and torch.equal(photo.image[:, 0], photo.image[:, 2])
    colours = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    expected = np.tensordot(rgb.astype(np.float64) / 255, np.array(LUMA), axes=([2], [0]))
    luma = restored_pixels(photo, colours)
    assert luma.shape == (HEIGHT, WIDTH) and luma.dtype == np.uint8
    assert np.abs(luma.astype(int) - np.round(expected * 255)).max() <= 1


@pytest.mark.parametrize(
    ("channels", "mode"), [(1, "L;16"), (2, "LA;16"), (3, "RGB;16"), (4, "RGBA;16")]
)
def test_16bit_pngs_are_read_exactly_and_written_16bit(
    tmp_path: Path, channels: int, mode: str
) -> None:
    pixels = _wide(channels)
    (tmp_path / "in.png").write_bytes(_png16_sub_filtered(pixels))
    photo = read_photo(tmp_path / "in.png")
    assert photo.bits == 16 and photo.mode == mode
    samples = pixels[..., None] if channels == 1 else pixels
    colour = samples[..., :1] if channels <= 2 else samples[..., :3]
    expected = torch.from_numpy(colour.astype(np.float32) / 65535).permute(2, 0, 1)
    assert torch.equal(photo.image[0], expected.expand(3, -1, -1))
    if channels in (2, 4):
        assert photo.alpha is not None and np.array_equal(photo.alpha, pixels[..., -1])
    write_photo(tmp_path / "out.png", photo, photo.image)
    again = read_photo(tmp_path / "out.png")
    assert again.mode == mode and torch.equal(again.image, photo.image)
    assert np.array_equal(restored_pixels(again, again.image), pixels)


def test_16bit_grey_written_is_what_pillow_reads(tmp_path: Path) -> None:
    tall = np.random.default_rng(4).integers(0, 65536, (300, 7), dtype=np.uint16)  # > 1 band
    Image.fromarray(_wide(1)).save(tmp_path / "in.png")
    photo = read_photo(tmp_path / "in.png")
    assert photo.source_mode.startswith("I;16") and photo.mode == "L;16"
    write_png16(tmp_path / "tall.png", tall)
    with Image.open(tmp_path / "tall.png") as back:
        assert back.mode == "I;16" and np.array_equal(np.asarray(back), tall)


def test_16bit_colour_written_is_what_opencv_reads(tmp_path: Path) -> None:
    cv2 = pytest.importorskip("cv2")
    for channels in (3, 4):
        pixels = _wide(channels, seed=channels)
        write_png16(tmp_path / "out.png", pixels)
        back = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)
        order = [2, 1, 0] if channels == 3 else [2, 1, 0, 3]
        assert back.dtype == np.uint16 and np.array_equal(back[..., order], pixels)


def test_16bit_colour_tiff(tmp_path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    pixels = _wide(3)
    tifffile.imwrite(tmp_path / "in.tif", pixels, photometric="rgb")
    photo = read_photo(tmp_path / "in.tif")
    assert photo.bits == 16 and photo.mode == "RGB;16"
    write_photo(tmp_path / "out.png", photo, photo.image)
    assert np.array_equal(restored_pixels(read_photo(tmp_path / "out.png"), photo.image), pixels)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pillow_does(
    tmp_path: Path, rgb: np.ndarray, orientation: int
) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(rgb).save(tmp_path / "in.png", exif=exif)
    with Image.open(tmp_path / "in.png") as opened:
        upright = np.asarray(ImageOps.exif_transpose(opened).convert("RGB"))
    photo = read_photo(tmp_path / "in.png")
    assert np.array_equal(restored_pixels(photo, photo.image), upright)
    assert np.array_equal(orient(rgb, orientation), upright)


def test_icc_profile_is_carried_over(tmp_path: Path, rgb: np.ndarray) -> None:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(rgb).save(tmp_path / "narrow.png", icc_profile=profile)
    write_png16(tmp_path / "wide.png", _wide(3), icc_profile=profile)
    for name in ("narrow.png", "wide.png"):
        photo = read_photo(tmp_path / name)
        assert photo.icc_profile == profile
        write_photo(tmp_path / "out.png", photo, photo.image)
        with Image.open(tmp_path / "out.png") as back:
            assert back.info.get("icc_profile") == profile


def test_unusable_files_are_refused_with_the_reason(tmp_path: Path, rgb: np.ndarray) -> None:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    (tmp_path / "truncated.png").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (tmp_path / "notes.png").write_text("not a photo")
    frames = [Image.fromarray(rgb), Image.fromarray(255 - rgb)]
    frames[0].save(tmp_path / "animated.gif", save_all=True, append_images=frames[1:])
    Image.fromarray(rgb[..., 0].astype(np.float32)).save(tmp_path / "float.tif")
    expected = {
        "truncated.png": "corrupt or truncated",
        "notes.png": "not an image",
        "animated.gif": "animated",
        "float.tif": "unsupported pixel format 'F'",
        "missing.png": "no such file",
    }
    for name, reason in expected.items():
        with pytest.raises(UnusableImageError, match=reason) as caught:
            read_photo(tmp_path / name)
        assert caught.value.path == tmp_path / name and reason in caught.value.reason


def test_written_files_appear_whole_or_not_at_all(tmp_path: Path, rgb: np.ndarray) -> None:
    Image.fromarray(rgb).save(tmp_path / "in.png")
    photo = read_photo(tmp_path / "in.png")
    with pytest.raises(ValueError, match="shape"):
        write_photo(tmp_path / "out.png", photo, photo.image[..., :5])
    write_photo(tmp_path / "deep" / "out.png", photo, photo.image)
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["out.png"]
