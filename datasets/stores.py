"""``CDD11Zarr`` and ``CDD11H5``: the make-cdd11 store and its HDF5 export."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from skyclear.degrade.compose import parse_tier
from skyclear.degrade.io import from_numpy
from skyclear.degrade.location import location
from skyclear.degrade.presets import preset
from skyclear.degrade.store.chunks import SampleChunks
from skyclear.degrade.store.format import FORMAT, SPLITS, StoreError, open_store
from skyclear.degrade.store.writer import single_threaded
from torch import Tensor
from torch.utils.data import Dataset

from ._sample import Crop, Sample, _image, make_sample
from .partial import Removal, partial_target, record_params

__all__ = ["CDD11H5", "CDD11Zarr"]


class _StoreDataset(Dataset[Sample]):
    """Shared logic: split and tier selection, the crop, and opening lazily per process.

    The handle is opened on first access in each process and never pickled, so the
    dataset works with DataLoader workers under fork, spawn and forkserver alike.
    """

    def __init__(
        self,
        path: str | Path,
        split: str | None = "train",
        crop: int | None = None,
        random_crop: bool = True,
        tiers: tuple[str, ...] | None = None,
        clean_cache_mb: int = 256,
        uint8: bool = False,
        removal: Removal | None = None,
    ) -> None:
        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
        if clean_cache_mb < 0:
            raise ValueError(f"clean_cache_mb must be >= 0, got {clean_cache_mb}")
        self.path: Path | str = location(path)  # a str is a URL (stores only)
        self.crop = Crop(crop, random_crop)
        self.uint8 = uint8
        self._handle: Any = None
        self._opened_in = 0  # the process that opened ``_handle``
        self._group: Any = None
        # Every sample of a source shares its clean photo: keep decoded ones (per process).
        self._clean_budget = clean_cache_mb << 20
        self._clean_cache: dict[int, np.ndarray] = {}
        attrs, split_of, tier_of, source_of = self._read_index()
        self.removal = removal
        self._attrs = attrs
        self._composite: Any = None
        self.tiers: list[str] = list(attrs["tiers"])
        self.size = int(attrs["size"])
        if tiers is not None:
            unknown = sorted(set(tiers) - set(self.tiers))
            if unknown:
                raise ValueError(f"tiers {unknown} are not in {self.path} (it has {self.tiers})")
        keep = np.ones(len(split_of), dtype=bool)
        if split is not None:
            keep &= split_of == SPLITS.index(split)
        if tiers is not None:
            keep &= np.isin(tier_of, [self.tiers.index(t) for t in tiers])
        self.indices = np.flatnonzero(keep)
        self._tier_of = tier_of
        self._source_of = source_of

    def _read_index(self) -> tuple[dict[str, Any], Any, Any, Any]:
        raise NotImplementedError

    def _open(self) -> Any:
        raise NotImplementedError

    def _rows(self) -> Any:
        """The store's arrays by name (``params``, ``depth``), opened in this process."""
        raise NotImplementedError

    def _read(self, name: str, index: int, window: tuple[slice, ...]) -> np.ndarray:
        """``window`` of row ``index`` of array ``name`` (the handle is open)."""
        return np.asarray(self._handle[name][(index, *window)])

    def __len__(self) -> int:
        return len(self.indices)

    def photos(self) -> np.ndarray:
        """The clean photo (source) of every item, ``(len(self),)`` int64."""
        return np.asarray(self._source_of[self.indices], dtype=np.int64)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handle"] = None
        state["_group"] = None
        state["_clean_cache"] = {}
        return state

    def _ensure_open(self) -> None:
        """Open the store in this process: on first access, and again in a worker forked
        after its parent opened it. A forked worker inherits the parent's handle, whose
        connections and event loop (a store at a URL) or file (HDF5) it cannot share."""
        if self._handle is None or self._opened_in != os.getpid():
            self._handle = self._open()
            self._group = None
            self._opened_in = os.getpid()

    def _clean(self, source: int, rows: slice, cols: slice) -> np.ndarray:
        """The crop of a source's clean photo, decoded once per process while the cache's
        budget lasts (then read as a crop each time)."""
        cached = self._clean_cache.get(source)
        if cached is None:
            photo_bytes = self.size * self.size * 3
            if photo_bytes * (len(self._clean_cache) + 1) > self._clean_budget:
                return self._read("clean", source, (rows, cols))
            everything = slice(None)
            cached = self._clean_cache[source] = self._read("clean", source, (everything,))
        return cached[rows, cols]

    def clean_image(self, item: int) -> Tensor:
        """Item ``item``'s clean image alone, cropped as its sample's would be: what
        unpaired training takes of a clean-side item, without reading or making the rest."""
        self._ensure_open()
        source = int(self._source_of[int(self.indices[item])])
        rows, cols = self.crop.window(self.size, self.size)
        return _image(self._clean(source, rows, cols), self.uint8)

    def __getitem__(self, item: int) -> Sample:
        if not -len(self) <= item < len(self):
            raise IndexError(f"index {item} out of range for {len(self)} samples")
        self._ensure_open()
        m = int(self.indices[item])
        i = int(self._source_of[m])
        rows, cols = self.crop.window(self.size, self.size)
        tier = self.tiers[int(self._tier_of[m])]
        # A partial target replays the whole clean photo: read it once for both.
        everything = slice(None)
        whole = None if self.removal is None else self._clean(i, everything, everything)
        sample = make_sample(
            self._read("degraded", m, (rows, cols)),
            self._clean(i, rows, cols) if whole is None else whole[rows, cols],
            self._read("masks", m, (slice(None), rows, cols)),
            tier,
            self.uint8,
        )
        if whole is not None:
            self._add_target(sample, m, i, whole, tier, (rows, cols))
        return sample

    def _add_target(
        self,
        sample: Sample,
        m: int,
        source: int,
        photo: np.ndarray,
        tier: str,
        window: tuple[slice, slice],
    ) -> None:
        """``target`` and ``remove`` of sample row ``m`` of clean ``photo`` (whole),
        ``datasets.partial``."""
        present = parse_tier(tier)
        removed, vector = self.removal.choose(present)  # type: ignore[union-attr]
        sample["remove"] = vector
        if removed == set(present):
            sample["target"] = sample["clean"].clone()
            return
        if not removed:
            sample["target"] = sample["degraded"].clone()
            return
        if self._composite is None:
            attrs = self._attrs
            self._composite = preset(attrs.get("preset", "physical"),
                                     attrs.get("depth_prior", "flat"), attrs["order"])  # fmt: skip
        rows = self._rows()
        _, params, depth_source = record_params(rows["params"][m])
        clean = from_numpy(photo)
        depth = None
        if depth_source != "prior" and "depth" in rows:
            depth = torch.from_numpy(np.asarray(rows["depth"][source], np.float32))[None, None]
        with single_threaded():
            whole = partial_target(self._composite, clean, present, removed, params, depth)
        assert whole is not None  # something is kept
        sample["target"] = _image(whole[window], self.uint8)


class CDD11Zarr(_StoreDataset):
    """Samples of a complete make-cdd11 Zarr store.

    Args:
        path: the store: a folder, or a URL that fsspec opens (``s3://bucket/data.zarr``
            with ``skyclear[s3]``; credentials from the filesystem's usual configuration).
        split: ``"train"``, ``"test"`` or ``None`` for both.
        crop: side of a square crop applied identically to every field, or ``None``.
        random_crop: random crops (training) or centre crops (evaluation).
        tiers: keep only these tiers (default: all in the store).
        clean_cache_mb: memory per process for decoded clean photos, which every sample
            of a source shares (0: read each crop from the store).
        uint8: yield pixels as uint8 codes (see ``as_float``), not float32.

    Example:
        >>> data = CDD11Zarr("data.zarr", split="train", crop=256)
        >>> loader = torch.utils.data.DataLoader(data, batch_size=8, num_workers=2)
    """

    def _read_index(self) -> tuple[dict[str, Any], Any, Any, Any]:
        group = open_store(self.path)
        return dict(group.attrs), group["split"][:], group["tier"][:], group["source"][:]

    def _open(self) -> Any:
        group = open_store(self.path)
        return {name: SampleChunks(group[name]) for name in ("degraded", "clean", "masks")}

    def _rows(self) -> Any:
        if self._group is None:
            self._group = open_store(self.path)
        return self._group

    def _read(self, name: str, index: int, window: tuple[slice, ...]) -> np.ndarray:
        # A crop decodes its whole chunk anyway: read the chunk file directly, without
        # zarr's per-call machinery (half the cost of a sample).
        return self._handle[name].read(index)[window]


class CDD11H5(_StoreDataset):
    """Samples of an HDF5 export of a make-cdd11 store (same arguments as ``CDD11Zarr``)."""

    def _read_index(self) -> tuple[dict[str, Any], Any, Any, Any]:
        import h5py

        if not isinstance(self.path, Path):
            raise StoreError(f"{self.path}: an HDF5 export is read from a local file")
        if not self.path.is_file():
            raise StoreError(f"{self.path}: no such file")
        with h5py.File(self.path, "r") as h5:
            attrs = {key: _decode_attr(key, value) for key, value in h5.attrs.items()}
            if attrs.get("format") != FORMAT:
                raise StoreError(f"{self.path}: format {attrs.get('format')!r} is not {FORMAT!r}")
            if attrs.get("complete") is not True:
                raise StoreError(f"{self.path}: the export is not complete")
            return attrs, h5["split"][:], h5["tier"][:], h5["source"][:]

    def _open(self) -> Any:
        import h5py

        h5 = h5py.File(self.path, "r")
        return {name: h5[name] for name in ("degraded", "clean", "masks")} | {"file": h5}

    def _rows(self) -> Any:
        return self._handle["file"]


def _decode_attr(key: str, value: Any) -> Any:
    if key in ("tiers", "degradations", "sources", "skipped"):
        return json.loads(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value
