"""A contact sheet of the 11 tiers and their masks, for a person to look at."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from .compose import DEGRADATIONS, TIERS, Composite
from .io import to_numpy

__all__ = ["colourise", "preview_grid"]

# A perceptually ordered dark-to-bright ramp (inferno-like), sampled at 6 stops.
_RAMP = np.array(
    [
        [0, 0, 4],
        [66, 10, 104],
        [147, 38, 103],
        [221, 81, 58],
        [252, 165, 10],
        [252, 255, 164],
    ],
    dtype=np.float32,
)
_LABEL_BAND = 22
_GUTTER = 4
_BACKGROUND = (250, 250, 250)


def colourise(mask: NDArray[np.floating]) -> NDArray[np.uint8]:
    """Map an ``(H, W)`` mask in [0, 1] to ``(H, W, 3)`` uint8 through the colour ramp."""
    position = np.clip(mask, 0.0, 1.0) * (len(_RAMP) - 1)
    low = np.floor(position).astype(np.int64).clip(0, len(_RAMP) - 2)
    frac = (position - low)[..., None]
    rgb = _RAMP[low] * (1.0 - frac) + _RAMP[low + 1] * frac
    return np.round(rgb).astype(np.uint8)


def _fit(x: Tensor, depth: Tensor | None, size: int) -> tuple[Tensor, Tensor | None]:
    """Resize so the longer side is ``size`` (depth resized with the image)."""
    height, width = x.shape[-2:]
    scale = size / max(height, width)
    target = (max(8, round(height * scale)), max(8, round(width * scale)))
    x = F.interpolate(x, size=target, mode="bilinear", antialias=True, align_corners=False)
    x = x.clamp(0.0, 1.0)
    if depth is not None:
        depth = F.interpolate(depth, size=target, mode="nearest")
    return x, depth


def preview_grid(
    x: Tensor,
    *,
    depth: Tensor | None = None,
    seed: int = 0,
    size: int = 192,
    composite: Composite | None = None,
) -> Image.Image:
    """Render the clean image and the 11 tiers (columns) over their 4 masks (rows).

    Args:
        x: ``(1, 3, H, W)`` sRGB image in [0, 1].
        depth: optional ``(1, 1, H, W)`` depth in metres for haze.
        seed: seed of the degradations.
        size: longer side of each thumbnail, pixels.
        composite: the operators and order (defaults to ``Composite()``).
    """
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"preview_grid takes one image (1, 3, H, W), got {tuple(x.shape)}")
    composite = composite or Composite()
    x, depth = _fit(x, depth, size)
    columns: list[tuple[str, NDArray[np.uint8], Tensor | None]] = [("clean", to_numpy(x), None)]
    generator = torch.Generator().manual_seed(seed)
    for tier in TIERS:
        result = composite(x, tier, generator, depth)
        columns.append((tier, to_numpy(result.image), result.masks[0]))

    tile_h, tile_w = columns[0][1].shape[:2]
    label_w = 56
    rows = 1 + len(DEGRADATIONS)
    width = label_w + len(columns) * (tile_w + _GUTTER)
    height = _LABEL_BAND + rows * (tile_h + _GUTTER)
    sheet = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=13)
    for row, label in enumerate(("image", *(f"{name} mask" for name in DEGRADATIONS))):
        top = _LABEL_BAND + row * (tile_h + _GUTTER)
        draw.text(
            (4, top + tile_h // 2 - 7), label.replace(" ", "\n"), fill=(40, 40, 40), font=font
        )
    for col, (title, image, masks) in enumerate(columns):
        left = label_w + col * (tile_w + _GUTTER)
        draw.text((left + 2, 4), title, fill=(20, 20, 20), font=font)
        sheet.paste(Image.fromarray(image), (left, _LABEL_BAND))
        for row in range(len(DEGRADATIONS)):
            top = _LABEL_BAND + (row + 1) * (tile_h + _GUTTER)
            if masks is None:
                continue
            tile = colourise(masks[row].detach().float().cpu().numpy())
            sheet.paste(Image.fromarray(tile), (left, top))
    return sheet
