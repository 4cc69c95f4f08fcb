"""Tiled against whole restoration of the same photo, and the memory estimate against the
measured peak.

**Tiles.** The sample photos, resized to 1080x720 and degraded in four tiers (seed 0),
restored by a checkpoint whole and with ``--tile`` (default 256), three ways side by side:

* ``shared``: skyclear's tiling: every tile replays the photo's image-level statistics and
  discards a margin of ``tile // 8`` pixels on shared sides;
* ``own stats``: the same tiles pooling over themselves (what tiling did before);
* ``own stats, no margin``: and without the margin (blending alone).

Differences are in 8-bit grey levels: mean, 99.9th percentile and maximum over all pixels.
The targets: mean < 1, 99.9th percentile < 8.

**Untrained deeper configs** (``--untrained small paper``): random weights (seed 0, the
residual scales set to 0.3 so every path carries signal) on one synthetic 1080x720 photo,
a dark foreground under a bright sky, the same three ways.

**Memory** (``--memory``): for each config and side, in a fresh process each, the peak RSS
of one whole-image network evaluation above the process's RSS before it, against
``skyclear.restore.memory.activation_bytes``. The estimate must not fall below the
measurement (ratio >= 1).

Run: ``python benchmarks/tiles.py --ckpt demo/run/best.pt [--tile 256] [--untrained small paper]
[--memory]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

TIERS = ("low_haze", "haze", "haze_rain", "low_haze_snow")
MODES = ("shared", "own stats", "own stats, no margin")


def _photos(side: tuple[int, int]) -> dict[str, object]:
    import numpy as np
    from PIL import Image
    from skyclear.degrade.samples import load_samples

    return {
        name: np.asarray(Image.fromarray(photo).resize(side, Image.Resampling.LANCZOS))
        for name, (photo, _) in load_samples().items()
    }


def _compare(restorer: object, images: list[object], tile: int, label: str) -> list[tuple]:
    """One row per mode: differences from whole restoration over ``images``, and time."""
    import torch
    from skyclear.restore.nn import ImageStatistics

    replay = ImageStatistics.replay
    scores: dict[str, list[torch.Tensor]] = {mode: [] for mode in MODES}
    seconds = {"whole": 0.0, **dict.fromkeys(MODES, 0.0)}
    try:
        for degraded in images:
            # Whole restoration of a photo above the restorer's context side replays
            # statistics too: it must see the real replay, not the last mode's.
            ImageStatistics.replay = replay  # type: ignore[method-assign]
            start = time.perf_counter()
            whole, _ = restorer(degraded)  # type: ignore[operator]
            seconds["whole"] += time.perf_counter() - start
            for mode in MODES:
                # "own stats": every tile records its own statistics instead of replaying.
                own = (lambda self: ImageStatistics()) if mode != "shared" else replay
                ImageStatistics.replay = own  # type: ignore[method-assign]
                margin = 0 if "no margin" in mode else None
                start = time.perf_counter()
                tiled, _ = restorer.tiled(degraded, tile, margin=margin)  # type: ignore[attr-defined]
                seconds[mode] += time.perf_counter() - start
                scores[mode].append(((tiled - whole).abs() * 255).flatten())
    finally:
        ImageStatistics.replay = replay  # type: ignore[method-assign]
    rows = []
    for mode in MODES:
        d = torch.cat(scores[mode])
        rows.append((label, mode, float(d.mean()), float(d.quantile(0.999)), float(d.max()),
                     seconds[mode] / seconds["whole"]))  # fmt: skip
    return rows


def _table(title: str, first: str, rows: list[tuple]) -> None:
    print(title)
    print(f"| {first} | tiles | mean | 99.9th pct | max | time x whole |")
    print("|---|---|---:|---:|---:|---:|")
    for label, mode, mean, tail, top, ratio in rows:
        print(f"| {label} | {mode} | {mean:.3f} | {tail:.2f} | {top:.2f} | {ratio:.2f} |")


def tiles(ckpt: Path, tile: int) -> None:
    import torch
    from skyclear.degrade import Composite
    from skyclear.degrade.io import from_numpy
    from skyclear.restore.inference import Restorer

    torch.set_num_threads(2)
    restorer = Restorer.from_checkpoint(ckpt, device="cpu")
    photos = list(_photos((1080, 720)).values())
    rows = []
    for tier in TIERS:
        images = [
            Composite()(from_numpy(photo), tier, generator=torch.Generator().manual_seed(i)).image  # type: ignore[arg-type]
            for i, photo in enumerate(photos)
        ]
        rows += _compare(restorer, images, tile, tier)
    _table(f"tiled (--tile {tile}) against whole restoration, 1080x720, {ckpt}", "tier", rows)


def untrained(configs: list[str], tile: int) -> None:
    import torch
    from skyclear.restore.config import method_of, preset
    from skyclear.restore.inference import Restorer
    from skyclear.restore.nn import F2DNet

    torch.set_num_threads(2)
    height, width = 720, 1080
    g = torch.Generator().manual_seed(1)
    rows_ = torch.linspace(0, 1, height).view(1, 1, -1, 1)
    cols = torch.linspace(0, 1, width).view(1, 1, 1, -1)
    tint = torch.tensor([1.0, 0.8, 0.5]).view(1, 3, 1, 1)
    noise = 0.1 * torch.rand(1, 3, height, width, generator=g)
    photo = (0.1 + 0.6 * rows_ * tint + 0.2 * cols + noise).clamp(0, 1)
    rows = []
    for name in configs:
        torch.manual_seed(0)
        config = preset(name)
        model = F2DNet(config.model)
        for key, parameter in model.named_parameters():
            if key.endswith((".beta", ".gamma")):
                torch.nn.init.constant_(parameter, 0.3)
        restorer = Restorer(model.eval(), method_of(config), config, torch.device("cpu"))
        rows += _compare(restorer, [photo], tile, name)
    _table(f"tiled (--tile {tile}) against whole, untrained, 1080x720", "config", rows)


def _peak(config: str, side: int) -> dict[str, float]:
    import torch
    from skyclear.restore.memory import activation_bytes
    from skyclear.restore.nn import build_model

    torch.set_num_threads(2)
    model = build_model(config).eval()
    x = torch.rand(1, 3, side, side)
    t = torch.zeros(1)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with torch.no_grad():
        model(x, t, x)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"measured": after - before, "estimate": activation_bytes(model.config, side, side)}


def memory(configs: list[str], sides: list[int]) -> None:
    print("| config | side | measured MiB | estimate MiB | estimate / measured |")
    print("|---|---:|---:|---:|---:|")
    for config in configs:
        for side in sides:
            out = subprocess.run(
                [sys.executable, __file__, "--peak", config, str(side)],
                check=True, capture_output=True, text=True,
            ).stdout  # fmt: skip
            row = json.loads(out.strip().splitlines()[-1])
            measured, estimate = row["measured"] / 2**20, row["estimate"] / 2**20
            ratio = estimate / measured if measured > 0 else float("inf")
            print(f"| {config} | {side} | {measured:.0f} | {estimate:.0f} | {ratio:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path)
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--untrained", nargs="+", default=[], metavar="CONFIG")
    parser.add_argument("--configs", nargs="+", default=["tiny", "small", "paper"])
    parser.add_argument("--sides", nargs="+", type=int, default=[512, 1024])
    parser.add_argument("--peak", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak:
        print(json.dumps(_peak(args.peak[0], int(args.peak[1]))))
        return
    if args.ckpt:
        tiles(args.ckpt, args.tile)
    if args.untrained:
        untrained(args.untrained, args.tile)
    if args.memory:
        memory(args.configs, args.sides)


if __name__ == "__main__":
    main()
