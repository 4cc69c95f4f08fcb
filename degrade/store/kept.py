"""Fitted photos kept on disk from ingest to synthesis, so that a photo is decoded once.

Ingest must decode every candidate to know whether it is usable; decoding a photo costs as
much as synthesising a few of its tiers. While it has the pixels, ingest saves the photo
fitted to ``S x S`` (and its original shape, which depth maps are checked against) in a
hidden folder beside the store, ``.NAME.photos-HOST-PID``; the writer of a source takes
its photo from there, deletes the file, and decodes the photo again only if the file is
missing or unreadable (a full disk, say). The folder goes when the run ends; one left by
a killed run of this machine is removed by the next run against the same store. A store
at a URL has no folder beside it: its photos are kept in a temporary folder of this
machine (``temporary``), which Dask workers of other machines do not see (they decode
the photo again), and which the next such run of this machine removes after a kill.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

__all__ = ["KeptPhotos", "process_is_gone"]

_TAG = ".photos-"


def process_is_gone(host: str, pid: int) -> bool:
    """True if ``pid`` of this machine no longer runs; False if it does, or if it belongs
    to another machine (whose processes cannot be checked from here)."""
    if host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists but is not ours to signal
        return False
    return False


def _remove_stale(parent: Path, prefix: str, suffixed: bool) -> None:
    """Remove the folders ``PREFIX HOST-PID`` (``-RANDOM`` after it when ``suffixed``) in
    ``parent`` that dead processes of this machine, run by this user, left."""
    for folder in parent.glob(prefix + "*"):
        rest = folder.name[len(prefix) :]
        if suffixed:
            rest = rest.rpartition("-")[0]
        host, _, pid = rest.rpartition("-")
        try:
            mine = folder.lstat().st_uid == os.getuid() and not folder.is_symlink()
        except OSError:
            continue
        if mine and pid.isdigit() and process_is_gone(host, int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


class KeptPhotos:
    """The folder of one run's fitted photos; picklable, to travel to worker processes."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def beside(cls, store: Path) -> KeptPhotos | None:
        """Make this process's folder next to ``store`` (after removing stale ones), or
        return ``None`` if it cannot be made: photos are then decoded twice."""
        prefix = f".{store.name}{_TAG}"
        try:
            _remove_stale(store.parent, prefix, suffixed=False)
            folder = store.parent / f"{prefix}{socket.gethostname()}-{os.getpid()}"
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return None
        return cls(folder)

    @classmethod
    def temporary(cls) -> KeptPhotos | None:
        """``beside`` for a store with no folder beside it (at a URL): a new private folder
        ``skyclear.photos-HOST-PID-RANDOM`` in the system's temporary folder (which other
        users share: a name known in advance could be theirs first), or ``None``."""
        import tempfile

        parent, prefix = Path(tempfile.gettempdir()), f"skyclear{_TAG}"
        try:
            _remove_stale(parent, prefix, suffixed=True)
            me = f"{prefix}{socket.gethostname()}-{os.getpid()}-"
            return cls(Path(tempfile.mkdtemp(prefix=me, dir=parent)))
        except OSError:
            return None

    def _file(self, relative: str) -> Path:
        return self.folder / (hashlib.sha1(relative.encode()).hexdigest() + ".npz")

    def save(self, relative: str, fitted: NDArray[np.uint8], shape: tuple[int, int]) -> None:
        """Keep ``fitted`` for source ``relative`` (best effort: failures are ignored)."""
        file = self._file(relative)
        try:
            with file.open("wb") as out:
                np.savez(out, clean=fitted, shape=np.array(shape, dtype=np.int64))
        except OSError:
            file.unlink(missing_ok=True)

    def take(self, relative: str) -> tuple[NDArray[np.uint8], tuple[int, int]] | None:
        """The kept ``(fitted photo, original shape)`` of ``relative``, removed from the
        folder; ``None`` if there is none that can be read."""
        file = self._file(relative)
        try:
            with np.load(file) as kept:
                fitted, shape = kept["clean"], kept["shape"]
        except Exception:  # missing, torn or foreign: the caller decodes the photo
            return None
        finally:
            file.unlink(missing_ok=True)
        if fitted.dtype != np.uint8 or fitted.ndim != 3 or shape.shape != (2,):
            return None
        return fitted, (int(shape[0]), int(shape[1]))

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
