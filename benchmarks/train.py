"""Training throughput against the loader that feeds it.

Measures, on this machine, side by side in one run, for each (config, crop):

1. training samples/s: ``restore.train.train`` on a make-cdd11 store with the config's
   own loader (2 workers, one thread each), read from its log after a warm-up window;
2. loader samples/s: the same training loader alone (same dataset, crop, batch and
   workers), iterated as fast as it goes;

and reports their ratio. Target: the loader delivers at least 3x what training consumes,
so data never holds training back. On a CPU: tiny and small at 128 and 256 crops; on
CUDA (when present): the paper config at 256 and 512 with bf16 as well.

Then synthesis on the training device (``data.synthesis=device``: the loader reads clean
crops of the photos, ``datasets.degrade_batch`` degrades each batch inside the step)
against the stored-dataset loader, at the same batch and crop:

3. synthesis alone: the stored loader's samples/s; ``degrade_batch`` on a batch already on
   the device (img/s); the clean-crop loader feeding ``degrade_batch`` (img/s);
4. the whole step: training samples/s of the tiny config (the paper config on CUDA) from
   the store and with synthesis on the device;
5. on CUDA, the triple tiers degraded at 512 x 512 in batches of 64 (target: 10,000 img/s
   on an H100).

The store holds 20 distinct photos made from the scikit-image samples (upscaled, shifted,
flipped and tinted as in ``synthesis.py``) at 512 x 512 in all 11 tiers, 2 variants each.
Run:

    python benchmarks/train.py [--steps 40] [--workdir DIR] [--markdown FILE]
                               [--part loader|synthesis|all] [--rounds 2]
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from skyclear.datasets import degrade_batch
from skyclear.degrade.names import TIERS
from skyclear.restore.config import override, preset
from skyclear.restore.data import open_clean_crops, open_dataset
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


def training_rate(
    data: Path, name: str, crop: int, steps: int, workdir: Path, synthesis: str = "loader"
) -> float:
    """Samples/s of ``train`` after the first ``steps // 4`` steps (start-up excluded)."""
    run = workdir / f"run-{name}-{crop}-{synthesis}"
    shutil.rmtree(run, ignore_errors=True)
    warm = max(steps // 4, 1)
    config = override(
        preset(name),
        [
            f"steps={steps}", f"data.batch_size={BATCH}", f"data.crop={crop}",
            f"data.workers={WORKERS}", f"log_every={warm}", f"val_every={10 * steps}",
            f"ckpt_every={10 * steps}", "data.val_samples=1", "data.grid_samples=0",
            f"data.synthesis={synthesis}",
        ],
    )  # fmt: skip
    train(config, data, run)
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


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def degrade_rate(photos: Path, crop: int, batches: int) -> float:
    """Img/s of ``degrade_batch`` alone on batches of clean crops already on the device."""
    dataset = open_clean_crops(photos, crop)
    loader = training_loader(dataset, StepSampler(len(dataset), BATCH, 0), 0, False, 0)
    held = [{**batch, "clean": batch["clean"].to(device())}
            for batch in itertools.islice(iter(loader), 8)]  # fmt: skip
    degrade_batch(held[0])  # warm-up (buffers, kernels)
    synchronize()
    started = time.perf_counter()
    for i in range(batches):
        degrade_batch(held[i % len(held)])
    synchronize()
    return batches * BATCH / (time.perf_counter() - started)


def device_pipeline_rate(photos: Path, crop: int, batches: int) -> float:
    """Img/s of the clean-crop loader (as training runs it) feeding ``degrade_batch``."""
    dataset = open_clean_crops(photos, crop)
    cuda = torch.cuda.is_available()
    loader = training_loader(dataset, StepSampler(len(dataset), BATCH, 0), WORKERS, cuda, 0)
    iterator = iter(loader)
    for _ in range(3):
        degrade_batch({**(batch := next(iterator)), "clean": batch["clean"].to(device())})
    synchronize()
    started = time.perf_counter()
    for batch in itertools.islice(iterator, batches):
        degrade_batch({**batch, "clean": batch["clean"].to(device(), non_blocking=True)})
    synchronize()
    rate = batches * BATCH / (time.perf_counter() - started)
    del iterator, loader
    return rate


def triple_tier_rate(size: int = 512, batch: int = 64, rounds: int = 10) -> float:
    """Img/s of ``degrade_batch`` on the three triple tiers mixed, ``batch`` at ``size``."""
    generator = torch.Generator().manual_seed(0)
    clean = torch.rand(batch, 3, size, size, generator=generator).to(device())
    triples = [TIERS.index(tier) for tier in TIERS if tier.count("_") == 2]
    tiers = torch.tensor([triples[i % len(triples)] for i in range(batch)])
    seeds = torch.randint(0, 2**62, (rounds + 1, batch), generator=generator)
    degrade_batch({"clean": clean, "tier": tiers, "seed": seeds[0]})
    synchronize()
    started = time.perf_counter()
    for i in range(rounds):
        degrade_batch({"clean": clean, "tier": tiers, "seed": seeds[i + 1]})
    synchronize()
    return rounds * batch / (time.perf_counter() - started)


def loader_table(store: Path, steps: int, workdir: Path, machine: str) -> list[str]:
    cases = [("tiny", 128), ("tiny", 256), ("small", 128), ("small", 256)]
    if torch.cuda.is_available():
        cases += [("paper", 256), ("paper", 512)]
    lines = [
        f"Training vs loader, batch {BATCH}, {WORKERS} loader workers (one thread each); {machine}",
        "",
        "| config | crop | training samples/s | loader samples/s | loader / training |",
        "|---|---|---|---|---|",
    ]
    for name, crop in cases:
        trained = training_rate(store, name, crop, steps, workdir)
        loaded = loader_rate(store, crop, batches=max(steps, 20))
        ratio = loaded / trained
        mark = "" if ratio >= TARGET_RATIO else " (below 3x)"
        lines.append(f"| {name} | {crop} | {trained:.1f} | {loaded:.1f} | {ratio:.1f}x{mark} |")
        print(lines[-1], flush=True)
    return lines


def _spread(rates: list[float]) -> str:
    if len(rates) == 1:
        return f"{rates[0]:.1f}"
    return f"{statistics.median(rates):.1f} ({min(rates):.1f}-{max(rates):.1f})"


def synthesis_table(
    store: Path, steps: int, workdir: Path, machine: str, rounds: int = 1
) -> list[str]:
    photos = workdir / "photos"  # the photos the store was made from
    name = "paper" if torch.cuda.is_available() else "tiny"
    crops = (256, 512) if torch.cuda.is_available() else (128, 256)
    lines = [
        f"Synthesis on the device vs the stored loader, batch {BATCH}, {WORKERS} loader "
        f"workers; {machine}. Img/s: stored = the store's loader alone, degrade = "
        "degrade_batch on batches already on the device, crops+degrade = the clean-crop "
        f"loader feeding degrade_batch; training samples/s of the {name} config from the "
        f"store and with data.synthesis=device, in alternation, {rounds} run(s) each: "
        "median (range).",
        "",
        "| crop | stored img/s | degrade img/s | crops+degrade img/s | crops+degrade / stored "
        "| training, stored | training, device | device / stored |",
        "|---|---|---|---|---|---|---|---|",
    ]
    batches = max(steps, 20)
    for crop in crops:
        stored = loader_rate(store, crop, batches)
        alone = degrade_rate(photos, crop, batches)
        piped = device_pipeline_rate(photos, crop, batches)
        from_store: list[float] = []
        on_device: list[float] = []
        for _ in range(rounds):  # the machine's drift hits both alike
            from_store.append(training_rate(store, name, crop, steps, workdir))
            on_device.append(training_rate(photos, name, crop, steps, workdir, "device"))
        ratio = statistics.median(on_device) / statistics.median(from_store)
        lines.append(
            f"| {crop} | {stored:.1f} | {alone:.1f} | {piped:.1f} | {piped / stored:.2f}x "
            f"| {_spread(from_store)} | {_spread(on_device)} | {ratio:.2f}x |"
        )
        print(lines[-1], flush=True)
    triple = (
        triple_tier_rate() if torch.cuda.is_available() else triple_tier_rate(batch=8, rounds=3)
    )
    target = " (target 10,000 on an H100)" if torch.cuda.is_available() else ""
    lines += ["", f"Triple tiers at 512 x 512, batched: {triple:,.0f} img/s{target}"]
    print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="training steps per case")
    parser.add_argument("--workdir", type=Path, help="keep the store here (default: temp)")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    parser.add_argument("--part", choices=["loader", "synthesis", "all"], default="all",
                        help="training vs its loader, device synthesis, or both")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=2,
                        help="training runs of each kind in the synthesis table")  # fmt: skip
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="skyclear-train-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    store = make_store(workdir)
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    machine = f"{gpu}, {platform.processor() or platform.machine()}, torch {torch.__version__}"
    lines: list[str] = []
    if args.part in ("loader", "all"):
        lines += loader_table(store, args.steps, workdir, machine)
    if args.part in ("synthesis", "all"):
        lines += ([""] if lines else []) + synthesis_table(store, args.steps, workdir, machine,
                                                           args.rounds)  # fmt: skip
    table = "\n".join(lines)
    print("\n" + table)
    if args.markdown:
        args.markdown.write_text(table + "\n")


if __name__ == "__main__":
    main()
