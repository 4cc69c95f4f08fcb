"""Quality against network evaluations: one line per run of a ``restore compare`` report.

Reads ``compare.json`` and draws the PSNR of a tier group (``all`` by default) against the
NFE each run was scored at (its method's own and every ``--also-nfe``), log-scaled, one
marker per point, the method's own NFE drawn larger.

Usage::

    python scripts/nfe_plot.py runs/compare/compare.json docs/img/methods_nfe.png [--group all]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

OWN_NFE = {"f2d": 1, "fm": 1, "irsde": 100, "irflow": 4, "resflow": 4, "darcot": 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="compare.json")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--group", default="all", help="single, pair, triple or all")
    args = parser.parse_args()

    document = json.loads(args.report.read_text())
    figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for run in document["runs"]:
        points = sorted(
            (score["nfe"], score["groups"][args.group]["psnr"]) for score in run["scores"]
        )
        nfes, psnrs = zip(*points, strict=True)
        (line,) = axes.plot(nfes, psnrs, marker="o", label=run["method"])
        own = [(n, p) for n, p in points if n == OWN_NFE.get(run["method"])]
        if own:
            axes.plot(*own[0], marker="o", markersize=11, color=line.get_color(), alpha=0.5)
    axes.axhline(document["input"][args.group]["psnr"], color="grey", linestyle=":",
                 label="input (untouched)")  # fmt: skip
    axes.set_xscale("log")
    ticks = sorted({score["nfe"] for run in document["runs"] for score in run["scores"]})
    axes.set_xticks(ticks, [str(tick) for tick in ticks])
    axes.minorticks_off()
    axes.set_xlabel("network evaluations per image (NFE); large marker: the method's own")
    axes.set_ylabel(f"PSNR, {args.group} tiers (dB)")
    axes.set_title(f"{document['samples']} test samples, {document['device']}")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
