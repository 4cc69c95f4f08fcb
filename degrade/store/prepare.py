"""Creating a store, recognising one to resume, and never deleting what is not ours."""

from __future__ import annotations

import os
import shutil
import socket
import time
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from ..names import DEGRADATIONS
from .format import FORMAT, StoreError, compressor
from .ingest import Skipped
from .kept import process_is_gone
from .options import BuildOptions, split_of

__all__ = ["prepare_once"]


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


_INDEX_CHUNK = 1 << 20  # samples per chunk of the index arrays source, tier and split


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
        # Chunk keys ``c.i.0.0.0``, one folder per array: the default ``c/i/0/0/0`` makes
        # three nested folders for every sample, which costs more than compressing it.
        return group.create_array(
            name, shape=shape, chunks=chunks, dtype=dtype, compressors=codec,
            dimension_names=dims, fill_value=fill,
            chunk_key_encoding={"name": "default", "separator": "."},
        )  # fmt: skip

    array("clean", (count, size, size, 3), (1, size, size, 3), "uint8", ["source", "y", "x", "rgb"])
    array(
        "degraded", (total, size, size, 3), (1, size, size, 3), "uint8", ["sample", "y", "x", "rgb"]
    )
    # One chunk per sample: a reader always wants all four channels of a crop, and one
    # chunk is one read (and one write) instead of four.
    array(
        "masks",
        (total, 4, size, size),
        (1, 4, size, size),
        "uint8",
        ["sample", "degradation", "y", "x"],
    )
    if options.depth_dir is not None:
        array("depth", (count, size, size), (1, size, size), "float16", ["source", "y", "x"])
    # Written once, here: one chunk (up to a million samples) is one file to write and to
    # read, where a chunk per source would be thousands.
    index_chunks = (max(1, min(total, _INDEX_CHUNK)),)
    source = array("source", (total,), index_chunks, "int32", ["sample"])
    tier = array("tier", (total,), index_chunks, "uint8", ["sample"])
    split = array("split", (total,), index_chunks, "uint8", ["sample"])
    # One chunk per source: the chunk written last marks the source done.
    array("params", (total,), (per_source,), str, ["sample"], fill="")
    if total:
        source[:] = np.repeat(np.arange(count, dtype=np.int32), per_source)
        tier[:] = np.tile(np.repeat(np.arange(tiers, dtype=np.uint8), variants), count)
        split[:] = np.repeat(split_of(count, options.test_fraction, options.seed), per_source)
    group.attrs["complete"] = False  # written last: the store is prepared


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
        return process_is_gone(host, int(pid))
    except (OSError, ValueError):
        return False


def prepare_once(
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
