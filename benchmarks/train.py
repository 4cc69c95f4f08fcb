"""Training throughput against the loader that feeds it.

Measures, on this machine, side by side in one run, for each (config, crop):

1. training samples/s: ``restore.train.train`` on a make-cdd11 store with the config's
   own loader (2 workers, one thread each), read from its log after a warm-up window;
2. loader samples/s: the same training loader alone (same dataset, crop, batch and
   workers), iterated as fast as it goes;

and reports their ratio. Target: the loader delivers at least 3x what training consumes,
so data never holds training back. On a CPU: tiny and small at 128 and 256 crops; on
CUDA (when present): the paper config at 256 and 512 with bf16 as well.

The store holds 20 distinct photos made from the scikit-image samples (upscaled, shifted,
flipped and tinted as in ``synthesis.py``) at 512 x 512 in all 11 tiers, 2 variants each.
Run:

    python benchmarks/train.py [--steps 40] [--workdir DIR] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from skyclear.restore.config import override, preset
from skyclear.restore.data import open_dataset
from skyclear.restore.train import train
from skyclear.restore.train.sampling import StepSampler, training_loader

TARGET_RATIO = 3.0
BATCH = 8
WORKERS = 2


def make_store(workdir: Path, photos: int = 20) -> Path:
    """A 512 x 512 make-cdd11 store of ``photos`` distinct photos made from the sample
    photos (see ``synthesis.make_photos``), 2 variants per tier (built once per workdir)."""
    store = workdir / "train-bench.zarr"
    if store.exists():
        return store
    sys.path.insert(0, str(Path(__file__).parent))
    from synthesis import make_photos

    make_photos(workdir / "photos", photos)
    subprocess.run(
        [
            Path(sys.executable).parent / "degrade", "make-cdd11", "--src", workdir / "photos",
            "--out", store, "--size", "512", "--variants", "2", "--workers", "2",
            "--test-fraction", "0.1",
        ],
        check=True,
    )  # fmt: skip
    return store


def training_rate(store: Path, name: str, crop: int, steps: int, workdir: Path) -> float:
    """Samples/s of ``train`` after the first ``steps // 4`` steps (start-up excluded)."""
    run = workdir / f"run-{name}-{crop}"
    shutil.rmtree(run, ignore_errors=True)
    warm = max(steps // 4, 1)
    config = override(
        preset(name),
        [
            f"steps={steps}", f"data.batch_size={BATCH}", f"data.crop={crop}",
            f"data.workers={WORKERS}", f"log_every={warm}", f"val_every={10 * steps}",
            f"ckpt_every={10 * steps}", "data.val_samples=1", "data.grid_samples=0",
        ],
    )  # fmt: skip
    train(config, store, run)
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    rates = [r["samples_per_second"] for r in records if r["kind"] == "train"][1:]
    return sum(rates) / len(rates)


def loader_rate(store: Path, crop: int, batches: int) -> float:
    """Samples/s of the training loader alone."""
    dataset = open_dataset(store, "train", crop, True, uint8=True)  # as the trainer does
    loader = training_loader(dataset, StepSampler(len(dataset), BATCH, 0), WORKERS, False, 0)
    iterator = iter(loader)
    for _ in range(3):  # start the workers
        next(iterator)
    started = time.perf_counter()
    for batch in itertools.islice(iterator, batches):
        assert batch["degraded"].shape[-1] == crop
    rate = batches * BATCH / (time.perf_counter() - started)
    del iterator, loader
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="training steps per case")
    parser.add_argument("--workdir", type=Path, help="keep the store here (default: temp)")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="skyclear-train-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    store = make_store(workdir)
    cases = [("tiny", 128), ("tiny", 256), ("small", 128), ("small", 256)]
    if torch.cuda.is_available():
        cases += [("paper", 256), ("paper", 512)]
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    lines = [
        f"Training vs loader, batch {BATCH}, {WORKERS} loader workers (one thread each); "
        f"{device}, {platform.processor() or platform.machine()}, torch {torch.__version__}",
        "",
        "| config | crop | training samples/s | loader samples/s | loader / training |",
        "|---|---|---|---|---|",
    ]
    for name, crop in cases:
        trained = training_rate(store, name, crop, args.steps, workdir)
        loaded = loader_rate(store, crop, batches=max(args.steps, 20))
        ratio = loaded / trained
        mark = "" if ratio >= TARGET_RATIO else " (below 3x)"
        lines.append(f"| {name} | {crop} | {trained:.1f} | {loaded:.1f} | {ratio:.1f}x{mark} |")
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    print("\n" + table)
    if args.markdown:
        args.markdown.write_text(table + "\n")


if __name__ == "__main__":
    main()
