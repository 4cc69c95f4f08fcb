"""make-cdd11 on Dask against its own worker processes, on one machine.

``degrade make-cdd11 --scheduler local:2`` (a ``LocalCluster`` of two one-thread workers)
against ``--workers 2`` (skyclear's spawned pool), the same photos, 512 px, all 11 tiers,
in alternation (``--rounds`` each): samples/s as the command reports them, over the whole
run (workers' start and ingest included) and of synthesis and writing alone, the wall
time of the whole command and the ratio of Dask's rate to the pool's (of the means, and
the median of the ratios within each round's pair). Target: Dask within 10 % of the pool.

Usage::

    python benchmarks/dask_synthesis.py [--photos 50] [--rounds 2]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from synthesis import Run, make_photos, run_make_cdd11


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    ways = {"--workers 2": (), "--scheduler local:2": ("--scheduler", "local:2")}
    results: dict[str, list[Run]] = {way: [] for way in ways}
    with tempfile.TemporaryDirectory() as folder:
        src, out = Path(folder) / "photos", Path(folder) / "d.zarr"
        make_photos(src, args.photos)
        for _ in range(args.rounds):
            for way, extra in ways.items():
                results[way].append(run_make_cdd11(src, out, 2, extra))
    print(f"- machine: {platform.processor() or platform.machine()}, Python "
          f"{sys.version.split()[0]}; {args.photos} photos, {args.photos * 11} samples, "
          f"512 px, {args.rounds} rounds in alternation\n")  # fmt: skip
    print("| make-cdd11 | samples/s, whole run (each round) | x --workers 2 "
          "| samples/s, synthesising (each round) | x --workers 2 | wall s (each round) "
          "| peak RSS MiB |")  # fmt: skip
    print("|---|---|---:|---|---:|---|---:|")
    pool = results["--workers 2"]
    for way, runs in results.items():
        cells = []
        for field in ("rate", "synthesis_rate"):
            rates = [getattr(run, field) for run in runs]
            base = statistics.mean(getattr(run, field) for run in pool)
            cells += [", ".join(f"{rate:.1f}" for rate in rates),
                      f"{statistics.mean(rates) / base:.2f}x"]  # fmt: skip
        walls = ", ".join(f"{run.wall:.1f}" for run in runs)
        peak = max(run.peak for run in runs)
        print(f"| `{way}` | {' | '.join(cells)} | {walls} | {peak:.0f} |")
    # Each round's pair ran back to back: the ratio within a pair is what the VM's slower
    # and faster periods change least.
    for field, what in (("rate", "whole run"), ("synthesis_rate", "synthesising")):
        pairs = [getattr(dask, field) / getattr(ours, field) for dask, ours in
                 zip(results["--scheduler local:2"], pool, strict=True)]  # fmt: skip
        print(
            f"\nper round, local:2 / --workers 2, {what}: "
            f"{', '.join(f'{r:.2f}' for r in pairs)}; median {statistics.median(pairs):.2f}x"
        )


if __name__ == "__main__":
    main()
