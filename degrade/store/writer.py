"""Synthesising and writing the samples of one source, in this process or in workers."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..location import Location
from ..names import DEGRADATIONS
from .chunks import SampleChunks
from .format import sample_index
from .ingest import fit_photo, read_source, source_depth
from .kept import KeptPhotos
from .options import BuildOptions, sample_seed

__all__ = ["Workers", "hwc_uint8", "pending_sources", "single_threaded", "to_uint8"]


def _source_done(params: Any, index: int, per_source: int) -> bool:
    try:
        return _rows_done(params[index * per_source : (index + 1) * per_source])
    except Exception:  # a chunk torn by a kill raises: not done
        return False


def _rows_done(rows: Any) -> bool:
    """Whether every one of a source's params rows is a JSON object."""
    try:
        return all(bool(row) and isinstance(json.loads(row), dict) for row in rows)
    except Exception:  # a chunk torn by a kill reads as garbage: not done
        return False


def pending_sources(path: Location) -> list[int]:
    """Indices of the sources whose samples are not all in the store yet.

    The markers are read ``_MARKERS`` sources at a time, in one call each (which fetches
    their chunks together: at a URL, one request after another would take minutes for a
    large store), and a block that cannot be read whole (a chunk torn by a kill) source by
    source.
    """
    import zarr

    group: Any = zarr.open_group(store=str(path), mode="r")
    per_source = len(group.attrs["tiers"]) * int(group.attrs["variants"])
    params = group["params"]
    count = len(group.attrs["sources"])
    pending = []
    for first in range(0, count, _MARKERS):
        block = range(first, min(first + _MARKERS, count))
        try:
            rows = params[first * per_source : block.stop * per_source]
        except Exception:  # a torn chunk: find which
            pending += [i for i in block if not _source_done(params, i, per_source)]
            continue
        for i in block:
            start = (i - first) * per_source
            if not _rows_done(rows[start : start + per_source]):
                pending.append(i)
    return pending


_MARKERS = 256  # sources whose markers one call reads


class _Writer:
    """Synthesises and writes every sample of one source (runs in a worker)."""

    def __init__(self, path: Location, options: BuildOptions, keep: KeptPhotos | None) -> None:
        import zarr

        self.options = options
        self.keep = keep
        self.group: Any = zarr.open_group(store=str(path), mode="r+")
        attrs: dict[str, Any] = dict(self.group.attrs)
        self.sources: list[str] = [str(name) for name in attrs["sources"]]
        self.composite = options.composite()
        # Chunk files are written directly (``SampleChunks``); an array that must go
        # through zarr (depth) has every chunk written, even one equal to the fill value:
        # zarr would otherwise compare each chunk with it first, which costs as much.
        images = ["clean", "degraded", "masks"] + (["depth"] if options.has_depth else [])
        self.model = options.model
        self.arrays: dict[str, SampleChunks] = {}
        for name in images:
            array: Any = self.group[name]
            self.arrays[name] = SampleChunks(array.with_config({"write_empty_chunks": True}))

    def write(self, index: int) -> int:
        """Synthesise and write every sample of source ``index``; return how many."""
        with single_threaded():
            return self._write(index)

    def _write(self, index: int) -> int:
        import torch

        from ..color import linear_to_srgb, srgb_to_linear
        from ..io import from_numpy

        options, group, arrays = self.options, self.group, self.arrays
        relative = self.sources[index]
        clean, shape = self._photo(relative)
        arrays["clean"].write(index, clean[None])
        depth = None
        depth_dir = None if options.depth_dir is None else Path(options.depth_dir)
        fitted, depth_source = source_depth(relative, clean, shape, depth_dir, self.model)
        if fitted is not None:
            # float16 ends at 65504 m; haze is opaque long before, so clip rather than fail.
            stored = np.minimum(fitted, np.float16(65504.0)).astype(np.float16)
            depth = torch.from_numpy(stored.astype(np.float32)).view(
                1, 1, options.size, options.size
            )
        elif options.has_depth:  # this photo's haze used the prior
            stored = np.full((options.size, options.size), np.nan, np.float16)
        if options.has_depth:
            arrays["depth"].write(index, stored[None])
        # Every tier starts from the same photo in linear light: decode it once.
        linear = srgb_to_linear(from_numpy(clean))
        tiers, variants = len(options.tiers), options.variants
        first = sample_index(index, 0, 0, tiers, variants)
        rows: list[str] = []
        batch = _Batch(min(_WRITE_BATCH, tiers * variants), options.size)
        for tier in options.tiers:
            present = [DEGRADATIONS.index(name) for name in tier.split("_")]
            for variant in range(variants):
                seed = sample_seed(options.seed, index, tier, variant)
                generator = torch.Generator().manual_seed(seed)
                with torch.no_grad():
                    params = self.composite.sample(tier, 1, generator)
                    image, mask = self.composite.apply_linear(linear, tier, params, depth)
                    batch.add(linear_to_srgb(image)[0], mask[0], present)
                record = _record(tier, variant, seed, params, depth_source)
                rows.append(json.dumps(record, sort_keys=True))
                if batch.full:
                    self._flush(first + len(rows) - batch.count, batch)
        self._flush(first + len(rows) - batch.count, batch)
        group["params"][first : first + len(rows)] = np.array(rows, dtype=object)
        return len(rows)

    def _photo(self, relative: str) -> tuple[np.ndarray, tuple[int, int]]:
        """The source fitted to S x S, and its shape before fitting."""
        size = self.options.size
        kept = self.keep.take(relative) if self.keep is not None else None
        if kept is not None and kept[0].shape == (size, size, 3):
            return kept
        photo = read_source(Path(self.options.src) / relative, size, self.options.max_pixels)
        return fit_photo(photo, size), (photo.shape[0], photo.shape[1])

    def _flush(self, start: int, batch: _Batch) -> None:
        """Write the buffered samples, a chunk file each."""
        if batch.count:
            self.arrays["degraded"].write(start, batch.images[: batch.count])
            self.arrays["masks"].write(start, batch.masks[: batch.count])
            batch.count = 0


class _Batch:
    """uint8 buffers that samples are converted into, in the layout of the store."""

    def __init__(self, capacity: int, size: int) -> None:
        self.images = np.empty((capacity, size, size, 3), np.uint8)
        self.masks = np.empty((capacity, 4, size, size), np.uint8)
        self.count = 0

    @property
    def full(self) -> bool:
        return self.count == len(self.images)

    def add(self, srgb: Any, masks: Any, present: list[int]) -> None:
        """Add a ``(3, S, S)`` sRGB image and its ``(4, S, S)`` masks, converted by
        ``to_uint8``; ``present`` lists the mask channels of the tier's degradations (the
        others are zero)."""
        hwc_uint8(srgb, out=self.images[self.count])
        channels = self.masks[self.count]
        channels.fill(0)
        for c in present:
            channels[c] = to_uint8(masks[c])
        self.count += 1


_WRITE_BATCH = 16  # samples buffered before a write: ~30 MB at 512 x 512


def to_uint8(tensor: Any) -> np.ndarray:
    """[0, 1] floats to uint8 codes, ``round(255 x)`` (values outside are clamped first).

    The whole codes are cast by numpy, four times faster than torch's float-to-byte.
    """
    return tensor.detach().float().clamp(0, 1).mul_(255.0).round_().numpy().astype(np.uint8)


def hwc_uint8(image: Any, out: np.ndarray | None = None) -> np.ndarray:
    """A ``(3, H, W)`` image in [0, 1] as ``(H, W, 3)`` uint8 codes (``to_uint8``).

    The channels are interleaved one at a time: a permuted copy is several times slower.
    """
    codes = to_uint8(image)
    if out is None:
        out = np.empty((*codes.shape[1:], codes.shape[0]), np.uint8)
    for c, plane in enumerate(codes):
        out[..., c] = plane
    return out


def _record(
    tier: str, variant: int, seed: int, params: dict[str, Any], depth_source: str
) -> dict[str, Any]:
    return {
        "tier": tier,
        "variant": variant,
        "seed": seed,
        "depth_source": depth_source,
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
_WRITERS: dict[tuple[Location, BuildOptions], _Writer] = {}


def _work(task: tuple[Location, BuildOptions, KeptPhotos | None, int]) -> int:
    """Write one source in a worker process, opening the store once per worker."""
    path, options, keep, index = task
    writer = _WRITERS.get((path, options))
    if writer is None:
        writer = _WRITERS[(path, options)] = _Writer(path, options, keep)
    return writer.write(index)


class Workers:
    """Runs ingest and synthesis in-process (``workers == 1``) or in one pool of processes.

    Workers are spawned (no inherited torch threads or open stores), use one thread each,
    and open the store themselves on their first source.
    """

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self.pool: Any = None

    def __enter__(self) -> Workers:
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

    def write(
        self, path: Location, options: BuildOptions, indices: list[int], keep: KeptPhotos | None
    ) -> Iterator[int]:
        if self.pool is None:
            return map(_Writer(path, options, keep).write, indices)
        tasks = [(path, options, keep, index) for index in indices]
        return self.pool.imap_unordered(_work, tasks, chunksize=1)


# The environment a ``local:N`` cluster's worker processes start with (what glibc reads
# once, at start). A Dask worker runs its tasks in a thread of its own, which glibc gives
# an arena of its own, whose heaps go back to the kernel once free whatever the trim
# threshold the setup sets: the kept heap would not be the one the tasks use. One arena
# for every thread makes it so. glibc fixes its limit on arenas when it makes the first
# thread arena, which a worker's threads have done before its setup runs, so this cannot
# be set from the setup: other clusters' workers need it in their own environment
# (docs/datasets.md).
WORKER_ENVIRON = {"MALLOC_ARENA_MAX": "1"}


class DaskWorkers:
    """``Workers`` on a ``dask.distributed`` cluster: ``local:N`` starts a ``LocalCluster``
    of ``N`` one-thread worker processes; any other value is a scheduler's address
    (``tcp://host:8786``), whose workers must reach ``--src`` at the same path and the
    store at the same path (a shared file system) or URL (an object store).

    Every worker is set up as a pool worker is (one thread, a heap that keeps freed
    memory: ``_one_thread_kept_heap``). Each task writes one source's samples into the
    store (``_work``); a task whose worker dies is run again elsewhere by Dask's scheduler
    (``distributed.scheduler.allowed-failures``), one that raises is retried
    (``RETRIES``), and a source written twice is written with the same bytes under the
    same names, so no sample is lost or doubled. The calling
    process ingests nothing and marks the store complete only once every source is in.
    """

    RETRIES = 3

    def __init__(self, scheduler: str) -> None:
        self.scheduler = scheduler
        self.cluster: Any = None
        self.client: Any = None
        self.environ: dict[str, str] | None = None

    def __enter__(self) -> DaskWorkers:
        try:
            from distributed import Client, LocalCluster
        except ImportError as error:
            raise ImportError(
                "--scheduler needs dask.distributed: pip install 'skyclear[dask]'"
            ) from error
        try:
            self._start(Client, LocalCluster)
        except BaseException:  # what had started is closed, its environment gone
            self.__exit__(None)
            raise
        return self

    def _start(self, client: Any, local_cluster: Any) -> None:
        """Start (``local:N``) or join the cluster and set its workers up."""
        if self.scheduler.startswith("local:"):
            import dask

            count = int(self.scheduler.split(":", 1)[1])
            # Only what the build needs of the cluster's machinery, whose processes share
            # the cores with the work: no dashboard, so no profiler sampling each worker
            # every 10 ms, nor metrics every 0.5 s, nor event loops woken every 20 ms to
            # see if they are blocked; and no memory limit (a task holds no data, returning
            # a count), so no monitor polling each worker 10 times a second. On 2 cores
            # these took the cluster from 0.85x to 0.92x of the pool's samples/s. And
            # ``WORKER_ENVIRON`` for each worker process.
            with dask.config.set({
                "distributed.worker.profile.enabled": False,
                "distributed.admin.system-monitor.interval": "5s",
                "distributed.admin.tick.interval": "1s",
                **{f"distributed.nanny.pre-spawn-environ.{name}": value
                   for name, value in WORKER_ENVIRON.items()},
            }):  # fmt: skip
                # The nannies put the workers' environment into this process's own (the
                # variables it lacks) before they spawn them: what the start added goes
                # once the cluster is closed, unless changed since (``__exit__``).
                before = set(os.environ)
                try:
                    self.cluster = local_cluster(
                        n_workers=count, threads_per_worker=1, processes=True, memory_limit=0,
                        dashboard_address=None, silence_logs=40,
                    )  # fmt: skip
                finally:
                    self.environ = {name: os.environ[name] for name in set(os.environ) - before}
            self.client = client(self.cluster)
        else:
            self.client = client(self.scheduler)
        # Each worker as our pool's: one thread, a heap that keeps freed memory (a third
        # of the synthesis time goes to page faults without it); the workers of a cluster
        # of our own also leave at once when it closes, as the pool's do. A plugin, so that
        # a worker replacing one that died is set up too.
        from ._dask import PoolSetup

        self.client.register_plugin(PoolSetup(quick_exit=self.cluster is not None))

    def __exit__(self, kind: object, *exc: object) -> None:
        try:
            if self.client is not None:
                if self.cluster is None:  # someone else's cluster: no setup of ours stays
                    from ._dask import PoolSetup

                    with contextlib.suppress(Exception):
                        self.client.unregister_worker_plugin(PoolSetup.name)
                self.client.close()
            if self.cluster is not None:
                self.cluster.close()
        finally:
            for name, value in (self.environ or {}).items():
                if os.environ.get(name) == value:
                    del os.environ[name]
            self.environ = None

    def ingest(
        self, function: Callable[[Any], str | None], items: list[Any]
    ) -> Iterable[str | None]:
        futures = self.client.map(function, items, pure=False, retries=self.RETRIES)
        return (future.result() for future in futures)

    def write(
        self, path: Location, options: BuildOptions, indices: list[int], keep: KeptPhotos | None
    ) -> Iterator[int]:
        from distributed import as_completed

        tasks = [(path, options, keep, index) for index in indices]
        futures = self.client.map(_work, tasks, pure=False, retries=self.RETRIES)
        return (future.result() for future in as_completed(futures))


def parse_scheduler(value: str) -> str:
    """``local:N`` (N >= 1) or a scheduler address; ``ValueError`` otherwise."""
    if value.startswith("local:"):
        count = value.split(":", 1)[1]
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"local:N needs a number of workers N >= 1, got {value!r}")
        return value
    if "://" not in value and ":" not in value:
        raise ValueError(
            f"expected local:N or a scheduler address such as tcp://host:8786, got {value!r}"
        )
    return value


def _single_thread() -> None:
    """Set up a worker process: one thread for torch and blosc, a heap that keeps its
    memory, and a quick exit.

    The operators allocate many image-sized temporaries; glibc returns each freed block
    to the kernel and the next one page-faults back in, which costs a third of the
    synthesis time. In our own worker processes (never in the caller's), freed blocks stay
    on the heap instead.
    """
    import atexit

    # A worker leaves once the pool is closed and its last result delivered; unwinding
    # torch and zarr at interpreter exit would take most of a second, for nothing.
    atexit.register(os._exit, 0)
    _one_thread_kept_heap()


def _one_thread_kept_heap() -> None:
    """One thread for torch and blosc and a heap that keeps freed memory: the setup of a
    worker process of ours (a pool's, or a Dask worker's of a make-cdd11 run)."""
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
