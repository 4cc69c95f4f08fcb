"""Inference throughput: photos per second of one-step restoration, batched and exported.

Randomly initialised restorers of the named configs (weights do not change the cost) on
``--side`` x ``--side`` photos, ``--photos`` of them, one-step ``f2d``; ``Restorer`` as
``restore run`` applies it, without file I/O:

* ``torch, batch N``: ``--batch-size N`` (photos of one size in one network evaluation),
  against batch 1 on the same device;
* ``onnxruntime``: the file ``restore export`` writes, run one photo at a time on the CPU
  (with ``--onnx``; needs the ``export`` extra), against torch at batch 1 on the CPU;
* on CUDA (when present): float32 against bf16 autocast, and bf16 with channels_last, the
  defaults of ``restore run --device cuda``.

Threads: the machine's (``torch.get_num_threads()``), for torch and onnxruntime alike.

Usage::

    python benchmarks/inference.py [--configs tiny small] [--side 256] [--photos 16] [--onnx]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from skyclear.restore.config import preset
from skyclear.restore.inference import Restorer
from skyclear.restore.nn import F2DNet
from skyclear.restore.runtime import resolve_device
from skyclear.restore.transport.methods import method_named


def restorer(name: str, device: str, bf16: bool, channels_last: bool) -> Restorer:
    torch.manual_seed(0)
    config = preset(name)
    model = F2DNet(config.model).eval().to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return Restorer(model, method_named("f2d"), config, resolve_device(device), bf16,
                    channels_last)  # fmt: skip


def photos_per_second(run: Callable[[torch.Tensor], object], photos: torch.Tensor,
                      batch: int, device: str, repeat: int = 3) -> float:  # fmt: skip
    """The best of ``repeat`` passes over all photos, ``batch`` at a time (after one
    untimed pass)."""

    def one_pass() -> float:
        start = time.perf_counter()
        for first in range(0, len(photos), batch):
            run(photos[first : first + batch])
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start

    one_pass()
    return len(photos) / min(one_pass() for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["tiny", "small"])
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--photos", type=int, default=16)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--onnx", action="store_true", help="also the exported ONNX file")
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    photos = torch.rand(args.photos, 3, args.side, args.side, generator=generator)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"- machine: {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} torch threads, Python {sys.version.split()[0]}, "
          f"torch {torch.__version__}")  # fmt: skip
    print(f"- {args.photos} photos of {args.side}x{args.side}, one-step f2d, random weights\n")
    print("| config | device | how | photos/s | x batch 1 |")
    print("|---|---|---|---:|---:|")
    for name in args.configs:
        for device in devices:
            base = restorer(name, device, False, False)
            inputs = photos.to(device)
            single = photos_per_second(lambda x, r=base: r(x), inputs, 1, device)
            for batch in args.batches:
                rate = single if batch == 1 else photos_per_second(
                    lambda x, r=base: r(x), inputs, batch, device)  # fmt: skip
                print(f"| {name} | {device} | torch fp32, batch {batch} | {rate:.1f} | "
                      f"{rate / single:.2f}x |")  # fmt: skip
            if device == "cuda":
                for label, cl in (("bf16", False), ("bf16 + channels_last", True)):
                    fast = restorer(name, device, True, cl)
                    for batch in args.batches:
                        rate = photos_per_second(lambda x, r=fast: r(x), inputs, batch, device)
                        print(f"| {name} | cuda | {label}, batch {batch} | {rate:.1f} | "
                              f"{rate / single:.2f}x |")  # fmt: skip
            if device == "cpu" and args.onnx:
                rate = onnx_rate(base, photos)
                print(f"| {name} | cpu | onnxruntime, batch 1 | {rate:.1f} | "
                      f"{rate / single:.2f}x |")  # fmt: skip


def onnx_rate(base: Restorer, photos: torch.Tensor) -> float:
    """Photos/s of the exported file in onnxruntime, one photo at a time."""
    import onnxruntime
    from skyclear.restore.export import export

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "restorer.onnx"
        export(base, path)
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

        def run(x: torch.Tensor) -> object:
            return session.run(None, {"degraded": x.numpy()})

        return photos_per_second(run, photos, 1, "cpu")


if __name__ == "__main__":
    main()
