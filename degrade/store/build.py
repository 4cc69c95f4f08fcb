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

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..location import location
from .chunks import remove_partial_files
from .format import StoreError
from .ingest import Skipped, find_sources
from .kept import KeptPhotos
from .options import BuildOptions, sample_seed
from .prepare import check_store_apart, check_store_path, check_store_url, prepare_once
from .writer import DaskWorkers, Workers, pending_sources

__all__ = [
    "BuildOptions",
    "BuildSummary",
    "NoUsablePhotoError",
    "build",
    "pending_sources",
    "sample_seed",
]

Progress = Callable[[int], None]


class NoUsablePhotoError(StoreError):
    """No file under ``--src`` is a usable photo; ``skipped`` holds each file and why.

    The message lists them too; ``headline`` is its first line alone.
    """

    def __init__(self, src: Path, skipped: list[Skipped]) -> None:
        self.headline = f"no usable photo in {src} ({len(skipped)} files skipped)"
        super().__init__(self.headline + "".join(f"\n  {s.file}: {s.reason}" for s in skipped))
        self.src = src
        self.skipped = skipped


@dataclass(frozen=True)
class BuildSummary:
    """What a run did."""

    path: str
    sources: int
    samples: int
    written: int
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0  # the whole run
    complete: bool = False
    synthesis_seconds: float = 0.0  # synthesis and writing only, the workers started

    @property
    def samples_per_second(self) -> float:
        """Over the whole run: workers' start, ingest and completion included."""
        return self.written / self.seconds if self.seconds > 0 else 0.0

    @property
    def synthesis_samples_per_second(self) -> float:
        """Synthesis and writing alone, once the workers are started and the photos
        ingested (the start is a fixed cost; ingest grows with the photos)."""
        return self.written / self.synthesis_seconds if self.synthesis_seconds > 0 else 0.0


def build(
    options: BuildOptions,
    out: str | Path,
    *,
    workers: int = 1,
    shard: tuple[int, int] = (0, 1),
    overwrite: bool = False,
    progress: Callable[[str, int], Progress] | None = None,
    scheduler: str | None = None,
) -> BuildSummary:
    """Build (or resume) the store at ``out``.

    Args:
        options: what the store holds.
        out: the store's path, or a URL that fsspec opens (``location``; ``s3://...``
            with ``skyclear[s3]``).
        workers: processes synthesising in parallel (the bytes do not depend on it).
        shard: ``(k, n)``: this process fills the sources ``i`` with ``i % n == k``; only
            the whole run (``n == 1``) marks the store complete. Every shard must be given
            the same options; the first process to arrive prepares the store.
        overwrite: replace a skyclear store made by a different command (or use an empty
            folder). Nothing else is ever replaced: see ``prepare.check_store_path``.
        progress: ``progress(stage, total)`` returns a callback advanced by units done.
        scheduler: run ingest and synthesis on a ``dask.distributed`` cluster instead
            (``local:N`` or a scheduler's address; ``writer.DaskWorkers``); the bytes are
            those of a local build.

    Raises:
        StoreError: ``out`` is, holds or lies inside ``--src`` or ``--depth``, or holds
            something that is not a skyclear store; the store belongs to another command.
        NoUsablePhotoError: no usable photo (a ``StoreError``).
    """
    start = time.perf_counter()
    path = location(out)
    src = Path(options.src)
    if not src.is_dir():
        raise StoreError(f"--src {src} is not a folder")
    if options.depth_dir is not None and not Path(options.depth_dir).is_dir():
        raise StoreError(f"--depth {options.depth_dir} is not a folder")
    model = options.model
    if model is not None:
        try:
            model.check()
        except ValueError as error:
            raise StoreError(str(error)) from error
    # Before anything is written beside the store (kept photos, the lock file). What the
    # store's folder holds is checked under the lock (``prepare_once``): a shard arriving
    # while another prepares the store would find it half made here.
    check_store_apart(path, options)
    if isinstance(path, str):  # no lock to wait for: refuse what is there before decoding
        if shard[0] == 0:
            check_store_path(path, options)
        else:  # the first shard may be preparing it: its look is the one that counts
            check_store_url(path)
    # A shard would keep every photo but use a few: it decodes its own photos twice.
    if shard[1] != 1:
        keep = None
    else:
        keep = KeptPhotos.beside(path) if isinstance(path, Path) else KeptPhotos.temporary()
    try:
        engine = Workers(workers) if scheduler is None else DaskWorkers(scheduler)
        with engine as pool:
            sources, skipped = find_sources(
                src, options.size, pool.ingest, keep, options.max_pixels
            )
            if not sources:
                raise NoUsablePhotoError(src, skipped)
            prepare_once(path, options, sources, skipped, overwrite, first=shard[0] == 0)
            mine = [i for i in pending_sources(path) if i % shard[1] == shard[0]]
            per_source = len(options.tiers) * options.variants
            advance = progress("samples", len(mine) * per_source) if progress else None
            written, synthesis = 0, time.perf_counter()
            for count in pool.write(path, options, mine, keep):
                written += count
                if advance:
                    advance(count)
            synthesis = time.perf_counter() - synthesis
    finally:
        if keep is not None:
            keep.remove()
    complete = False
    if shard[1] == 1:
        if pending_sources(path):
            raise StoreError(f"{path}: sources still missing after the run; run the command again")
        import zarr

        # Every sample is in, so no writer is at work: what a killed one left half-written
        # under a temporary name can go (an object store has no half-written objects).
        if isinstance(path, Path):
            remove_partial_files(path)
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
        synthesis_seconds=synthesis,
    )
