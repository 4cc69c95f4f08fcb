"""Speed of skyclear's degradations against the peers a user would pick, on one CPU thread.

Measures milliseconds per RGB image (512 x 512 unless ``--size`` says otherwise), side by
side in one run, and prints a Markdown table of ratios:

* skyclear operators on a ``(1, 3, H, W)`` float32 sRGB tensor in [0, 1]: ``LowLight``,
  ``Haze`` (with a 20 m depth map, and with its flat-ground depth prior), ``Rain``,
  ``Snow``, and the triple tiers ``low_haze_rain`` and ``low_haze_snow`` of ``Composite``.
  Each is timed twice: ``op.apply(x, params)`` with parameters drawn beforehand, and the
  full call ``op(x, generator)`` (sampling + apply).
* peers on the ``(H, W, 3)`` uint8 array they take, with p=1: albumentations
  ``ShotNoise``, ``RandomFog``, ``RandomRain``, ``RandomSnow`` (both methods) and two
  ``Compose`` chains standing in for the tiers, and imagecorruptions ``corrupt``
  (shot_noise, fog, snow at severity 3).
* the memory floor: one fused float32 multiply-add over the image, ``b + a x`` into a new
  tensor, the least an operator that returns a new image can do; beside it the same into
  a preallocated buffer, and ``x * a + b``, which allocates twice. (``torch.addcmul(b, x,
  a)`` with scalar ``a`` and ``b`` is no floor: it takes a path about 5x slower.)

Cost depends on the parameters (streak and flake counts), so every operation is timed on
several parameter draws (``--draws``), each replayed exactly on every repetition (skyclear
through ``apply`` or a reseeded generator, peers through their reseeded RNG). By default
every (operation, draw) pair is called once per round, in a shuffled order, for
``--repeat`` rounds: a noisy machine slows every row alike, and each call finds the caches
and the allocator as some other operation left them, as in a data pipeline
(``--order blocked`` instead repeats each call back to back, the classic hot loop).
"ms median" is the mean over draws of each draw's median, "ms min" the same for minima;
ratios use medians.

Every library gets one thread: ``torch.set_num_threads(1)``, ``cv2.setNumThreads(1)`` and
the OpenMP/BLAS variables, set below before numpy and torch load. Where CUDA is present,
batched GPU runs (B = 16, fp32 and bf16) follow in a second table.

Usage::

    python benchmarks/ops.py [--repeat 30] [--size 512] [--order shuffled] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import platform
import random
import resource
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

# One thread for everyone; these must be set before numpy, torch and OpenCV start.
for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_variable] = "1"
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network check on import

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from skyclear.degrade import Composite, Haze, LowLight, Operator, Rain, Snow  # noqa: E402
from torch import Tensor  # noqa: E402

EFFECTS: tuple[str, ...] = ("floor", "low light", "haze", "rain", "snow", "tier")
TARGET_MS: dict[str, float] = {
    "low light": 10.0,
    "haze": 6.0,
    "rain": 10.0,
    "snow": 12.0,
    "tier": 25.0,
}
TIERS: tuple[str, ...] = ("low_haze_rain", "low_haze_snow")
FLOOR = "floor: torch.add(b, x, alpha=a), new tensor"  # the reference of "x floor"
DEPTH_M = 20.0
CUDA_BATCH = 16
MALLOC_VARIABLES: tuple[str, ...] = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Draw:
    """One timed call, and what must run (untimed) before it to replay the same draw."""

    run: Callable[[], object]
    reset: Callable[[], object] = _nothing


@dataclass
class Case:
    """One row of the table.

    Attributes:
        name: the operation as a user would write it.
        effect: one of ``EFFECTS``.
        library: ``skyclear``, ``torch`` (the floor) or the peer's package.
        draws: the calls to time, one per parameter draw.
        group: rows compared with each other (default: the effect; tiers: the tier).
        error: why the row was not measured, if it was not.
    """

    name: str
    effect: str
    library: str
    draws: list[Draw] = field(default_factory=list)
    group: str = ""
    error: str | None = None

    def __post_init__(self) -> None:
        self.group = self.group or self.effect


@dataclass(frozen=True)
class Timing:
    """What ``measure`` found for one case."""

    median_ms: float  # mean over draws of the per-draw median
    min_ms: float  # mean over draws of the per-draw minimum
    faults: float  # minor page faults per call
    cpu_per_wall: float  # process CPU time over wall time: about 1 on one thread


# -- inputs ---------------------------------------------------------------------------------
def test_image(size: int) -> tuple[Tensor, np.ndarray]:
    """scikit-image's astronaut photo (512 x 512), as a float tensor and a uint8 array.

    Both hold the same pixels: the tensor is the uint8 array divided by 255.
    """
    from skimage import data

    photo = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float() / 255.0
    if photo.shape[-2:] != (size, size):
        photo = F.interpolate(photo, size=(size, size), mode="bilinear", antialias=True)
    pixels = (photo.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    image = np.ascontiguousarray(pixels[0].permute(1, 2, 0).numpy())
    return pixels.float().div_(255.0), image


# -- cases ----------------------------------------------------------------------------------
def floor_cases(x: Tensor) -> list[Case]:
    """``b + a x`` in one pass into a new tensor (the floor), into a buffer, and unfused."""
    gain, offset = 0.9, 0.05
    bias = torch.tensor(offset, device=x.device, dtype=x.dtype)
    out = torch.empty_like(x)

    def unfused() -> Tensor:
        return x * gain + offset

    fresh = functools.partial(torch.add, bias, x, alpha=gain)
    into = functools.partial(torch.add, bias, x, alpha=gain, out=out)
    return [
        Case(FLOOR, "floor", "torch", [Draw(fresh)]),
        Case("floor: torch.add(b, x, alpha=a, out=buffer)", "floor", "torch", [Draw(into)]),
        Case("floor: x * a + b, two new tensors", "floor", "torch", [Draw(unfused)]),
    ]


def skyclear_cases(x: Tensor, depth: Tensor, draws: int) -> list[Case]:
    """Every operator and both triple tiers, as ``apply`` on drawn params and as a call."""
    batch = x.shape[0]
    operators: list[tuple[str, str, str, Operator, dict[str, Any]]] = [
        ("LowLight", "", "low light", LowLight(), {}),
        ("Haze", f", depth {DEPTH_M:g} m", "haze", Haze(), {"depth": depth}),
        ("Haze", ", depth prior", "haze", Haze(), {}),
        ("Rain", "", "rain", Rain(), {}),
        ("Snow", "", "snow", Snow(), {}),
    ]
    cases = []
    for name, note, effect, op, context in operators:
        applies, calls = [], []
        for k in range(draws):
            params = op.sample(batch, torch.Generator().manual_seed(k), x.device)
            applies.append(Draw(functools.partial(op.apply, x, params, **context)))
            generator = torch.Generator()
            call = functools.partial(op, x, generator, **context)
            calls.append(Draw(call, functools.partial(generator.manual_seed, k)))
        cases.append(Case(f"{name}.apply(x, params){note}", effect, "skyclear", applies))
        cases.append(Case(f"{name}()(x, generator){note}", effect, "skyclear", calls))
    composite = Composite()
    note = f", depth {DEPTH_M:g} m"
    for tier in TIERS:
        applies, calls = [], []
        for k in range(draws):
            params = composite.sample(tier, batch, torch.Generator().manual_seed(k), x.device)
            applies.append(Draw(functools.partial(composite.apply, x, tier, params, depth)))
            generator = torch.Generator()
            call = functools.partial(composite, x, tier, generator, depth)
            calls.append(Draw(call, functools.partial(generator.manual_seed, k)))
        apply_name = f"Composite.apply(x, {tier!r}, params){note}"
        call_name = f"Composite()(x, {tier!r}, generator){note}"
        cases.append(Case(apply_name, "tier", "skyclear", applies, group=tier))
        cases.append(Case(call_name, "tier", "skyclear", calls, group=tier))
    return cases


def albumentations_cases(image: np.ndarray, draws: int) -> list[Case]:
    """albumentations 2.0.x weather and noise transforms, defaults but p=1."""
    try:
        import albumentations as A
        import cv2
    except ImportError as error:
        reason = f"could not import: {error} (pip install -e '.[bench]')"
        return [Case("albumentations", "peer", "albumentations", error=reason)]
    cv2.setNumThreads(1)
    transforms: list[tuple[str, str, str, Any]] = [
        ("A.ShotNoise(p=1)", "low light", "", A.ShotNoise(p=1.0)),
        ("A.RandomFog(p=1)", "haze", "", A.RandomFog(p=1.0)),
        ("A.RandomRain(p=1)", "rain", "", A.RandomRain(p=1.0)),
        ("A.RandomSnow(method='bleach', p=1)", "snow", "", A.RandomSnow(method="bleach", p=1.0)),
        ("A.RandomSnow(method='texture', p=1)", "snow", "", A.RandomSnow(method="texture", p=1.0)),
    ]
    for tier, particles in zip(TIERS, (A.RandomRain, A.RandomSnow), strict=True):
        chain = A.Compose([A.RandomFog(p=1.0), particles(p=1.0), A.ShotNoise(p=1.0)])
        name = f"A.Compose([RandomFog, {particles.__name__}, ShotNoise])"
        transforms.append((name, "tier", tier, chain))
    cases = []
    for name, effect, group, transform in transforms:
        call = functools.partial(transform, image=image)
        reseed = transform.set_random_seed
        replays = [Draw(call, functools.partial(reseed, k)) for k in range(draws)]
        cases.append(Case(name, effect, "albumentations", replays, group=group))
    return cases


def imagecorruptions_cases(image: np.ndarray, draws: int) -> list[Case]:
    """imagecorruptions ``corrupt`` at severity 3; it draws from numpy's global RNG."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its pkg_resources import warns
            from imagecorruptions import corrupt
    except ImportError as error:
        reason = f"could not import: {error} (it needs pkg_resources: setuptools<81)"
        return [Case("imagecorruptions", "peer", "imagecorruptions", error=reason)]
    if not hasattr(np, "float_"):
        # imagecorruptions 1.1.2 still uses np.float_, the alias of np.float64 that NumPy 2
        # removed; restoring the alias changes nothing else.
        np.float_ = np.float64  # type: ignore[attr-defined]  # noqa: NPY201
    cases = []
    for name, effect in (("shot_noise", "low light"), ("fog", "haze"), ("snow", "snow")):
        call = functools.partial(corrupt, image, corruption_name=name, severity=3)
        replays = [Draw(call, functools.partial(np.random.seed, k)) for k in range(draws)]
        label = f"corrupt(img, {name!r}, severity=3)"
        cases.append(Case(label, effect, "imagecorruptions", replays))
    return cases


# -- timing ---------------------------------------------------------------------------------
def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def warm_up(cases: Sequence[Case], warmup: int) -> None:
    """Call every draw ``warmup`` times; a case whose call raises keeps the error instead."""
    for case in cases:
        try:
            for draw in case.draws:
                for _ in range(warmup):
                    draw.reset()
                    draw.run()
        except Exception as error:  # a peer broken by its dependencies: report it, go on
            case.error = f"failed: {type(error).__name__}: {error}"
            case.draws = []


def _schedule(cases: Sequence[Case], repeat: int, order: str) -> list[tuple[Case, int]]:
    """The calls to time, in order: shuffled rounds, or each draw's repeats back to back."""
    pairs = [(case, index) for case in cases for index in range(len(case.draws))]
    if order == "blocked":
        return [pair for pair in pairs for _ in range(repeat)]
    shuffler = random.Random(0)
    calls = []
    for _ in range(repeat):
        shuffler.shuffle(pairs)
        calls += pairs
    return calls


def measure(
    cases: Sequence[Case],
    repeat: int,
    order: str = "shuffled",
    sync: Callable[[], object] = _nothing,
) -> dict[str, Timing]:
    """Time every draw of every case ``repeat`` times, in the ``order`` of ``_schedule``."""
    calls = _schedule(cases, repeat, order)
    wall: dict[tuple[str, int], list[float]] = {(case.name, i): [] for case, i in calls}
    faults = dict.fromkeys(wall, 0)
    cpu = dict.fromkeys(wall, 0.0)
    gc.collect()
    gc.disable()
    try:
        for case, index in calls:
            draw = case.draws[index]
            draw.reset()
            sync()
            faults_before, cpu_before = _minor_faults(), time.process_time()
            start = time.perf_counter()
            draw.run()
            sync()
            seconds = time.perf_counter() - start
            cpu[case.name, index] += time.process_time() - cpu_before
            faults[case.name, index] += _minor_faults() - faults_before
            wall[case.name, index].append(seconds)
    finally:
        gc.enable()
    timings = {}
    for case in cases:
        if not case.draws:
            continue
        keys = [(case.name, index) for index in range(len(case.draws))]
        timings[case.name] = Timing(
            median_ms=1e3 * statistics.fmean(statistics.median(wall[key]) for key in keys),
            min_ms=1e3 * statistics.fmean(min(wall[key]) for key in keys),
            faults=sum(faults[key] for key in keys) / (repeat * len(keys)),
            cpu_per_wall=sum(cpu[key] for key in keys) / sum(sum(wall[key]) for key in keys),
        )
    return timings


def non_finite(cases: Sequence[Case]) -> list[str]:
    """skyclear cases whose output holds NaN or inf in any draw (checked outside timing)."""
    found = []
    for case in cases:
        if case.library != "skyclear":
            continue
        for draw in case.draws:
            draw.reset()
            image = getattr(draw.run(), "image", None)
            if isinstance(image, Tensor) and not bool(torch.isfinite(image).all()):
                found.append(case.name)
                break
    return found


# -- tables ---------------------------------------------------------------------------------
def _ratio(value: float, reference: float) -> str:
    return f"{value / reference:.2f}x"


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def cpu_table(cases: Sequence[Case], timings: dict[str, Timing]) -> list[str]:
    """One row per case, grouped by effect with skyclear first; unmeasured rows last."""
    header = (
        "operation",
        "effect",
        "ms median",
        "ms min",
        "x floor",
        "vs fastest peer",
        "vs each peer",
        "target",
        "met",
        "faults/call",
    )
    lines = [_row(header), _row(["---"] * len(header))]
    measured = [case for case in cases if case.name in timings]
    measured.sort(key=lambda case: (EFFECTS.index(case.effect), case.library != "skyclear"))
    floor = timings[FLOOR].median_ms
    for case in measured:
        timing = timings[case.name]
        fastest = each = target = met = "-"
        if case.library == "skyclear":
            peers = [
                (other.name, timings[other.name].median_ms)
                for other in measured
                if other.group == case.group and other.library not in ("skyclear", "torch")
            ]
            if peers:
                name, ms = min(peers, key=lambda peer: peer[1])
                fastest = f"{_ratio(timing.median_ms, ms)} ({name})"
                each = "; ".join(f"{n}: {_ratio(timing.median_ms, m)}" for n, m in peers)
            target = f"<= {TARGET_MS[case.effect]:g} ms"
            met = "yes" if timing.median_ms <= TARGET_MS[case.effect] else "no"
        lines.append(
            _row(
                (
                    case.name,
                    case.effect,
                    f"{timing.median_ms:.2f}",
                    f"{timing.min_ms:.2f}",
                    _ratio(timing.median_ms, floor),
                    fastest,
                    each,
                    target,
                    met,
                    f"{timing.faults:.0f}",
                )
            )
        )
    for case in cases:
        if case.name not in timings:
            reason = case.error or "no draws"
            lines.append(_row((case.name, case.effect, "not measured", reason, *["-"] * 6)))
    return lines


def device_table(
    x: Tensor, depth: Tensor, args: argparse.Namespace, device: str, batch: int
) -> list[str]:
    """skyclear on ``batch`` copies of ``x`` on ``device`` in fp32 and bf16, per image."""
    sync = torch.cuda.synchronize if device == "cuda" else _nothing
    lines = [
        _row(("operation", "dtype", "ms/image median", "ms/image min", "x floor", "finite")),
        _row(["---"] * 6),
    ]
    dtypes = (torch.float32, torch.bfloat16) if device == "cuda" else (torch.float32,)
    for dtype in dtypes:
        images = x.to(device, dtype).expand(batch, -1, -1, -1).contiguous()
        cases = floor_cases(images)[:1] + skyclear_cases(
            images, depth.to(device, dtype), args.draws
        )
        warm_up(cases, args.warmup)
        broken = set(non_finite(cases))
        timings = measure(cases, args.repeat, args.order, sync)
        floor = timings[FLOOR].median_ms
        name = str(dtype).removeprefix("torch.")
        for case in cases:
            if case.name not in timings:
                lines.append(_row((case.name, name, "not measured", str(case.error), "-", "-")))
                continue
            timing = timings[case.name]
            median, least = timing.median_ms / batch, timing.min_ms / batch
            finite = "no" if case.name in broken else "yes"
            ratio = _ratio(timing.median_ms, floor)
            lines.append(_row((case.name, name, f"{median:.3f}", f"{least:.3f}", ratio, finite)))
    return lines


def cuda_section(x: Tensor, depth: Tensor, args: argparse.Namespace) -> list[str]:
    """Batched runs (B = 16, fp32 and bf16) on the GPU, when there is one."""
    lines = ["## CUDA", ""]
    if not torch.cuda.is_available():
        return [*lines, "Skipped: torch.cuda.is_available() is False on this machine."]
    lines += [
        f"{torch.cuda.get_device_name()}, batch of {CUDA_BATCH}, ms per image = batch time / "
        f"{CUDA_BATCH}, torch.cuda.synchronize() before and after every call.",
        "",
    ]
    return lines + device_table(x, depth, args, "cuda", CUDA_BATCH)


# -- main -----------------------------------------------------------------------------------
def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


_ORDERS = {
    "shuffled": "all calls interleaved in shuffled rounds",
    "blocked": "each draw's repeats back to back",
}


def describe(args: argparse.Namespace) -> list[str]:
    """The header above the table: what ran where, and how it was timed."""
    try:
        import cv2

        opencv_threads = str(cv2.getNumThreads())
    except ImportError:
        opencv_threads = "not installed"
    malloc = [f"{name}={os.environ[name]}" for name in MALLOC_VARIABLES if name in os.environ]
    packages = ("torch", "numpy", "albumentations", "opencv-python-headless", "imagecorruptions")
    versions = ", ".join(f"{name} {_version(name)}" for name in packages)
    return [
        f"# skyclear.degrade vs peers: ms per {args.size}x{args.size} RGB image, one CPU thread",
        "",
        f"- machine: {_cpu_model()}, {os.cpu_count()} logical CPUs, {platform.machine()}, "
        f"Python {platform.python_version()}",
        f"- versions: {versions}",
        f"- threads: torch {torch.get_num_threads()}, OpenCV {opencv_threads}, "
        f"OMP/MKL/OpenBLAS {os.environ['OMP_NUM_THREADS']}",
        f"- malloc: {' '.join(malloc) if malloc else 'glibc defaults'}",
        f"- method: {args.draws} parameter draws x {args.repeat} repeats, {_ORDERS[args.order]}, "
        f"after {args.warmup} warm-up calls per draw; ms median = mean over "
        "draws of the per-draw median (ms min likewise); ratios use medians; x floor = "
        "ratio to the fused multiply-add into a new tensor; faults/call = minor page "
        "faults per call",
        "",
    ]


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeat", type=_positive, default=30, help="timed rounds (30)")
    parser.add_argument("--size", type=_positive, default=512, help="image side, pixels (512)")
    parser.add_argument("--draws", type=_positive, default=5, help="parameter draws (5)")
    parser.add_argument("--warmup", type=_positive, default=3, help="untimed calls per draw (3)")
    parser.add_argument(
        "--order",
        choices=("shuffled", "blocked"),
        default="shuffled",
        help="interleave all calls in shuffled rounds (default), or repeat each back to back",
    )
    parser.add_argument("--markdown", type=Path, help="also write the report to this file")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    x, image = test_image(args.size)
    depth = torch.full((1, 1, args.size, args.size), DEPTH_M)
    cases = [
        *floor_cases(x),
        *skyclear_cases(x, depth, args.draws),
        *albumentations_cases(image, args.draws),
        *imagecorruptions_cases(image, args.draws),
    ]
    report = describe(args)
    warm_up(cases, args.warmup)
    timings = measure(cases, args.repeat, args.order)
    report += cpu_table(cases, timings)
    notes = [
        f"WARNING: {name} used {timing.cpu_per_wall:.2f} s of CPU per second of wall time"
        for name, timing in timings.items()
        if timing.cpu_per_wall > 1.2
    ]
    notes += [f"WARNING: {name} returned NaN or inf" for name in non_finite(cases)]
    report += ["", *notes] if notes else []
    report += ["", *cuda_section(x, depth, args)]
    text = "\n".join(report) + "\n"
    sys.stdout.write(text)
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
