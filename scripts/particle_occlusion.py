"""Particles behind the scene: the picture in docs/physics.md.

The motorcycle sample (with its metric depth, 2.1 to 5 m) in the ``rain`` and ``snow``
tiers, the same parameters twice: every layer in front of the scene (no depth given) and
each layer hidden where the scene is nearer than it (depth given); the masks below.

Run: ``python scripts/particle_occlusion.py --out docs/img/occlusion.png [--width 320]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from labelled_grid import save_labelled
from PIL import Image
from skyclear.degrade import DEGRADATIONS, Composite
from skyclear.degrade.io import from_numpy, to_numpy
from skyclear.degrade.samples import load_samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--width", type=int, default=320)
    args = parser.parse_args()
    photo, depth = load_samples()["motorcycle"]
    assert depth is not None
    height = round(args.width * photo.shape[0] / photo.shape[1])
    resized = np.asarray(Image.fromarray(photo).resize((args.width, height), Image.LANCZOS))
    metres = np.asarray(Image.fromarray(depth).resize((args.width, height), Image.BILINEAR))
    x, scene = from_numpy(resized), torch.from_numpy(metres.copy())[None, None]
    composite = Composite()
    columns, names = [], []
    for tier in ("rain", "snow"):
        params = composite.sample(tier, 1, torch.Generator().manual_seed(2))
        for label, given in (("in front of everything", None), ("behind the scene", scene)):
            result = composite.apply(x, tier, params, depth=given)
            mask = result.masks[:, DEGRADATIONS.index(tier)].expand(3, -1, -1)
            columns.append(np.concatenate([to_numpy(result.image), to_numpy(mask)], axis=0))
            names.append(f"{tier}, {label}")
    grid = np.concatenate(columns, axis=1)
    save_labelled(grid, names, args.width, args.out)


if __name__ == "__main__":
    main()
