"""A complete store, exported as HDF5 (the same arrays) or as CDD-11's folder layout."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..io import write_image
from .format import SPLITS, open_store

__all__ = ["export_folder", "export_hdf5", "sample_name"]

Progress = Callable[[int], None]

#: Attributes that are lists of records or of strings, stored as JSON text in HDF5.
_JSON_ATTRS = ("tiers", "degradations", "sources", "skipped")


def export_hdf5(store: str | Path, out: str | Path, progress: Progress | None = None) -> Path:
    """Write every array of a complete store to one HDF5 file with the same layout.

    Chunks are the store's; compression is gzip (HDF5's built-in codec); string arrays
    are UTF-8 variable-length; list attributes are JSON text; each dataset has a
    ``dimension_names`` attribute. ``complete`` is set last.
    """
    import h5py

    group = open_store(store)
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    with h5py.File(partial, "w") as h5:
        for key, value in group.attrs.items():
            if key == "complete":
                continue
            h5.attrs[key] = json.dumps(value) if key in _JSON_ATTRS else value
        for name in sorted(group.array_keys()):
            array = group[name]
            if name == "params":
                dataset = h5.create_dataset(
                    name, shape=array.shape, dtype=h5py.string_dtype("utf-8"), chunks=array.chunks
                )
                dataset[:] = np.asarray(array[:], dtype=object)
            else:
                dataset = h5.create_dataset(
                    name,
                    shape=array.shape,
                    dtype=array.dtype,
                    chunks=array.chunks,
                    compression="gzip",
                    compression_opts=4,
                )
                for start in range(0, array.shape[0], array.chunks[0]):
                    dataset[start : start + array.chunks[0]] = array[
                        start : start + array.chunks[0]
                    ]
                    if progress and name == "degraded":
                        progress(min(array.chunks[0], array.shape[0] - start))
            dataset.attrs["dimension_names"] = json.dumps(list(array.metadata.dimension_names))
        h5.attrs["complete"] = True
    partial.replace(out)
    return out


def sample_name(source: str, variant: int, variants: int) -> str:
    """File name of a sample in the folder layout: the source's path, flattened."""
    stem = Path(source).with_suffix("").as_posix().replace("/", "__")
    return f"{stem}.png" if variants == 1 else f"{stem}_v{variant}.png"


def export_folder(store: str | Path, out: str | Path, progress: Progress | None = None) -> Path:
    """Write a complete store in CDD-11's layout, plus the masks.

    ``SPLIT/clear/NAME.png`` (the clean photo), ``SPLIT/TIER/NAME.png`` (degraded) and
    ``SPLIT/masks/TIER/NAME.png``: an RGBA PNG whose channels are the low, haze, rain and
    snow masks (``round(255 * intensity)``). ``NAME`` is the source's relative path with
    ``/`` as ``__``, and ``_vK`` for variant ``K`` when there are several.
    """
    group = open_store(store)
    out = Path(out)
    attrs: dict[str, Any] = dict(group.attrs)
    tiers, sources, variants = attrs["tiers"], attrs["sources"], int(attrs["variants"])
    source_of, tier_of, split_of = group["source"][:], group["tier"][:], group["split"][:]
    written_clean: set[int] = set()
    for m in range(group["degraded"].shape[0]):
        i, tier, split = int(source_of[m]), tiers[int(tier_of[m])], SPLITS[int(split_of[m])]
        variant = m % variants
        if i not in written_clean:
            write_image(out / split / "clear" / sample_name(sources[i], 0, 1), group["clean"][i])
            written_clean.add(i)
        name = sample_name(sources[i], variant, variants)
        write_image(out / split / tier / name, group["degraded"][m])
        write_image(out / split / "masks" / tier / name, np.moveaxis(group["masks"][m], 0, -1))
        if progress:
            progress(1)
    return out
