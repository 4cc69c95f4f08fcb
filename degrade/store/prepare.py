"""Creating a store, recognising one to resume, and never deleting what is not ours.

Whatever ``--overwrite`` says, make-cdd11 replaces only a skyclear store (``is_store``)
or an empty folder, and never writes over, into or around its photos or depth maps
(``skyclear.degrade.outputs``). A store at a URL (``location``) is replaced only if it
is a skyclear store; any other object under its prefix refuses the command.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..location import Location, url_filesystem, url_objects
from ..names import DEGRADATIONS
from ..outputs import OutputError, check_apart, check_output
from .format import FORMAT, StoreError, compressor, is_store
from .ingest import Skipped
from .kept import process_is_gone
from .options import BuildOptions, split_of_sources

__all__ = ["check_store_apart", "check_store_path", "check_store_url", "prepare_once"]


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
        **options.recorded(),  # every option the content depends on
        "degradations": list(DEGRADATIONS),
        "sources": sources,
        "skipped": [asdict(item) for item in skipped],
        "version": _skyclear_version(),
    }


_INDEX_CHUNK = 1 << 20  # samples per chunk of the index arrays source, tier and split


def _prepare(
    path: Location, options: BuildOptions, sources: list[str], skipped: list[Skipped]
) -> None:
    """Create the group, every array and the per-sample index arrays; complete = false."""
    import zarr

    size, tiers, variants = options.size, len(options.tiers), options.variants
    per_source = tiers * variants
    count, total = len(sources), len(sources) * per_source
    codec = compressor()
    # At a URL, "w" would have fsspec remove the prefix recursively, which globs and can
    # reach past it: the prefix holds nothing of a store already (``_remove``), so only
    # create there ("w-" would refuse a prefix holding a console's folder marker).
    mode: Literal["a", "w"] = "a" if isinstance(path, str) else "w"
    group = zarr.open_group(store=str(path), mode=mode, zarr_format=3)
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
    if options.has_depth:  # NaN for a source whose haze used the prior
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
        split[:] = np.repeat(split_of_sources(sources, options), per_source)
    group.attrs["complete"] = False  # written last: the store is prepared


def _inputs(options: BuildOptions) -> list[Path | None]:
    folders = (options.depth_dir, options.depth_model)
    return [Path(options.src), *(None if folder is None else Path(folder) for folder in folders)]


def check_store_apart(path: Location, options: BuildOptions) -> None:
    """Refuse a store path that is, holds or lies inside ``--src``, ``--depth`` or
    ``--depth-model`` (a URL never does).

    Raises:
        StoreError: the reason; nothing has been touched.
    """
    if isinstance(path, str):
        return
    try:
        check_apart(path, _inputs(options))
    except OutputError as error:
        raise StoreError(str(error)) from error


def check_store_path(path: Location, options: BuildOptions) -> None:
    """Refuse a store path that is, holds or lies inside ``--src``, ``--depth`` or
    ``--depth-model`` (through symlinks too), or that holds anything but a skyclear store
    or an empty folder; a URL with objects under it that are not a skyclear store.

    Raises:
        StoreError: the reason; nothing has been touched.
    """
    if isinstance(path, str):
        check_store_url(path)
        # Not a store: then nothing may be under the prefix, at any depth (a listing by
        # levels misses a key such as data.zarr//notes.txt, which a removal would reach).
        if not is_store(path) and url_objects(path):
            raise StoreError(
                f"{path} holds objects that are not a skyclear store; make-cdd11 writes only "
                "to a prefix with nothing under it or to its own store"
            )
        return
    try:
        check_output(path, inputs=_inputs(options), is_ours=is_store, kind="a skyclear store")
    except OutputError as error:
        raise StoreError(str(error)) from error


def _remove(path: Location) -> None:
    """Remove a store that ``check_store_path`` accepted (a symlink: only the link).

    ``complete`` goes first and ``zarr.json`` last, so that a removal killed halfway leaves
    a store still known for ours, and known to be unfinished: it is prepared anew, never
    resumed and never refused as foreign.
    """
    if isinstance(path, str):
        _remove_objects(path)
        return
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
        return
    import zarr

    if (path / "zarr.json").is_file():
        group = zarr.open_group(store=str(path), mode="r+")
        if "complete" in group.attrs:
            del group.attrs["complete"]
    for entry in path.iterdir():
        if entry.name == "zarr.json":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    shutil.rmtree(path)


_WILDCARDS = re.compile(r"[*?\[\]]")


def check_store_url(url: str) -> None:
    """Refuse a URL that a removal could carry past its own objects: the root of a bucket,
    a name with the wildcards fsspec expands, or the key of an object itself.

    Raises:
        StoreError: the reason; nothing has been touched.
    """
    fs, root = url_filesystem(url)
    if _WILDCARDS.search(root):
        raise StoreError(f"{url}: [ ] * ? in a store's name would be read as wildcards; "
                         "choose a name without them")  # fmt: skip
    if "/" not in root.strip("/"):
        raise StoreError(f"{url} names no key inside a bucket (or folder); make the store at "
                         f"one, such as {url}/data.zarr")  # fmt: skip
    if fs.isfile(root):
        raise StoreError(f"{url} is an object that is not a skyclear store; it is left as it is "
                         "(choose another --out)")  # fmt: skip


def _remove_objects(url: str) -> None:
    """``_remove`` for a store at a URL: its objects, in the same order, each named by its
    own key (a name with wildcards is removed alone, never expanded)."""
    import zarr

    if not is_store(url):  # then nothing is ours to remove (``check_store_path``)
        return
    keys = url_objects(url)
    if "zarr.json" in keys:
        group = zarr.open_group(store=url, mode="r+")
        if "complete" in group.attrs:
            del group.attrs["complete"]
    fs, root = url_filesystem(url)
    rest = [f"{root}/{key}" for key in keys if key != "zarr.json"]
    literal = [path for path in rest if not _WILDCARDS.search(path)]
    if literal:
        fs.rm(literal)  # in batches where the store has them (S3: 1000 keys a request)
    for path in rest:
        if _WILDCARDS.search(path):
            fs.rm_file(path)
    if "zarr.json" in keys:
        fs.rm_file(f"{root}/zarr.json")
    fs.invalidate_cache()


def _check_existing(
    path: Location, options: BuildOptions, sources: list[str], overwrite: bool
) -> bool:
    """True if ``path`` holds a prepared store of this very command (to resume).

    False if there is nothing to keep: nothing there, a store interrupted while being
    prepared, or (with ``overwrite``) an empty folder or a store of another command.
    Anything else raises: it is not ours to delete.
    """
    import zarr

    # Checked again here, under the lock: the last look before anything is removed.
    check_store_path(path, options)
    if isinstance(path, str):
        if not is_store(path):  # then nothing is there: ``check_store_path``
            return False
    elif not path.exists():
        return False
    elif not any(path.iterdir()):
        if overwrite:
            return False
        raise StoreError(f"{path} is an empty folder, not a skyclear store; pass --overwrite to "
                         "make the store there")  # fmt: skip
    attrs = dict(zarr.open_group(store=str(path), mode="r").attrs)
    return _is_this_command(path, attrs, options, sources, overwrite)


def _is_this_command(
    path: Location,
    attrs: dict[str, Any],
    options: BuildOptions,
    sources: list[str],
    overwrite: bool,
) -> bool:
    """True if ``attrs`` are those of this command's prepared store; False for the empty
    group or the store of an interrupted preparation, and (with ``overwrite``) for a store
    of another command.

    Raises:
        StoreError: a store of another command, without ``overwrite``.
    """
    if attrs.get("format") != FORMAT:  # the empty group of a preparation killed at once
        return False
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
    path: Location,
    options: BuildOptions,
    sources: list[str],
    skipped: list[Skipped],
    overwrite: bool,
    *,
    first: bool = True,
) -> None:
    """Make sure ``path`` holds this command's prepared store, preparing it if need be.

    Shards started together race to prepare; an exclusive lock file next to the store lets
    one prepare while the others wait, then find the store ready. An object store has no
    exclusive create, so at a URL the ``first`` shard (or the whole run) prepares and the
    other shards wait until they find the store it prepared.
    """
    if isinstance(path, str):
        _prepare_at_url(path, options, sources, skipped, overwrite, first)
        return
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


def _prepare_at_url(
    url: str,
    options: BuildOptions,
    sources: list[str],
    skipped: list[Skipped],
    overwrite: bool,
    first: bool,
) -> None:
    """``prepare_once`` for a store at a URL (no lock: one shard prepares)."""
    if first:
        if not _check_existing(url, options, sources, overwrite):
            _remove(url)
            _prepare(url, options, sources, skipped)
        return
    deadline = time.monotonic() + _LOCK_WAIT
    while not _prepared_at(url, options, sources, overwrite):
        if time.monotonic() > deadline:
            raise StoreError(
                f"{url}: no store prepared by this command after {_LOCK_WAIT:.0f} s; at a URL "
                "the first shard (--shard 0/N) prepares the store: start it too"
            )
        time.sleep(1.0)


def _prepared_at(url: str, options: BuildOptions, sources: list[str], overwrite: bool) -> bool:
    """Whether a waiting shard finds the store this command's first shard prepares.

    It reads the group's attributes alone: whatever else it finds (nothing yet, a store
    halfway removed or created, one that ``overwrite`` is about to replace) means "not yet";
    refusing what is not a store is the first shard's part.

    Raises:
        StoreError: a store of another command, without ``overwrite`` (which the first
            shard refuses too).
    """
    import zarr

    try:
        attrs = dict(zarr.open_group(store=url, mode="r").attrs)
    except Exception:  # nothing there yet, or the group's zarr.json being replaced
        return False
    return _is_this_command(url, attrs, options, sources, overwrite)
