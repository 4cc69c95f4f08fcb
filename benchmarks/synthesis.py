"""make-cdd11 throughput and memory, and dataset loading against PNG folders.

Measures, on this machine, side by side in one run:

1. ``degrade make-cdd11`` at 512 x 512, all 11 tiers, ``--workers 2``: samples per second
   (as the command reports it, ingest included) and the peak resident memory of the whole
   process tree, for 50 and for 500 photos (memory must not grow with the photo count);
2. loading 256 x 256 random crops through a DataLoader with 2 workers (one thread each):
   ``CDD11Zarr`` and ``CDD11H5`` against ``CDD11Folder`` reading the same samples exported
   as PNG files (the CDD-11 release's format), as a ratio; ``CDD11Zarr`` also with
   ``uint8=True``, the samples ``restore train`` reads (pixels as uint8 codes between
   processes, scaled to floats in the training process).

The photos are made from the scikit-image samples, upscaled to a 640-pixel short side and
shifted, flipped and tinted so that no two are identical. Run:

    python benchmarks/synthesis.py [--photos 50 500] [--workdir DIR] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

TARGET_SYNTHESIS = 80.0  # samples/s, make-cdd11 at 512 x 512 with 2 workers
TARGET_LOADER = 400.0  # samples/s, CDD11Zarr 256 x 256 crops with 2 workers
TARGET_LOADER_RATIO = 3.0  # CDD11Zarr over the PNG folder


def make_photos(folder: Path, count: int) -> None:
    """``count`` distinct photos of at least 640 x 640 pixels."""
    from skimage import data

    bases = [
        data.astronaut(),
        data.coffee(),
        data.chelsea(),
        data.rocket(),
        data.stereo_motorcycle()[0],
    ]
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        base = Image.fromarray(bases[i % len(bases)])
        scale = 640 / min(base.size) * (1.0 + 0.2 * rng.random())
        image = base.resize(
            (round(base.width * scale), round(base.height * scale)), Image.Resampling.BICUBIC
        )
        array = np.asarray(image).astype(np.float32)
        array = np.roll(array, int(rng.integers(0, 200)), axis=1)
        if i % 2:
            array = array[:, ::-1]
        array = np.clip(array * rng.uniform(0.85, 1.15, 3), 0, 255).astype(np.uint8)
        Image.fromarray(array).save(folder / f"photo_{i:04d}.png")


def _tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and all its descendants, KiB (from /proc)."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                stack.extend(int(child) for child in children)
        except (FileNotFoundError, ProcessLookupError, AttributeError):
            continue
    return total


class Run(NamedTuple):
    """One make-cdd11 run: the samples/s it reports over the whole run and once
    synthesising (its workers started, the photos ingested), wall seconds of the whole
    command, peak RSS of its process tree in MiB."""

    rate: float
    synthesis_rate: float
    wall: float
    peak: float


def run_make_cdd11(src: Path, out: Path, workers: int, extra: tuple[str, ...] = ()) -> Run:
    """Run the command on a fresh store. A store left by an earlier run is removed first:
    the same command against a complete store has nothing to do. ``extra``: more
    arguments (then ``workers`` is not passed)."""
    shutil.rmtree(out, ignore_errors=True)
    degrade = Path(sys.executable).with_name("degrade")
    parallel = list(extra) if extra else ["--workers", str(workers)]
    command = [str(degrade), "make-cdd11", "--src", str(src), "--out", str(out), "--size", "512",
               *parallel, "--overwrite"]  # fmt: skip
    start = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    peak = 0

    def watch() -> None:
        nonlocal peak
        while process.poll() is None:
            peak = max(peak, _tree_rss_kib(process.pid))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    output, _ = process.communicate()
    watcher.join()
    wall = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"make-cdd11 failed: {output}")
    found = re.search(r"\(([\d.]+) samples/s; synthesis [\d.]+ s, ([\d.]+) samples/s\)", output)
    if found is None:
        raise RuntimeError(f"no rate in make-cdd11's output: {output}")
    return Run(float(found.group(1)), float(found.group(2)), wall, peak / 1024)


def _single_thread_worker(_: int) -> None:
    import torch

    torch.set_num_threads(1)


def loader_rate(dataset: object, samples: int, batch_size: int = 16) -> float:
    """Samples per second through a 2-worker DataLoader, after one warm-up batch."""
    import torch
    from torch.utils.data import DataLoader, RandomSampler

    count = samples + batch_size
    sampler = RandomSampler(dataset, replacement=True, num_samples=count)  # type: ignore[arg-type]
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=2,  # type: ignore[arg-type]
                        worker_init_fn=_single_thread_worker, persistent_workers=False)  # fmt: skip
    iterator = iter(loader)
    next(iterator)
    start = time.perf_counter()
    seen = 0
    for batch in iterator:
        seen += len(batch["tier"])
    elapsed = time.perf_counter() - start
    del torch
    return seen / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--loader-samples", type=int, default=2000)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()

    import torch
    from skyclear.datasets import CDD11H5, CDD11Folder, CDD11Zarr
    from skyclear.degrade.store import export_folder, export_hdf5

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="skyclear-bench-"))
    rows = ["| measurement | value | target | met |", "|---|---:|---:|:-:|"]
    stores = {}
    for count in sorted(args.photos):
        src = workdir / f"photos_{count}"
        if not src.exists():
            make_photos(src, count)
        store = workdir / f"store_{count}.zarr"
        rate, _, wall, peak = run_make_cdd11(src, store, args.workers)
        stores[count] = store
        met = "yes" if rate >= TARGET_SYNTHESIS else "no"
        label = f"make-cdd11, {count} photos ({count * 11} samples)"
        rows.append(f"| {label}, samples/s | {rate:.1f} | >= {TARGET_SYNTHESIS:.0f} | {met} |")
        rows.append(f"| {label}, wall time | {wall:.1f} s | | |")
        rows.append(f"| {label}, peak RSS, all processes | {peak:.0f} MiB | flat in photos | |")
        print(rows[-3], rows[-2], rows[-1], sep="\n", flush=True)

    store = stores[min(stores)]
    folder, h5 = workdir / "folder", workdir / "store.h5"
    for path in (folder, h5):
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    export_folder(store, folder)
    export_hdf5(store, h5)
    torch.set_num_threads(1)
    rates = {
        "CDD11Folder (PNG files)": loader_rate(
            CDD11Folder(folder, split="train", crop=256), args.loader_samples
        ),
        "CDD11Zarr": loader_rate(CDD11Zarr(store, split="train", crop=256), args.loader_samples),
        "CDD11Zarr (uint8 samples, as training reads them)": loader_rate(
            CDD11Zarr(store, split="train", crop=256, uint8=True), args.loader_samples
        ),
        "CDD11H5": loader_rate(CDD11H5(h5, split="train", crop=256), args.loader_samples),
    }
    folder_rate = rates["CDD11Folder (PNG files)"]
    for name, rate in rates.items():
        ratio = rate / folder_rate
        if name.startswith("CDD11Zarr"):
            met = "yes" if rate >= TARGET_LOADER and ratio >= TARGET_LOADER_RATIO else "no"
            target = f">= {TARGET_LOADER:.0f} and >= {TARGET_LOADER_RATIO:.0f}x"
        else:
            met, target = "", ""
        label = f"{name}, 256 x 256 crops, 2 workers, samples/s (x PNG folder)"
        rows.append(f"| {label} | {rate:.0f} ({ratio:.2f}x) | {target} | {met} |")
        print(rows[-1], flush=True)

    table = "\n".join(rows)
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    models = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    cpu = models[0] if models else "unknown CPU"
    header = f"Machine: {os.cpu_count()} cores ({cpu}), torch {torch.__version__}."
    print("\n" + header + "\n\n" + table)
    if args.markdown:
        args.markdown.write_text(header + "\n\n" + table + "\n")


if __name__ == "__main__":
    main()
