"""Whole-sample chunks written straight to their files, next to zarr rather than through it.

A writer's chunks are always whole (one sample, one chunk) and never read back, so the
general machinery of ``Array.__setitem__`` (selection, an event loop, a thread per codec
step and per file) is all overhead: on a 2-core CPU it costs about 2.8 ms of CPU time to
write one 512 x 512 sample's image and masks, against 1.1 ms to compress the same two
chunks and write their files here. The files are byte for byte those zarr writes (the
same codec with the same configuration, tested), each written under a temporary name
and renamed into place, so a reader or a resumed run never sees half a chunk.

Only arrays in a local folder whose codecs are exactly ``bytes`` and ``blosc`` and whose
chunks hold one row take this path; any other array is written through zarr.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SampleChunks", "remove_partial_files"]

_PARTIAL = ".partial"


class SampleChunks:
    """Writes rows of a zarr array whose chunks are single rows (one sample each)."""

    def __init__(self, array: Any) -> None:
        self.array = array
        self.folder, self.codec = _direct_route(array)

    def write(self, start: int, rows: np.ndarray) -> None:
        """Set rows ``start .. start + len(rows)`` to ``rows``."""
        if rows.shape[1:] != tuple(self.array.shape[1:]) or rows.dtype != self.array.dtype:
            raise ValueError(
                f"rows of {self.array.path} must be {self.array.dtype} of shape (n, "
                f"{', '.join(map(str, self.array.shape[1:]))}), got {rows.dtype} {rows.shape}"
            )
        if self.folder is None:
            self.array[start : start + len(rows)] = rows
            return
        rest = (0,) * (rows.ndim - 1)
        for offset, row in enumerate(rows):
            key = self.array.metadata.encode_chunk_key((start + offset, *rest))
            target = self.folder / key
            encoded = self.codec.encode(np.ascontiguousarray(row))
            partial = target.with_name(f"{target.name}.{os.getpid()}{_PARTIAL}")
            try:
                with partial.open("wb") as out:
                    out.write(encoded)
                partial.replace(target)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise


def _direct_route(array: Any) -> tuple[Path | None, Any]:
    """The array's folder and a blosc codec equal to its own, or ``(None, None)`` if its
    chunks cannot be written directly."""
    from numcodecs import Blosc
    from zarr.codecs import BloscCodec, BytesCodec
    from zarr.storage import LocalStore

    metadata = array.metadata
    codecs: tuple[Any, ...] = tuple(getattr(metadata, "codecs", ()))
    chunks = getattr(getattr(metadata, "chunk_grid", None), "chunk_shape", None)
    direct = (
        isinstance(array.store, LocalStore)
        and np.dtype(array.dtype) == np.uint8
        and chunks == (1, *array.shape[1:])
        and len(codecs) == 2
        and isinstance(codecs[0], BytesCodec)
        and isinstance(codecs[1], BloscCodec)
    )
    if not direct:
        return None, None
    config = dict(codecs[1].to_dict()["configuration"])
    shuffles = {
        "noshuffle": Blosc.NOSHUFFLE,
        "shuffle": Blosc.SHUFFLE,
        "bitshuffle": Blosc.BITSHUFFLE,
    }
    config["shuffle"] = shuffles[str(config["shuffle"])]
    folder = Path(array.store.root) / array.path
    folder.mkdir(parents=True, exist_ok=True)
    return folder, Blosc.from_config(config)


def remove_partial_files(path: Path) -> None:
    """Remove the temporary chunk files a killed writer left in the store at ``path``
    (ours and zarr's). Only safe once no writer can be at work on the store."""
    for item in path.rglob(f"*{_PARTIAL}"):
        if item.is_file():
            item.unlink(missing_ok=True)
