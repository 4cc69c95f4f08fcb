"""How degraded each tier is: the ``physical`` and ``cdd11`` presets against CDD-11's own
synthesis formula, on the same photos.

For each of the sample photos (fitted to ``--size``, no depth files: the presets use their
depth priors) and ``--draws`` seeds, every tier is made three ways and scored against the
clean photo with skyclear's evaluation metrics (PSNR and SSIM on 8-bit RGB, Gaussian window
sigma 1.5): the median and the 10th and 90th percentiles over photos and draws.

CDD-11's formula, as its public synthesis script defines it, in sRGB values, in its order:

* low light: Retinex re-exposure ``I L^(gamma - 1)``, ``L`` the illumination (the maximum
  over channels, Gaussian-blurred with sigma of 1/16 of the side, floored at 0.05),
  gamma in [2, 3]; then Gaussian noise of sigma in [0.03, 0.08]; clipped to [0, 1];
* rain: an additive streak layer of mean 0.12 (skyclear's rain opacity in clear air,
  scaled to that mean), clipped;
* snow: white alpha compositing ``I (1 - a) + a`` with skyclear's snow opacity;
* haze: ``I t + A (1 - t)``, ``t = exp(-beta d)``, beta in [1, 2], ``A`` in [0.6, 0.9],
  ``d`` a relative depth, 1 at the top row falling linearly to 0 at the bottom (CDD-11 used
  estimated depth; these photos have none), clipped at 0.7.

Run: ``python benchmarks/severity.py [--size 256] [--draws 8]``.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from skyclear.degrade import TIERS, Rain, Snow, parse_tier
from skyclear.degrade.io import from_numpy
from skyclear.degrade.presets import PRESETS, preset
from skyclear.degrade.samples import load_samples
from skyclear.degrade.store.ingest import fit_photo
from skyclear.restore.metrics import psnr, ssim

RAIN_MEAN = 0.12


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, round(3 * sigma))
    taps = torch.exp(-(torch.arange(-radius, radius + 1, dtype=x.dtype) ** 2) / (2 * sigma**2))
    taps = (taps / taps.sum()).view(1, 1, 1, -1)
    padded = torch.nn.functional.pad(x, (radius, radius, 0, 0), mode="replicate")
    rows = torch.nn.functional.conv2d(padded, taps)
    padded = torch.nn.functional.pad(rows, (0, 0, radius, radius), mode="replicate")
    return torch.nn.functional.conv2d(padded, taps.transpose(-1, -2))


def cdd11_formula(x: torch.Tensor, tier: str, generator: torch.Generator) -> torch.Tensor:
    """``x`` ``(1, 3, H, W)`` sRGB degraded into ``tier`` by CDD-11's formula."""

    def uniform(low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=generator))

    present = parse_tier(tier)
    height, width = x.shape[-2:]
    if "low" in present:
        light = _blur(x.amax(1, keepdim=True), max(height, width) / 16).clamp_min(0.05)
        x = x * light ** (uniform(2.0, 3.0) - 1.0)
        noise = torch.randn(x.shape, generator=generator) * uniform(0.03, 0.08)
        x = (x + noise).clamp(0, 1)
    if "rain" in present:
        streaks = Rain(brightness=(1.0, 1.0), veil=(0.0, 0.0))(torch.zeros_like(x), generator)
        layer = streaks.mask * (RAIN_MEAN / streaks.mask.mean().clamp_min(1e-6))
        x = (x + layer).clamp(0, 1)
    if "snow" in present:
        flakes = Snow(veil=(0.0, 0.0))(torch.zeros_like(x), generator).mask
        x = x * (1 - flakes) + flakes
    if "haze" in present:
        rows = torch.linspace(1.0, 0.0, height).view(1, 1, -1, 1)
        t = torch.exp(-uniform(1.0, 2.0) * rows.clamp_max(0.7))
        x = x * t + uniform(0.6, 0.9) * (1 - t)
    return x.clamp(0, 1)


def _quantised(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round() / 255


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--draws", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    photos = [from_numpy(fit_photo(photo, args.size)) for photo, _ in load_samples().values()]
    makers = {
        **{f"preset {name}": preset(name) for name in PRESETS},
        "CDD-11 formula": None,
    }
    started = time.perf_counter()
    scores: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for tier_index, tier in enumerate(TIERS):
        for label, composite in makers.items():
            rows = scores.setdefault((tier, label), [])
            for photo_index, clean in enumerate(photos):
                for draw in range(args.draws):
                    seed = (tier_index * 1000 + photo_index) * 1000 + draw
                    generator = torch.Generator().manual_seed(seed)
                    if composite is None:
                        degraded = cdd11_formula(clean, tier, generator)
                    else:
                        degraded = composite(clean, tier, generator).image
                    degraded = _quantised(degraded)
                    rows.append((float(psnr(degraded, clean)), float(ssim(degraded, clean))))
    print(f"{len(photos)} photos x {args.draws} draws per tier, {args.size} px, "
          f"{time.perf_counter() - started:.0f} s; torch {torch.__version__}, "
          f"Python {sys.version.split()[0]}")  # fmt: skip
    print("| tier | made by | PSNR median [p10, p90] | SSIM median [p10, p90] |")
    print("|---|---|---|---|")
    for tier in TIERS:
        for label in makers:
            values = np.array(scores[(tier, label)])
            cells = []
            for column, digits in ((0, 2), (1, 3)):
                p10, median, p90 = np.percentile(values[:, column], [10, 50, 90])
                cells.append(f"{median:.{digits}f} [{p10:.{digits}f}, {p90:.{digits}f}]")
            print(f"| {tier} | {label} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
