"""The ``skyclear.cdd11/1`` store: names, codecs, and the opener every reader uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..location import location, url_filesystem, url_objects
from ..names import DEGRADATIONS, TIERS

__all__ = [
    "FORMAT",
    "SPLITS",
    "StoreError",
    "compressor",
    "is_store",
    "open_store",
    "presence_of",
    "sample_index",
]

FORMAT = "skyclear.cdd11/1"
SPLITS: tuple[str, ...] = ("train", "test")


class StoreError(ValueError):
    """A store that cannot be read or written as asked (incomplete, foreign, mismatched)."""


def compressor() -> Any:
    """blosc-lz4, level 5, byte shuffle: the codec of every array in the store.

    Speed over the last few percent of size: degraded photos carry sensor noise and
    compress little with any codec (lz4 1.12x, zstd level 3 1.23x on a 512 x 512 sample),
    and on such an image lz4 writes 2.6x and reads 2.1x faster than zstd level 3. Masks
    shrink 7x with lz4 (12x with zstd), a small share of a sample either way.
    """
    from zarr.codecs import BloscCodec, BloscShuffle

    return BloscCodec(cname="lz4", clevel=5, shuffle=BloscShuffle.shuffle)


def sample_index(source: int, tier: int, variant: int, tiers: int, variants: int) -> int:
    """Position of a sample: samples are laid out source-major, then tier, then variant."""
    return (source * tiers + tier) * variants + variant


def presence_of(tier: str) -> NDArray[np.float32]:
    """The 4-vector (low, haze, rain, snow) of which degradations ``tier`` holds."""
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}")
    parts = tier.split("_")
    return np.array([name in parts for name in DEGRADATIONS], dtype=np.float32)


def is_store(path: str | Path) -> bool:
    """True if ``path`` is a skyclear store, complete or not, or what a preparation killed
    at its first step leaves: a folder holding nothing but an empty group's ``zarr.json``.

    These are what make-cdd11 may resume or replace; anything else is not its to delete.
    ``path`` may be a URL (``location``): then "a folder holding" means "objects under".
    """
    import zarr

    where = location(path)
    if isinstance(where, Path) and not where.is_dir():
        return False
    try:
        attrs = dict(zarr.open_group(store=str(where), mode="r").attrs)
    except Exception:  # zarr raises several types for "not a group"
        return False
    if attrs.get("format") == FORMAT:
        return True
    if isinstance(where, str):
        return not attrs and url_objects(where) == ["zarr.json"]
    return not attrs and [entry.name for entry in where.iterdir()] == ["zarr.json"]


def open_store(path: str | Path, *, require_complete: bool = True) -> Any:
    """Open a store (a folder or a URL: ``location``) read-only after checking its format
    and completeness.

    Raises:
        StoreError: not a skyclear store, another format version, or not complete.
    """
    import zarr

    path = location(path)
    if isinstance(path, str):
        try:  # what to install, rather than zarr's error
            url_filesystem(path)
        except ImportError as error:
            raise StoreError(str(error)) from error
    elif not path.exists():
        raise StoreError(f"{path}: no such store")
    try:
        group = zarr.open_group(store=str(path), mode="r")
    except Exception as error:  # zarr raises several types for "not a group"
        what = "no Zarr group could be read there" if isinstance(path, str) else "not a Zarr group"
        raise StoreError(f"{path}: {what} ({error})") from error
    found = group.attrs.get("format")
    if found != FORMAT:
        raise StoreError(f"{path}: format {found!r} is not {FORMAT!r}")
    if require_complete and group.attrs.get("complete") is not True:
        raise StoreError(
            f"{path}: the store is not complete (an interrupted make-cdd11?); run the same "
            "command again to finish it"
        )
    return group
