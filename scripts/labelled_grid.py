"""A grid of equal-width image columns with a name above each, saved as a PNG (for the
pictures the scripts here draw for the docs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

LABEL = 16  # pixels above the tiles for the column names


def save_labelled(grid: np.ndarray, names: list[str], column_width: int, out: Path) -> None:
    """Save ``grid`` (uint8 ``H x W x 3``, columns ``column_width`` pixels wide) with
    ``names`` above its columns to ``out``, and say so."""
    canvas = Image.new("RGB", (grid.shape[1], grid.shape[0] + LABEL), "white")
    canvas.paste(Image.fromarray(grid), (0, LABEL))
    draw = ImageDraw.Draw(canvas)
    for column, name in enumerate(names):
        draw.text((column * column_width + 4, 2), name, fill="black")
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out, optimize=True)
    print(f"wrote {out} ({canvas.width}x{canvas.height})")
