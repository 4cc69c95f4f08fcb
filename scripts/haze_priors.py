"""The haze depth priors side by side on the sample photos: the picture in docs/physics.md.

For each sample photo (without its depth map, if it has one), the ``haze`` and
``low_haze_rain`` tiers drawn once (seed = the photo's index) and rendered with the
``flat`` prior (a hard horizon) and the ``ground`` prior (soft, open scenes only, following
the photo's edges), with the haze masks between them. The same parameters in both: only
the depth differs.

Run: ``python scripts/haze_priors.py --out docs/img/haze_priors.png [--width 176]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from labelled_grid import save_labelled
from PIL import Image
from skyclear.degrade import Composite, Haze
from skyclear.degrade.io import from_numpy, to_numpy
from skyclear.degrade.samples import load_samples

COLUMNS = (
    "clean",
    "haze, flat",
    "haze, ground",
    "mask, flat",
    "mask, ground",
    "low_haze_rain, flat",
    "low_haze_rain, ground",
)


def tiles(photo: np.ndarray, index: int, width: int) -> list[np.ndarray]:
    """The row of one photo, in the order of ``COLUMNS``, as uint8 ``H x W x 3``."""
    height = round(width * photo.shape[0] / photo.shape[1])
    resized = np.asarray(Image.fromarray(photo).resize((width, height), Image.Resampling.LANCZOS))
    x = from_numpy(resized)
    made: dict[str, torch.Tensor] = {}
    for prior in ("flat", "ground"):
        composite = Composite(haze=Haze(prior=prior))
        for tier in ("haze", "low_haze_rain"):
            params = composite.sample(tier, 1, torch.Generator().manual_seed(index))
            result = composite.apply(x, tier, params)
            made[f"{tier}, {prior}"] = result.image
            if tier == "haze":
                made[f"mask, {prior}"] = result.masks[:, 1:2].expand(-1, 3, -1, -1)
    made["clean"] = x
    return [to_numpy(made[name]) for name in COLUMNS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--width", type=int, default=176)
    args = parser.parse_args()
    rows = [
        np.concatenate(tiles(photo, i, args.width), axis=1)
        for i, (photo, _) in enumerate(load_samples().values())
    ]
    grid = np.concatenate(rows, axis=0)
    save_labelled(grid, list(COLUMNS), args.width, args.out)


if __name__ == "__main__":
    main()
