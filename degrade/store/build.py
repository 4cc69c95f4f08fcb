"""``make-cdd11``: synthesise a CDD-11-style store, deterministically and resumably.

A sample's bytes depend only on its source photo, the options and the seed: its
randomness comes from a generator seeded by ``(seed, source, tier, variant)``, and it is
degraded on its own. Sources are the unit of work and of writing: the samples of source
``i`` fill chunks no other source touches (``clean[i]``, ``depth[i]``, their
``degraded``/``masks`` rows, and chunk ``i`` of ``params``). ``params`` chunk ``i`` is
written last and marks the source done, so an interrupted run, run again, redoes only the
sources whose marker is missing or unreadable. ``complete`` is set last, once every
marker is in.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from ..names import DEGRADATIONS, ORDERS, TIERS
from .format import FORMAT, StoreError, compressor, sample_index
from .ingest import Skipped, find_sources, fit_photo, load_source_depth, read_source

__all__ = ["BuildOptions", "BuildSummary", "build", "pending_sources", "sample_seed"]

Progress = Callable[[int], None]


@dataclass(frozen=True)
class BuildOptions:
    """Everything a store's content depends on (besides the photos themselves)."""

    src: str
    size: int = 512
    tiers: tuple[str, ...] = TIERS
    variants: int = 1
    seed: int = 0
    order: str = "physical"
    test_fraction: float = 0.1
    depth_dir: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or self.size < 8:
            raise ValueError(f"size must be an int >= 8, got {self.size!r}")
        unknown = [tier for tier in self.tiers if tier not in TIERS]
        if unknown or not self.tiers:
            raise ValueError(f"tiers must be a non-empty subset of {TIERS}, got {self.tiers}")
        # Keep CDD-11's order whatever order they were given in.
        object.__setattr__(self, "tiers", tuple(t for t in TIERS if t in self.tiers))
        if not isinstance(self.variants, int) or self.variants < 1:
            raise ValueError(f"variants must be an int >= 1, got {self.variants!r}")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must be an int in [0, 2**63), got {self.seed!r}")
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {self.order!r}")
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must lie in [0, 1), got {self.test_fraction!r}")

    def recorded(self) -> dict[str, Any]:
        """The options as the store records them (paths are not part of the content)."""
        record = asdict(self)
        record.pop("src")
        record["tiers"] = list(self.tiers)
        record["depth"] = record.pop("depth_dir") is not None
        return record


@dataclass(frozen=True)
class BuildSummary:
    """What a run did."""

    path: str
    sources: int
    samples: int
    written: int
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0
    complete: bool = False

    @property
    def samples_per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


def sample_seed(seed: int, source: int, tier: str, variant: int) -> int:
    """The generator seed of one sample, from (seed, source index, tier, variant) alone."""
    words = np.random.SeedSequence([seed, source, TIERS.index(tier), variant]).generate_state(2)
    return (int(words[0]) << 31) ^ int(words[1])


def test_count(count: int, fraction: float) -> int:
    """How many of ``count`` photos go to the test split.

    ``fraction * count`` rounded half up; at least one test photo whenever ``fraction > 0``
    and there are two photos or more, and always at least one training photo.
    """
    tests = math.floor(count * fraction + 0.5)
    if fraction > 0 and count > 1:
        tests = max(tests, 1)
    return min(tests, max(count - 1, 0))


def _split_of(count: int, fraction: float, seed: int) -> np.ndarray:
    """0 (train) or 1 (test) per source; a seeded permutation picks the test sources."""
    split = np.zeros(count, dtype=np.uint8)
    tests = test_count(count, fraction)
    if tests:
        order = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED])).permutation(count)
        split[order[:tests]] = 1
    return split


def _skyclear_version() -> str:
    try:
        return version("skyclear")
    except PackageNotFoundError:
        return "unknown"


def _attributes(
    options: BuildOptions, sources: list[str], skipped: list[Skipped]
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "tiers": list(options.tiers),
        "degradations": list(DEGRADATIONS),
        "seed": options.seed,
        "size": options.size,
        "order": options.order,
        "variants": options.variants,
        "test_fraction": options.test_fraction,
        "depth": options.depth_dir is not None,
        "sources": sources,
        "skipped": [asdict(item) for item in skipped],
        "version": _skyclear_version(),
    }


def _prepare(path: Path, options: BuildOptions, sources: list[str], skipped: list[Skipped]) -> None:
    """Create the group, every array and the per-sample index arrays; complete = false."""
    import zarr

    size, tiers, variants = options.size, len(options.tiers), options.variants
    per_source = tiers * variants
    count, total = len(sources), len(sources) * per_source
    codec = compressor()
    group = zarr.open_group(store=str(path), mode="w", zarr_format=3)
    group.attrs.update(_attributes(options, sources, skipped))

    def array(name: str, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: Any,
              dims: list[str], fill: Any = 0) -> Any:  # fmt: skip
        return group.create_array(
            name, shape=shape, chunks=chunks, dtype=dtype, compressors=codec,
            dimension_names=dims, fill_value=fill,
        )  # fmt: skip

    array("clean", (count, size, size, 3), (1, size, size, 3), "uint8", ["source", "y", "x", "rgb"])
    array(
        "degraded", (total, size, size, 3), (1, size, size, 3), "uint8", ["sample", "y", "x", "rgb"]
    )
    array(
        "masks",
        (total, 4, size, size),
        (1, 1, size, size),
        "uint8",
        ["sample", "degradation", "y", "x"],
    )
    if options.depth_dir is not None:
        array("depth", (count, size, size), (1, size, size), "float16", ["source", "y", "x"])
    source = array("source", (total,), (per_source,), "int32", ["sample"])
    tier = array("tier", (total,), (per_source,), "uint8", ["sample"])
    split = array("split", (total,), (per_source,), "uint8", ["sample"])
    array("params", (total,), (per_source,), str, ["sample"], fill="")
    if total:
        source[:] = np.repeat(np.arange(count, dtype=np.int32), per_source)
        tier[:] = np.tile(np.repeat(np.arange(tiers, dtype=np.uint8), variants), count)
        split[:] = np.repeat(_split_of(count, options.test_fraction, options.seed), per_source)
    group.attrs["complete"] = False  # written last: the store is prepared


def _source_done(params: Any, index: int, per_source: int) -> bool:
    try:
        rows = params[index * per_source : (index + 1) * per_source]
        return all(bool(row) and isinstance(json.loads(row), dict) for row in rows)
    except Exception:  # a chunk torn by a kill reads as garbage or raises: not done
        return False


def pending_sources(path: Path) -> list[int]:
    """Indices of the sources whose samples are not all in the store yet."""
    import zarr

    group: Any = zarr.open_group(store=str(path), mode="r")
    per_source = len(group.attrs["tiers"]) * int(group.attrs["variants"])
    params = group["params"]
    return [
        i for i in range(len(group.attrs["sources"])) if not _source_done(params, i, per_source)
    ]


class _Writer:
    """Synthesises and writes every sample of one source (runs in a worker)."""

    def __init__(self, path: Path, options: BuildOptions) -> None:
        import zarr

        from ..compose import Composite

        self.options = options
        self.group: Any = zarr.open_group(store=str(path), mode="r+")
        attrs: dict[str, Any] = dict(self.group.attrs)
        self.sources: list[str] = [str(name) for name in attrs["sources"]]
        self.composite = Composite(order=options.order)  # type: ignore[arg-type]

    def write(self, index: int) -> int:
        """Synthesise and write every sample of source ``index``; return how many."""
        with single_threaded():
            return self._write(index)

    def _write(self, index: int) -> int:
        import torch

        from ..io import from_numpy

        options, group = self.options, self.group
        relative = self.sources[index]
        photo = read_source(Path(options.src) / relative, options.size)
        depth = None
        if options.depth_dir is not None:
            fitted = load_source_depth(
                Path(options.depth_dir), relative, photo.shape[:2], options.size
            )
            # float16 ends at 65504 m; haze is opaque long before, so clip rather than fail.
            stored = np.minimum(fitted, np.float16(65504.0)).astype(np.float16)
            group["depth"][index] = stored
            depth = torch.from_numpy(stored.astype(np.float32)).view(
                1, 1, options.size, options.size
            )
        clean = fit_photo(photo, options.size)
        group["clean"][index] = clean
        x = from_numpy(clean)
        tiers, variants = len(options.tiers), options.variants
        first = sample_index(index, 0, 0, tiers, variants)
        rows: list[str] = []
        images: list[np.ndarray] = []
        masks: list[np.ndarray] = []
        for tier in options.tiers:
            for variant in range(variants):
                seed = sample_seed(options.seed, index, tier, variant)
                generator = torch.Generator().manual_seed(seed)
                with torch.no_grad():
                    result = self.composite(x, tier, generator, depth)
                images.append(_to_uint8(result.image[0].permute(1, 2, 0)))
                masks.append(_to_uint8(result.masks[0]))
                rows.append(json.dumps(_record(tier, variant, seed, result.params), sort_keys=True))
                if len(images) == _WRITE_BATCH:
                    self._flush(first + len(rows) - len(images), images, masks)
        self._flush(first + len(rows) - len(images), images, masks)
        group["params"][first : first + len(rows)] = np.array(rows, dtype=object)
        return len(rows)

    def _flush(self, start: int, images: list[np.ndarray], masks: list[np.ndarray]) -> None:
        """Write buffered samples in one call per array (zarr encodes them together)."""
        if images:
            self.group["degraded"][start : start + len(images)] = np.stack(images)
            self.group["masks"][start : start + len(masks)] = np.stack(masks)
            images.clear()
            masks.clear()


_WRITE_BATCH = 16  # samples buffered before a write: ~30 MB at 512 x 512


def _to_uint8(tensor: Any) -> np.ndarray:
    """[0, 1] floats to uint8 codes, ``round(255 x)``."""
    return np.asarray((tensor.clamp(0, 1) * 255.0).round().byte().numpy())


def _record(tier: str, variant: int, seed: int, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "tier": tier,
        "variant": variant,
        "seed": seed,
        "params": {
            name: {key: value[0].tolist() for key, value in values.items()}
            for name, values in params.items()
        },
    }


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Run torch on one thread for the duration: results must not depend on the process.

    Reductions split across threads add in another order, and a last bit that differs can
    round a pixel to the next uint8 code; one thread everywhere gives the same bytes in a
    worker process and in the calling process alike.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# One writer per (store, options) in each worker process of a pool; a pool lives for one
# build, so the cached source list cannot go stale.
_WRITERS: dict[tuple[Path, BuildOptions], _Writer] = {}


def _work(task: tuple[Path, BuildOptions, int]) -> int:
    """Write one source in a worker process, opening the store once per worker."""
    path, options, index = task
    writer = _WRITERS.get((path, options))
    if writer is None:
        writer = _WRITERS[(path, options)] = _Writer(path, options)
    return writer.write(index)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _check_existing(path: Path, options: BuildOptions, sources: list[str], overwrite: bool) -> bool:
    """True if ``path`` holds a prepared store of this very command (to resume).

    False if there is nothing to keep: no store, one interrupted while being prepared, or
    (with ``overwrite``) anything else. Raises rather than delete what is not ours.
    """
    import zarr

    if not path.exists():
        return False
    try:
        group = zarr.open_group(store=str(path), mode="r")
        attrs = dict(group.attrs)
        empty = not attrs and not list(group.keys())
    except Exception as error:
        if overwrite:
            return False
        raise StoreError(
            f"{path} exists and is not a skyclear store; pass --overwrite to replace it"
        ) from error
    if attrs.get("format") != FORMAT:
        if empty or overwrite:  # an empty group is a preparation killed at its first step
            return False
        raise StoreError(f"{path} holds a Zarr group that is not a skyclear store; pass "
                         "--overwrite to replace it")  # fmt: skip
    if "complete" not in attrs:  # our own preparation, interrupted: nothing of value inside
        return False
    expected = {**_attributes(options, sources, []), "skipped": attrs.get("skipped")}
    recorded = {key: attrs.get(key) for key in expected}
    if recorded != expected:
        if overwrite:
            return False
        changed = sorted(key for key in expected if recorded[key] != expected[key])
        raise StoreError(
            f"{path} was made by a different command or from different photos (differs in: "
            f"{', '.join(changed)}); pass --overwrite to replace it"
        )
    return True


_LOCK_WAIT = 600.0  # seconds a process waits for another one preparing the same store


def _lock_is_stale(lock: Path) -> bool:
    """A lock left by a process of this machine that no longer runs, or an empty lock (its
    owner died between creating and writing it) older than a few seconds."""
    try:
        text = lock.read_text()
        if not text.strip():
            return time.time() - lock.stat().st_mtime > 10.0
        host, pid = text.split()
        if host != socket.gethostname():
            return False
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (OSError, ValueError):
        return False
    return False


def _prepare_once(
    path: Path, options: BuildOptions, sources: list[str], skipped: list[Skipped], overwrite: bool
) -> None:
    """Make sure ``path`` holds this command's prepared store, preparing it if need be.

    Shards started together race to prepare; an exclusive lock file next to the store lets
    one prepare while the others wait, then find the store ready.
    """
    lock = path.with_name(path.name + ".preparing")
    deadline = time.monotonic() + _LOCK_WAIT
    while True:
        try:
            descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if _lock_is_stale(lock):
                lock.unlink(missing_ok=True)
            elif time.monotonic() > deadline:
                raise StoreError(
                    f"{lock} has been held for {_LOCK_WAIT:.0f} s; if no make-cdd11 is preparing "
                    "this store, remove the lock file"
                ) from None
            else:
                time.sleep(0.2)
            continue
        try:
            os.write(descriptor, f"{socket.gethostname()} {os.getpid()}".encode())
            if not _check_existing(path, options, sources, overwrite):
                _remove(path)
                _prepare(path, options, sources, skipped)
        finally:
            os.close(descriptor)
            lock.unlink(missing_ok=True)
        return


def build(
    options: BuildOptions,
    out: str | Path,
    *,
    workers: int = 1,
    shard: tuple[int, int] = (0, 1),
    overwrite: bool = False,
    progress: Callable[[str, int], Progress] | None = None,
) -> BuildSummary:
    """Build (or resume) the store at ``out``.

    Args:
        options: what the store holds.
        out: the store's path.
        workers: processes synthesising in parallel (the bytes do not depend on it).
        shard: ``(k, n)``: this process fills the sources ``i`` with ``i % n == k``; only
            the whole run (``n == 1``) marks the store complete. Every shard must be given
            the same options; the first process to arrive prepares the store.
        overwrite: replace a store made by a different command.
        progress: ``progress(stage, total)`` returns a callback advanced by units done.

    Raises:
        StoreError: the store belongs to another command; no usable photo.
    """
    start = time.perf_counter()
    path = Path(out)
    src = Path(options.src)
    if not src.is_dir():
        raise StoreError(f"--src {src} is not a folder")
    if options.depth_dir is not None and not Path(options.depth_dir).is_dir():
        raise StoreError(f"--depth {options.depth_dir} is not a folder")
    with _Workers(workers) as pool:
        sources, skipped = find_sources(src, options.size, pool.ingest)
        if not sources:
            raise StoreError(f"no usable photo in {src} ({len(skipped)} files skipped)")
        _prepare_once(path, options, sources, skipped, overwrite)
        mine = [i for i in pending_sources(path) if i % shard[1] == shard[0]]
        per_source = len(options.tiers) * options.variants
        advance = progress("samples", len(mine) * per_source) if progress else None
        written = 0
        for count in pool.write(path, options, mine):
            written += count
            if advance:
                advance(count)
    complete = False
    if shard[1] == 1:
        if pending_sources(path):
            raise StoreError(f"{path}: sources still missing after the run; run the command again")
        import zarr

        zarr.open_group(store=str(path), mode="r+").attrs["complete"] = True
        complete = True
    return BuildSummary(
        path=str(path),
        sources=len(sources),
        samples=len(sources) * per_source,
        written=written,
        skipped=skipped,
        seconds=time.perf_counter() - start,
        complete=complete,
    )


class _Workers:
    """Runs ingest and synthesis in-process (``workers == 1``) or in one pool of processes.

    Workers are spawned (no inherited torch threads or open stores), use one thread each,
    and open the store themselves on their first source.
    """

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self.pool: Any = None

    def __enter__(self) -> _Workers:
        if self.workers > 1:
            import multiprocessing

            context = multiprocessing.get_context("spawn")
            self.pool = context.Pool(self.workers, initializer=_single_thread)
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        if self.pool is not None:
            if kind is None:
                self.pool.close()
            else:
                self.pool.terminate()
            self.pool.join()

    def ingest(
        self, function: Callable[[Any], str | None], items: list[Any]
    ) -> Iterable[str | None]:
        if self.pool is None:
            return map(function, items)
        return self.pool.imap(function, items, chunksize=4)

    def write(self, path: Path, options: BuildOptions, indices: list[int]) -> Iterator[int]:
        if self.pool is None:
            return map(_Writer(path, options).write, indices)
        tasks = [(path, options, index) for index in indices]
        return self.pool.imap_unordered(_work, tasks, chunksize=1)


def _single_thread() -> None:
    """Set up a worker process: one thread for torch and blosc, and a heap that keeps
    its memory.

    The operators allocate many image-sized temporaries; glibc returns each freed block
    to the kernel and the next one page-faults back in, which costs a third of the
    synthesis time. In our own worker processes (never in the caller's), freed blocks stay
    on the heap instead.
    """
    import ctypes
    import ctypes.util

    import numcodecs.blosc
    import torch

    torch.set_num_threads(1)
    numcodecs.blosc.set_nthreads(1)
    libc_name = ctypes.util.find_library("c")
    if libc_name and hasattr(ctypes.CDLL(libc_name), "mallopt"):
        libc = ctypes.CDLL(libc_name)
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 256 * 2**20)
        libc.mallopt(m_trim_threshold, 512 * 2**20)
