"""Pictures for people: the parser's maps in colour, and image grids."""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image, ImageDraw
from skyclear.degrade.io import to_numpy
from skyclear.degrade.names import DEGRADATIONS
from torch import Tensor

__all__ = [
    "EXAMPLE_TITLES",
    "MAP_COLOURS",
    "coloured_maps",
    "example_row",
    "image_grid",
    "maps_strip",
]

#: The colour of each degradation's map at full strength (low, haze, rain, snow).
MAP_COLOURS: dict[str, tuple[int, int, int]] = {
    "low": (255, 176, 32),
    "haze": (200, 200, 215),
    "rain": (40, 120, 255),
    "snow": (120, 255, 230),
}


#: The columns of an example row (see ``example_row``).
EXAMPLE_TITLES = ["degraded", "restored", "clean", *DEGRADATIONS]


def example_row(
    degraded: Tensor, restored: Tensor, clean: Tensor, maps: Tensor
) -> list[NDArray[np.uint8]]:
    """One sample as grid tiles: the three ``(3, H, W)`` images, then its four coloured
    parser maps (``EXAMPLE_TITLES``)."""
    return [*(to_numpy(image) for image in (degraded, restored, clean)), *coloured_maps(maps)]


def coloured_maps(maps: Tensor) -> list[NDArray[np.uint8]]:
    """Each of the four ``(4, H, W)`` maps as an ``(H, W, 3)`` uint8 image: black where
    the map is 0, the degradation's colour (``MAP_COLOURS``) where it is 1."""
    if maps.ndim != 3 or maps.shape[0] != len(DEGRADATIONS):
        raise ValueError(f"maps must be (4, H, W), got {tuple(maps.shape)}")
    pictures = []
    for value, name in zip(maps.detach().float().clamp(0, 1).cpu(), DEGRADATIONS, strict=True):
        colour = torch.tensor(MAP_COLOURS[name], dtype=torch.float32)
        pictures.append((value[..., None] * colour).round().to(torch.uint8).numpy())
    return pictures


def image_grid(
    rows: list[list[NDArray[np.uint8]]],
    titles: list[str] | None = None,
    gap: int = 4,
    row_titles: list[str] | None = None,
) -> NDArray[np.uint8]:
    """Tiles ``rows[i][j]`` (``(H, W, 3)`` uint8) on a white sheet, with ``titles`` above
    the columns and ``row_titles`` left of the rows."""
    if not rows or not rows[0]:
        raise ValueError("image_grid needs at least one tile")
    heights = [max(tile.shape[0] for tile in row) for row in rows]
    widths = [max(row[j].shape[1] for row in rows) for j in range(len(rows[0]))]
    header = 16 if titles else 0
    margin = 96 if row_titles else 0
    sheet = Image.new(
        "RGB",
        (
            margin + sum(widths) + gap * (len(widths) + 1),
            header + sum(heights) + gap * (len(rows) + 1),
        ),
        "white",
    )
    draw = ImageDraw.Draw(sheet)
    if row_titles:
        top = header + gap
        for name, height in zip(row_titles, heights, strict=True):
            draw.text((gap, top + height // 2 - 6), name, fill=(0, 0, 0))
            top += height + gap
    left = margin + gap
    for j, width in enumerate(widths):
        if titles:
            draw.text((left + 2, 2), titles[j], fill=(0, 0, 0))
        top = header + gap
        for row, height in zip(rows, heights, strict=True):
            sheet.paste(Image.fromarray(row[j]), (left, top))
            top += height + gap
        left += width + gap
    return np.asarray(sheet)


def maps_strip(
    maps: Tensor, weights: Tensor | None = None, longest: int = 1024, shortest: int = 128
) -> NDArray[np.uint8]:
    """The four parser maps ``(4, H, W)`` side by side in colour, titled with their
    degradation's name and, given ``weights`` ``(4,)``, the parser's global weight.

    Each map is resized (area average down, nearest neighbour up) so that its longer side
    is between ``shortest`` (titles need the room) and ``longest`` (a strip for people,
    not the full-resolution field).
    """
    if maps.ndim != 3 or maps.shape[0] != len(DEGRADATIONS):
        raise ValueError(f"maps must be (4, H, W), got {tuple(maps.shape)}")
    height, width = maps.shape[-2:]
    side = min(max(max(height, width), shortest), longest)
    scale = side / max(height, width)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    if size != (height, width):
        mode = "area" if scale < 1 else "nearest"
        maps = torch.nn.functional.interpolate(maps[None].float(), size=size, mode=mode)[0]
    titles = list(DEGRADATIONS)
    if weights is not None:
        titles = [f"{name} w={float(w):.2f}" for name, w in zip(titles, weights, strict=True)]
    return image_grid([coloured_maps(maps)], titles)
