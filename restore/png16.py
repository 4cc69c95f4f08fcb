"""16-bit PNGs that Pillow cannot hold: colour and grey+alpha, read exactly and written.

Pillow has no 16-bit colour mode. It opens a 16-bit RGB or RGBA PNG as 8-bit RGB(A),
keeping the high byte of every sample, and a 16-bit grey+alpha PNG as 8-bit RGBA. Its
decoder works in two stages: it first undoes PNG's row filters on the raw bytes, with the
pixel stride of the file's format, and only then unpacks those bytes into pixels. So the
exact samples come from decoding with other unpackers of the same stride:

* RGB (6 bytes a pixel) and RGBA (8): once with the big-endian unpacker (the high bytes),
  once with the little-endian one (which, reading big-endian data, takes the low bytes);
* grey+alpha (4 bytes a pixel): once with the 8-bit RGBA unpacker, whose four channels
  are then the four raw bytes ``grey_hi, grey_lo, alpha_hi, alpha_lo``.

16-bit grey alone needs none of this (Pillow's ``I;16`` mode). ``write_png16`` writes any
16-bit image (grey, grey+alpha, RGB, RGBA) with the Paeth filter on every row.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFile

__all__ = ["WIDE_RAWMODES", "read_wide_png", "wide_rawmode", "write_png16"]

#: Pillow's raw modes of the 16-bit PNG formats it narrows to 8 bits.
WIDE_RAWMODES = ("LA;16B", "RGB;16B", "RGBA;16B")

_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type
_BAND_ROWS = 256  # rows filtered at a time: bounds the encoder's scratch memory
_IDAT_BYTES = 1 << 20


def wide_rawmode(image: ImageFile.ImageFile) -> str | None:
    """The raw mode of an opened, not yet loaded PNG when it is 16-bit colour or
    grey+alpha (one of ``WIDE_RAWMODES``), else ``None``."""
    if image.format != "PNG" or len(image.tile) != 1:
        return None
    rawmode = image.tile[0].args
    return rawmode if rawmode in WIDE_RAWMODES else None


def read_wide_png(path: Path, image: ImageFile.ImageFile) -> NDArray[np.uint16]:
    """The exact ``(H, W, C)`` uint16 samples of a 16-bit PNG that ``wide_rawmode`` named:
    C is 2 (grey, alpha), 3 (RGB) or 4 (RGBA).

    Args:
        path: the file, opened again for the low bytes of RGB(A).
        image: the same file opened by Pillow and not yet loaded; this call loads it.
    """
    rawmode = wide_rawmode(image)
    if rawmode is None:
        raise ValueError(f"{path}: not a 16-bit colour or grey+alpha PNG")
    if rawmode == "LA;16B":
        raw = _decode(image, "RGBA").astype(np.uint16)
        return np.stack([raw[..., 0] << 8 | raw[..., 1], raw[..., 2] << 8 | raw[..., 3]], -1)
    high = _decode(image, rawmode).astype(np.uint16)
    with Image.open(path) as again:
        if wide_rawmode(again) != rawmode:
            raise ValueError(f"{path}: changed while it was read")
        low = _decode(again, rawmode.replace("16B", "16L"))
    return (high << 8 | low).astype(np.uint16, copy=False)


def _decode(image: ImageFile.ImageFile, rawmode: str) -> NDArray[np.uint8]:
    image.tile = [image.tile[0]._replace(args=rawmode)]
    image.load()
    return np.asarray(image)


def write_png16(
    path: Path,
    pixels: NDArray[np.uint16],
    icc_profile: bytes | None = None,
    text: dict[str, str] | None = None,
    exif: bytes | None = None,
) -> None:
    """Write ``(H, W)`` or ``(H, W, C)`` uint16 (C: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA)
    as a 16-bit PNG, with ``icc_profile`` as its iCCP chunk, ``text`` as Latin-1 tEXt
    chunks and ``exif`` as its eXIf chunk (before the pixels, where readers find them
    without decoding) when given."""
    if pixels.dtype != np.uint16:
        raise TypeError(f"pixels must be uint16, got {pixels.dtype}")
    samples = pixels[..., None] if pixels.ndim == 2 else pixels
    if samples.ndim != 3 or samples.shape[-1] not in _COLOUR_TYPES or 0 in samples.shape:
        raise ValueError(f"pixels must be (H, W) or (H, W, 1..4), got {pixels.shape}")
    height, width, channels = samples.shape
    header = struct.pack(">IIBBBBB", width, height, 16, _COLOUR_TYPES[channels], 0, 0, 0)
    raw = np.ascontiguousarray(samples, dtype=">u2").view(np.uint8).reshape(height, -1)
    compressor = zlib.compressobj(6)
    stream = []
    previous = np.zeros(raw.shape[1], np.uint8)
    for top in range(0, height, _BAND_ROWS):
        band = raw[top : top + _BAND_ROWS]
        stream.append(compressor.compress(_paeth_rows(band, previous, 2 * channels).tobytes()))
        previous = band[-1]
    stream.append(compressor.flush())
    data = b"".join(stream)
    with open(path, "wb") as file:
        file.write(b"\x89PNG\r\n\x1a\n")
        file.write(_chunk(b"IHDR", header))
        if icc_profile:
            file.write(_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(icc_profile)))
        for key, value in (text or {}).items():
            file.write(_chunk(b"tEXt", key.encode("latin-1") + b"\x00" + value.encode("latin-1")))
        if exif:  # the chunk holds the TIFF block itself, without JPEG's APP1 prefix
            file.write(_chunk(b"eXIf", exif.removeprefix(b"Exif\x00\x00")))
        for start in range(0, len(data), _IDAT_BYTES):
            file.write(_chunk(b"IDAT", data[start : start + _IDAT_BYTES]))
        file.write(_chunk(b"IEND", b""))


def _paeth_rows(
    rows: NDArray[np.uint8], above: NDArray[np.uint8], stride: int
) -> NDArray[np.uint8]:
    """Rows filtered with PNG's Paeth predictor (filter type 4), each led by its type byte.
    ``above`` is the row before the first (zeros for the image's first row)."""
    raw = rows.astype(np.int16)
    up = np.concatenate([above[None].astype(np.int16), raw[:-1]])
    left = np.zeros_like(raw)
    left[:, stride:] = raw[:, :-stride]
    corner = np.zeros_like(raw)
    corner[:, stride:] = up[:, :-stride]
    estimate = left + up - corner
    to_left, to_up, to_corner = (np.abs(estimate - near) for near in (left, up, corner))
    predicted = np.where(
        (to_left <= to_up) & (to_left <= to_corner), left, np.where(to_up <= to_corner, up, corner)
    )
    filtered = (raw - predicted).astype(np.uint8)  # modulo 256, as the format wants
    return np.hstack([np.full((len(rows), 1), 4, np.uint8), filtered])


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
