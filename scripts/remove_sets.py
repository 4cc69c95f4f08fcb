"""Remove only what you choose: a remove-set restorer against partial targets.

For every test sample with two or more degradations and every non-empty proper subset
``R`` of them, the partial target (the clean photo degraded by what it keeps, replayed from
the store's parameters) is compared with:

* ``told``: the restorer told to remove ``R`` (``remove=`` its vector);
* ``full``: the same restorer asked for full restoration (what it does without
  ``--remove``);
* ``input``: the degraded image itself.

PSNR (8-bit RGB, whole image) against the partial target, and the same inside the kept
degradations' region (their masks >= 0.5): how well what should stay stayed. Then full
restoration of every test sample against its clean photo, by this restorer and by a
baseline trained without remove-sets (``--baseline``).

Usage::

    python scripts/remove_sets.py --ckpt runs/partial/last.pt --data data.zarr \\
        [--baseline runs/f2d/last.pt]
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections import defaultdict

import numpy as np
import torch
from skyclear.datasets import CDD11Zarr
from skyclear.datasets.partial import Removal, removal_vector
from skyclear.degrade.compose import parse_tier
from skyclear.degrade.names import DEGRADATIONS, TIERS
from skyclear.restore.inference import Restorer
from torch import Tensor


def _codes(image: Tensor) -> Tensor:
    """``(1, 3, H, W)`` or ``(3, H, W)`` as ``(3, H, W)`` 8-bit levels."""
    return (image.reshape(-1, *image.shape[-2:]).clamp(0, 1) * 255).round()


def psnr(a: Tensor, b: Tensor, region: Tensor | None = None) -> float:
    difference = (_codes(a) - _codes(b)).square()
    if region is not None:
        if not bool(region.any()):
            return float("nan")
        difference = difference[:, region]
    return float(10 * np.log10(255.0**2 / max(float(difference.mean()), 1e-10)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--baseline")
    args = parser.parse_args()
    start = time.perf_counter()
    restorer = Restorer.from_checkpoint(args.ckpt, device="cpu")
    rows: dict[str, list[list[float]]] = defaultdict(list)
    plain = CDD11Zarr(args.data, "test", None, False)
    pairs_and_triples = [tier for tier in TIERS if len(parse_tier(tier)) > 1]
    for tier in pairs_and_triples:
        present = parse_tier(tier)
        for size in range(1, len(present)):
            for removed in itertools.combinations(present, size):
                remove = frozenset(removed)
                data = CDD11Zarr(args.data, "test", None, False, tiers=(tier,),
                                 removal=Removal(remove=remove))  # fmt: skip
                kept = [DEGRADATIONS.index(name) for name in present if name not in remove]
                for item in range(len(data)):
                    sample = data[item]
                    degraded, target = sample["degraded"][None], sample["target"][None]
                    region = (sample["masks"][kept] >= 0.5).any(0)
                    with torch.no_grad():
                        told = restorer(degraded, remove=removal_vector(remove))[0]
                        full = restorer(degraded)[0]
                    group = f"{len(present)} degradations, remove {size}"
                    rows[group].append([
                        psnr(degraded, target), psnr(full, target), psnr(told, target),
                        psnr(full, target, region), psnr(told, target, region),
                    ])  # fmt: skip
    rows["all"] = [row for group in list(rows) for row in rows[group]]
    print("PSNR against the partial target (dB), whole image and in the kept region\n")
    print("| remove-sets | n | input | full | told | kept region: full | kept region: told |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for group, values in rows.items():
        means = np.nanmean(np.array(values), axis=0)
        cells = " | ".join(f"{value:.2f}" for value in means)
        print(f"| {group} | {len(values)} | {cells} |")
    print("\nFull restoration against the clean photo, all test samples (PSNR dB):\n")
    restorers = {"remove-set restorer": restorer}
    if args.baseline:
        baseline = Restorer.from_checkpoint(args.baseline, device="cpu")
        restorers["baseline without remove-sets"] = baseline
    for name, model in restorers.items():
        scores = []
        for item in range(len(plain)):
            sample = plain[item]
            with torch.no_grad():
                restored = model(sample["degraded"][None])[0]
            scores.append(psnr(restored, sample["clean"][None]))
        print(f"- {name}: {np.mean(scores):.2f} dB over {len(scores)} samples")
    print(f"\nwall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
