"""Checkpoints: written atomically, read without pickle.

A checkpoint is a ``torch.save`` file of plain values only: tensors, numbers, strings,
lists and dicts. It is read with ``torch.load(weights_only=True)``, whose unpickler
refuses anything else, so a file that would run code when unpickled is rejected, never
executed. The payload:

* ``format``: ``"skyclear.restore/1"``;
* ``config``: the ``TrainConfig`` as a nested dict;
* ``step``: optimizer steps done;
* ``model`` and ``ema``: state dicts of the network and of its moving average, and
  ``ema_updates``: how many updates the average has had;
* ``optimizer``: the AdamW state dict;
* ``rng``: torch's CPU generator state;
* ``best``: the best validation PSNR so far, ``metrics``: the last validation's, and
  ``bad_steps``: consecutive non-finite steps.

``model``, ``ema``, ``config``, ``step`` and ``format`` are required (they are all that
inference needs); the rest only matters to ``restore train --resume``.

Writing goes to a temporary file in the same folder, is flushed to disk, then renamed over
the old file, so a crash at any point leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import typing
import zipfile
from pathlib import Path
from typing import Any

import torch

from .config import ConfigError, TrainConfig, config_from_dict

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "checkpoint_digest",
    "link_checkpoint",
    "load_checkpoint",
    "read_weights_only",
    "save_checkpoint",
    "train_config_of",
]

CHECKPOINT_FORMAT = "skyclear.restore/1"
_REQUIRED = ("format", "config", "step", "model", "ema")


class CheckpointError(ValueError):
    """A file that is not a usable skyclear checkpoint; the message says why."""


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> None:
    """Write ``payload`` to ``path`` atomically (temporary file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as file:
            torch.save({"format": CHECKPOINT_FORMAT, **payload}, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    _sync_folder(path.parent)


def link_checkpoint(source: str | Path, path: str | Path) -> None:
    """Make ``path`` a copy of the complete checkpoint ``source`` (a hard link where the
    file system has them), atomically."""
    source, path = Path(source), Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    try:
        try:
            os.link(source, temporary)
        except OSError:
            with open(source, "rb") as original, open(temporary, "wb") as copy:
                shutil.copyfileobj(original, copy)
                copy.flush()
                os.fsync(copy.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """Make a rename durable (where the platform allows opening folders)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def checkpoint_digest(path: str | Path) -> str:
    """The first 16 hex digits of the file's SHA-256: which weights made a result (the
    same for a copy or a link of the file, different for any other checkpoint)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with the weights-only unpickler and check its shape.

    Raises:
        CheckpointError: a missing, truncated, foreign or malformed file, or one that
            would need arbitrary unpickling (and would run code) to load.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: not a readable checkpoint (not a torch.save archive)")
    payload = read_weights_only(path, "checkpoint", map_location)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        kind = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            f"{path}: not a skyclear restorer checkpoint (format {kind!r}, "
            f"expected {CHECKPOINT_FORMAT!r})"
        )
    missing = [key for key in _REQUIRED if key not in payload]
    if missing:
        raise CheckpointError(f"{path}: malformed checkpoint, missing {missing}")
    return typing.cast(dict[str, Any], payload)


def read_weights_only(
    path: Path, kind: str = "checkpoint", map_location: str | torch.device = "cpu"
) -> Any:
    """``torch.load(path, weights_only=True)`` with every failure a ``CheckpointError``
    saying why: a file that would need unrestricted unpickling is refused, naming the
    callable it would have run; anything else unreadable is called so (``kind`` names
    what the file should have been)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        # The weights-only unpickler names the callable it refused to import; any other
        # unpickling failure is a damaged or foreign file.
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        if found is None:
            raise CheckpointError(f"{path}: not a readable {kind} ({error})") from error
        raise CheckpointError(
            f"{path}: refused; it holds objects that only unrestricted unpickling could "
            f"load, which can run arbitrary code (it would call {found.group(1)})"
        ) from error
    except Exception as error:  # a malformed file fails anywhere inside the unpickler
        raise CheckpointError(f"{path}: not a readable {kind} ({error})") from error


def train_config_of(payload: dict[str, Any], path: str | Path = "checkpoint") -> TrainConfig:
    """The ``TrainConfig`` stored in a loaded checkpoint."""
    try:
        return typing.cast(TrainConfig, config_from_dict(payload["config"]))
    except ConfigError as error:
        raise CheckpointError(f"{path}: its config is not valid here ({error})") from error
