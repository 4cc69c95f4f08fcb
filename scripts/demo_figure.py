"""The README's demo picture: four tiers' rows of ``restore eval``'s example sheet.

``restore eval`` writes one row per tier to ``examples.png`` (degraded, restored, clean,
the four maps), in the order of ``skyclear.degrade.names.TIERS``. This keeps the column
titles and the rows of the tiers named, and scales the result for a README.

Usage::

    python scripts/demo_figure.py demo/report/examples.png docs/img/demo.png \\
        [--tiers haze,rain,snow,low_snow] [--scale 0.75]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from skyclear.degrade.names import TIERS

# The layout of ``restore.visual.image_grid`` as eval draws it: a title band, a gap, and
# rows of 256 px tiles, each followed by a gap.
HEADER, GAP, TILE = 16, 4, 256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("examples", type=Path, help="restore eval's examples.png")
    parser.add_argument("out", type=Path, help="the picture to write")
    parser.add_argument("--tiers", default="haze,rain,snow,low_snow", help="rows to keep")
    parser.add_argument("--scale", type=float, default=0.75, help="size of the result")
    args = parser.parse_args()

    sheet = np.asarray(Image.open(args.examples).convert("RGB"))
    rows = (sheet.shape[0] - HEADER - GAP) // (TILE + GAP)
    if rows != len(TIERS):
        raise SystemExit(f"{args.examples}: {rows} rows, not one per tier ({len(TIERS)})")
    parts = [sheet[: HEADER + GAP]]
    for tier in args.tiers.split(","):
        if tier not in TIERS:
            raise SystemExit(f"unknown tier {tier!r}; tiers are {', '.join(TIERS)}")
        top = HEADER + GAP + TIERS.index(tier) * (TILE + GAP)
        parts.append(sheet[top : top + TILE + GAP])
    picture = Image.fromarray(np.concatenate(parts))
    size = (round(picture.width * args.scale), round(picture.height * args.scale))
    picture = picture.resize(size, Image.Resampling.LANCZOS)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    picture.save(args.out, optimize=True)
    print(f"wrote {args.out} ({picture.width}x{picture.height})")


if __name__ == "__main__":
    main()
