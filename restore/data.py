"""What ``--data PATH`` means: the kind of data at a path, opened as a skyclear dataset.

* a ``.h5``/``.hdf5`` file: an HDF5 export of a make-cdd11 store (``CDD11H5``);
* a folder with ``zarr.json``: a make-cdd11 store (``CDD11Zarr``); so is a URL of an
  object store (``s3://bucket/data.zarr``: ``skyclear.degrade.location``);
* a folder with ``clear/``, ``train/``, ``test/`` or ``CDD-11_*/``: the CDD-11 folder
  layout, the original release included (``CDD11Folder``);
* any other folder: clean photos, degraded on the fly (``OnlineSynthesis``); its "test"
  split draws other degradations (another seed) with centre crops.
"""

from __future__ import annotations

from pathlib import Path

from skyclear.datasets import CDD11H5, CDD11Folder, CDD11Zarr, CleanCrops, OnlineSynthesis
from skyclear.datasets.partial import Removal
from skyclear.degrade.location import is_url
from skyclear.degrade.names import TIERS
from skyclear.degrade.seeding import entropy_seed
from torch.utils.data import Dataset

__all__ = ["DataKind", "data_kind", "open_clean_crops", "open_dataset"]

DataKind = str  # "hdf5" | "zarr" | "folder" | "photos"
_FOLDER_MARKERS = ("clear", "train", "test", "CDD-11_train", "CDD-11_test")
#: Photos are resized (short side) to this before synthesis, unless a crop needs more.
SYNTHESIS_SIZE = 256


def data_kind(path: str | Path) -> DataKind:
    """Which kind of data ``path`` holds (see the module docstring)."""
    if is_url(path):  # only a store is read from an object store
        return "zarr"
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() in (".h5", ".hdf5"):
            return "hdf5"
        raise ValueError(f"{path}: a file, but not an HDF5 export (.h5 or .hdf5)")
    if not path.is_dir():
        raise ValueError(f"{path}: no such file or folder")
    if (path / "zarr.json").is_file():
        return "zarr"
    if any((path / marker).is_dir() for marker in _FOLDER_MARKERS):
        return "folder"
    return "photos"


def open_dataset(
    path: str | Path,
    split: str,
    crop: int | None,
    random_crop: bool,
    tiers: tuple[str, ...] | None = None,
    seed: int = 0,
    uint8: bool = False,
    removal: Removal | None = None,
) -> Dataset:
    """The dataset at ``path`` (any kind), one split, with the given crop and tiers;
    ``uint8`` samples carry their pixels as uint8 codes (``datasets.as_float``); with a
    ``removal``, samples carry partial targets (``datasets.partial``: stores only).

    Raises:
        ValueError: a ``removal`` for data without recorded parameters.
    """
    kind = data_kind(path)
    if removal is not None and kind not in ("zarr", "hdf5"):
        raise ValueError(
            f"{path}: partial targets replay each sample's recorded parameters, which only "
            "a make-cdd11 store (or its HDF5 export) has"
        )
    if kind == "zarr":
        return CDD11Zarr(path, split, crop, random_crop, tiers, uint8=uint8, removal=removal)
    if kind == "hdf5":
        return CDD11H5(path, split, crop, random_crop, tiers, uint8=uint8, removal=removal)
    if kind == "folder":
        return CDD11Folder(path, split, crop, random_crop, tiers, uint8=uint8)
    size = max(SYNTHESIS_SIZE, crop or 0)
    split_seed = seed if split == "train" else entropy_seed(seed, 1)
    return OnlineSynthesis(
        path, size, crop, random_crop, tiers or TIERS, seed=split_seed, uint8=uint8
    )


def open_clean_crops(
    path: str | Path, crop: int, tiers: tuple[str, ...] | None = None, seed: int = 0
) -> CleanCrops:
    """The training split of the folder of clean photos at ``path`` as clean random crops
    with the tiers and seeds that degrade them (``datasets.CleanCrops``: degraded by
    ``datasets.degrade_batch`` where the batch goes), uint8 codes.

    Raises:
        ValueError: ``path`` holds other data than clean photos.
    """
    kind = data_kind(path)
    if kind != "photos":
        raise ValueError(
            f"{path}: synthesis on the device degrades a folder of clean photos, and this "
            f"is a {_KIND_NAMES[kind]}; train on it with data.synthesis=loader"
        )
    size = max(SYNTHESIS_SIZE, crop)
    return CleanCrops(path, size, crop, True, tiers or TIERS, seed=seed, uint8=True)


_KIND_NAMES = {
    "hdf5": "store's HDF5 export",
    "zarr": "make-cdd11 store",
    "folder": "CDD-11 folder of degraded and clean photos",
}
