"""A complete store, exported as HDF5 (the same arrays) or as CDD-11's folder layout.

Both carry the store's ``format``, so that skyclear knows them for its own: the HDF5 file
as a root attribute, the folder in a small ``skyclear.json`` at its root. An export only
ever replaces such an earlier export (or an empty folder), never anything else.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..io import write_image
from ..location import location
from ..outputs import OutputError, check_output
from .format import FORMAT, SPLITS, StoreError, open_store

__all__ = [
    "FOLDER_MARKER",
    "check_export_path",
    "export_folder",
    "export_hdf5",
    "is_export",
    "photo_names",
    "remove_export",
    "sample_name",
]

#: The file at the root of a folder export that says skyclear wrote it.
FOLDER_MARKER = "skyclear.json"

Progress = Callable[[int], None]

#: Attributes that are lists of records or of strings, stored as JSON text in HDF5.
_JSON_ATTRS = ("tiers", "degradations", "sources", "skipped")


def is_export(path: str | Path) -> bool:
    """True if ``path`` is an export skyclear wrote, complete or not: an HDF5 file whose
    ``format`` attribute is the store format, or a folder with ``FOLDER_MARKER`` saying so."""
    path = Path(path)
    if path.is_dir():
        try:
            marker = json.loads((path / FOLDER_MARKER).read_text())
        except (OSError, ValueError):
            return False
        return isinstance(marker, dict) and marker.get("format") == FORMAT
    import h5py

    try:
        if not h5py.is_hdf5(path):
            return False
        with h5py.File(path, "r") as h5:
            return bool(h5.attrs.get("format") == FORMAT)
    except (OSError, ValueError):
        return False


def check_export_path(out: str | Path, inputs: Iterable[Path | str | None] = ()) -> None:
    """Refuse an export path that is, holds or lies inside one of ``inputs`` (through
    symlinks too), or that holds anything but an earlier export or an empty folder.

    Raises:
        StoreError: the reason; nothing has been touched.
    """
    try:
        check_output(Path(out), inputs=inputs, is_ours=is_export, kind="a skyclear export")
    except OutputError as error:
        raise StoreError(str(error)) from error


def remove_export(out: str | Path, inputs: Iterable[Path | None] = ()) -> None:
    """Remove an earlier export at ``out`` (a symlink: only the link) to make way for a new
    one; anything ``check_export_path`` refuses is refused, and kept."""
    out = Path(out)
    check_export_path(out, inputs)
    if out.is_dir() and not out.is_symlink():
        shutil.rmtree(out)
    elif out.exists() or out.is_symlink():
        out.unlink()


def export_hdf5(store: str | Path, out: str | Path, progress: Progress | None = None) -> Path:
    """Write every array of a complete store to one HDF5 file with the same layout.

    Chunks are the store's; numeric arrays are gzip-compressed (HDF5's built-in codec);
    ``params`` is UTF-8 variable-length text, which HDF5 filters cannot compress; list
    attributes are JSON text; each dataset has a ``dimension_names`` attribute. ``format``
    is set first (a file cut short is still known for skyclear's), ``complete`` last. The
    file is written as ``OUT.partial`` and renamed.

    Raises:
        StoreError: the store is not complete, or ``out`` (or ``OUT.partial``) is refused
            by ``check_export_path``.
    """
    import h5py

    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    for path in (out, partial):
        check_export_path(path, [location(store)])
    if out.is_dir():
        raise StoreError(f"{out} is a folder; an HDF5 export is a file")
    group = open_store(store)
    with h5py.File(partial, "w") as h5:
        h5.attrs["format"] = group.attrs["format"]
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


def photo_names(sources: list[str]) -> list[str]:
    """A distinct file stem per source: its relative path without extension, ``/`` as
    ``__``; stems that would clash (``a/b.png`` and ``a__b.jpg``) get ``__N`` (the source's
    index) appended."""
    stems = [Path(source).with_suffix("").as_posix().replace("/", "__") for source in sources]
    counts: dict[str, int] = {}
    for stem in stems:
        counts[stem] = counts.get(stem, 0) + 1
    names: list[str] = []
    taken = {stem for stem in stems if counts[stem] == 1}
    for i, stem in enumerate(stems):
        name = stem
        if counts[stem] > 1:
            name = f"{stem}__{i}"
            while name in taken:  # a suffixed name may meet a real stem: suffix again
                name = f"{name}__{i}"
        taken.add(name)
        names.append(name)
    return names


def sample_name(stem: str, variant: int, variants: int) -> str:
    """File name of a sample: ``STEM.png``, or ``STEM_vK.png`` when there are variants."""
    return f"{stem}.png" if variants == 1 else f"{stem}_v{variant}.png"


def export_folder(store: str | Path, out: str | Path, progress: Progress | None = None) -> Path:
    """Write a complete store in CDD-11's layout, plus the masks.

    ``SPLIT/clear/NAME.png`` (the clean photo), ``SPLIT/TIER/NAME.png`` (degraded) and
    ``SPLIT/masks/TIER/NAME.png``: an RGBA PNG whose channels are the low, haze, rain and
    snow masks (``round(255 * intensity)``). ``NAME`` is the source's stem from
    ``photo_names``, with ``_vK`` for variant ``K`` when there are several. ``skyclear.json``
    (``FOLDER_MARKER``), written first, holds the store's ``format``.

    Raises:
        StoreError: the store is not complete, or ``out`` is refused by
            ``check_export_path``.
    """
    out = Path(out)
    check_export_path(out, [location(store)])
    group = open_store(store)
    attrs: dict[str, Any] = dict(group.attrs)
    out.mkdir(parents=True, exist_ok=True)
    marker = {"format": attrs["format"], "layout": "folder"}
    (out / FOLDER_MARKER).write_text(json.dumps(marker) + "\n")
    tiers, variants = attrs["tiers"], int(attrs["variants"])
    stems = photo_names(list(attrs["sources"]))
    source_of, tier_of, split_of = group["source"][:], group["tier"][:], group["split"][:]
    written_clean: set[int] = set()
    for m in range(group["degraded"].shape[0]):
        i, tier, split = int(source_of[m]), tiers[int(tier_of[m])], SPLITS[int(split_of[m])]
        variant = m % variants
        if i not in written_clean:
            write_image(out / split / "clear" / sample_name(stems[i], 0, 1), group["clean"][i])
            written_clean.add(i)
        name = sample_name(stems[i], variant, variants)
        write_image(out / split / tier / name, group["degraded"][m])
        write_image(out / split / "masks" / tier / name, np.moveaxis(group["masks"][m], 0, -1))
        if progress:
            progress(1)
    return out
