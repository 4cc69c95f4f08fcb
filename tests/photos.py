"""Small photo folders made by the tests: clean photos, and a corpus of bad and odd files."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def photo(seed: int, height: int = 48, width: int = 64) -> np.ndarray:
    """A smooth, textured RGB photo (uint8)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x / width, y / height, (x + y) / (width + height)], axis=-1)
    noise = rng.uniform(-0.1, 0.1, (height, width, 3))
    return np.clip((0.2 + 0.6 * base + noise) * 255, 0, 255).astype(np.uint8)


def write_photos(folder: Path, count: int = 3, **size: int) -> list[str]:
    """``count`` PNG photos in ``folder`` (one in a subfolder); returns relative names."""
    names = []
    for i in range(count):
        relative = f"sub/p{i}.png" if i == count - 1 else f"p{i}.png"
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(photo(i, **size)).save(path)
        names.append(relative)
    return sorted(names)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A tiny PNG whose header claims more pixels than Pillow's decompression-bomb limit."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + _png_chunk(b"IEND", b"")
    )


def write_corpus(src: Path, outside: Path) -> dict[str, str]:
    """Bad files and their expected reason (a fragment); odd-but-usable files map to ''."""
    src.mkdir(parents=True, exist_ok=True)
    good = photo(7, 48, 64)
    expected: dict[str, str] = {}

    (src / "notes.txt").write_text("not a photo")
    expected["notes.txt"] = "not an image"

    buffer = io.BytesIO()
    Image.fromarray(good).save(buffer, format="JPEG")
    (src / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    expected["truncated.jpg"] = "corrupt or truncated"

    (src / "bomb.png").write_bytes(bomb_png())
    expected["bomb.png"] = "decompression bomb"

    Image.fromarray(good[:16, :16]).save(src / "small.png")
    expected["small.png"] = "too small"

    frames = [Image.fromarray(good), Image.fromarray(255 - good)]
    frames[0].save(src / "animated.gif", save_all=True, append_images=frames[1:])
    expected["animated.gif"] = "animated"

    outside.mkdir(parents=True, exist_ok=True)
    Image.fromarray(good).save(outside / "elsewhere.png")
    (src / "link.png").symlink_to(outside / "elsewhere.png")
    expected["link.png"] = "outside --src"

    # Odd but usable.
    Image.fromarray(good).convert("L").save(src / "grey.png")
    Image.fromarray(good).convert("P", palette=Image.Palette.ADAPTIVE).save(src / "palette.png")
    rgba = np.dstack([good, np.full(good.shape[:2], 255, np.uint8)])
    rgba[:, :32, 3] = 0  # left half transparent: must come out white
    Image.fromarray(rgba, "RGBA").save(src / "rgba.png")
    Image.fromarray(good).convert("CMYK").save(src / "cmyk.jpg")
    wide = (np.linspace(0, 65535, 64, dtype=np.float64)[None, :] * np.ones((48, 1))).astype(
        np.uint16
    )
    Image.fromarray(wide).save(src / "sixteen.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    Image.fromarray(good).save(src / "rotated.jpg", exif=exif, quality=95)
    for name in ("grey.png", "palette.png", "rgba.png", "cmyk.jpg", "sixteen.png", "rotated.jpg"):
        expected[name] = ""
    return expected


# -- an ICC profile other than sRGB ----------------------------------------------------
ADOBE_GAMMA = 563 / 256  # u8Fixed8 0x0233, the gamma of Adobe RGB (1998)
#: Adobe RGB (1998) primaries as XYZ colorants adapted to D50, as its profile carries them.
ADOBE_COLORANTS = ((0.60974, 0.31111, 0.01947), (0.20528, 0.62567, 0.06087),
                   (0.14919, 0.06322, 0.74457))  # fmt: skip
D50 = (0.9642, 1.0, 0.8249)


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(values: tuple[float, float, float]) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15(v) for v in values)


def _description(text: str) -> bytes:
    ascii_ = text.encode("ascii") + b"\0"
    return (b"desc\0\0\0\0" + struct.pack(">I", len(ascii_)) + ascii_
            + struct.pack(">II", 0, 0) + struct.pack(">HB", 0, 0) + b"\0" * 67)  # fmt: skip


def adobe_rgb_profile(name: str = "Adobe RGB (1998) test") -> bytes:
    """A matrix/TRC ICC v2 display profile with Adobe RGB (1998)'s primaries and gamma."""
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(ADOBE_GAMMA * 256)) + b"\0\0"
    tags = [
        (b"desc", _description(name)),
        (b"wtpt", _xyz(D50)),
        (b"rXYZ", _xyz(ADOBE_COLORANTS[0])),
        (b"gXYZ", _xyz(ADOBE_COLORANTS[1])),
        (b"bXYZ", _xyz(ADOBE_COLORANTS[2])),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
        (b"cprt", b"text\0\0\0\0no copyright, test data\0"),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = [], b""
    for signature, body in tags:
        table.append(signature + struct.pack(">II", offset + len(data), len(body)))
        data += body + b"\0" * (-len(body) % 4)
    size = offset + len(data)
    header = (struct.pack(">I", size) + b"\0\0\0\0" + struct.pack(">I", 0x02100000) + b"mntr"
              + b"RGB XYZ " + b"\0" * 12 + b"acsp" + b"\0" * 24 + struct.pack(">I", 0)
              + b"".join(_s15(v) for v in D50) + b"\0" * 48)  # fmt: skip
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + b"".join(table) + data
