"""Both players' training curves of adversarial runs (``darcot``), from their logs.

Four panels over the steps, one line per run: the critic's estimate of the transport
distance (``wasserstein``, ``F(x) - F(T(y))``), its gradient penalty, the map's
adversarial term (``-F(T(y))``) and its residual cost (``rms + fourier``).

Usage::

    python scripts/adversarial_curves.py runs/darcot runs/darcot-u --out curves.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

PANELS = (
    ("wasserstein", "critic: F(x) - F(T(y))"),
    ("penalty", "critic: gradient penalty"),
    ("adversarial", "map: -F(T(y))"),
    ("cost", "map: rms(r) + |FFT r|_1"),
)


def _records(run: Path) -> list[dict[str, float]]:
    log = run / "log.jsonl"
    if not log.is_file():
        raise SystemExit(f"{run}: no log.jsonl (not a run folder)")
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run folders of darcot runs")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--label", action="append", default=[], help="a name per run")
    args = parser.parse_args()
    labels = args.label + [run.name for run in args.runs[len(args.label) :]]

    figure, axes = plt.subplots(1, len(PANELS), figsize=(14, 3.4), dpi=110)
    for run, label in zip(args.runs, labels, strict=True):
        train = [r for r in _records(run) if r.get("kind") == "train"]
        if not train or "wasserstein" not in train[0]:
            raise SystemExit(f"{run}: its log has no critic terms (not an adversarial run)")
        steps = [r["step"] for r in train]
        for axis, (key, title) in zip(axes, PANELS, strict=True):
            values = [r["rms"] + r["fourier"] if key == "cost" else r[key] for r in train]
            axis.plot(steps, values, label=label)
            axis.set_title(title, fontsize=9)
            axis.set_xlabel("step")
            axis.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
