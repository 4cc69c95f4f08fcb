"""Unpaired training data: degraded images and clean images that never show the same photo.

* ``DegradedPhotos``: a folder of real degraded photos with no clean counterpart (their
  ``tier`` is -1, unknown; no masks, no presence).
* ``Unpaired``: a degraded side and a clean side. From one paired dataset
  (``Unpaired.split``) the photos are split in two by a seeded draw, and the degraded
  side keeps the samples of one half, the clean side the clean images of the other; from
  two datasets (``Unpaired.between``) every item of each. Each degraded sample is given
  the clean image (``clean_image``: nothing else of that item is read or made) of a
  clean-side item drawn from torch's RNG (seeded per DataLoader
  worker); its masks, tier and presence stay its own. Every sample carries ``photo`` and
  ``clean_photo``, the photos its two images come from (a degraded photo of its own
  folder is numbered ``-1 - index``), so a batch can be checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ._sample import Crop, _image
from .folder import _IMAGE_SUFFIXES, _read_rgb

__all__ = ["DegradedPhotos", "Unpaired"]


class DegradedPhotos(Dataset[dict[str, Tensor]]):
    """Real degraded photos under ``root`` (any depth, sorted), cropped like every
    dataset; ``clean`` is zeros (there is none), ``tier`` -1, ``has_masks`` false.

    Args:
        root: the folder of photos.
        crop: side of a square crop, or ``None``.
        random_crop: random crops (training) or centre crops.
        uint8: yield pixels as uint8 codes (see ``as_float``), not float32.
    """

    def __init__(
        self, root: str | Path, crop: int | None = None, random_crop: bool = True,
        uint8: bool = False,
    ) -> None:  # fmt: skip
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(f"{self.root}: no such folder of degraded photos")
        self.paths = sorted(
            path for path in self.root.rglob("*")
            if path.is_file() and path.suffix.lower() in _IMAGE_SUFFIXES
        )  # fmt: skip
        if not self.paths:
            raise ValueError(f"{self.root}: no photos (looked for {sorted(_IMAGE_SUFFIXES)})")
        self.crop = Crop(crop, random_crop)
        self.uint8 = uint8

    def __len__(self) -> int:
        return len(self.paths)

    def photos(self) -> np.ndarray:
        return -1 - np.arange(len(self), dtype=np.int64)

    def __getitem__(self, item: int) -> dict[str, Tensor]:
        path = self.paths[item]
        pixels = _read_rgb(path)
        try:
            rows, cols = self.crop.window(*pixels.shape[:2])
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from error
        degraded = _image(pixels[rows, cols], self.uint8)
        height, width = degraded.shape[-2:]
        return {
            "degraded": degraded,
            "clean": torch.zeros_like(degraded),
            "masks": torch.zeros(4, height, width, dtype=degraded.dtype),
            "tier": torch.tensor(-1, dtype=torch.int64),
            "presence": torch.zeros(4, dtype=torch.float32),
            "has_masks": torch.tensor(False),
        }


class Unpaired(Dataset[dict[str, Tensor]]):
    """Degraded samples of ``degraded[degraded_items]`` with clean images of
    ``clean[clean_items]`` (see the module docstring; build it with ``split`` or
    ``between``)."""

    def __init__(
        self,
        degraded: Any,
        degraded_items: np.ndarray,
        clean: Any,
        clean_items: np.ndarray,
    ) -> None:
        if not len(degraded_items) or not len(clean_items):
            raise ValueError("unpaired data needs degraded and clean images on both sides")
        self.degraded, self.clean = degraded, clean
        self.degraded_items = np.asarray(degraded_items, dtype=np.int64)
        self.clean_items = np.asarray(clean_items, dtype=np.int64)
        self._degraded_photos = degraded.photos()
        self._clean_photos = clean.photos()

    @classmethod
    def split(cls, dataset: Any, seed: int = 0) -> Unpaired:
        """One paired dataset's photos split in two halves (a seeded draw): degraded
        samples from one, clean images from the other."""
        photos = dataset.photos()
        unique = np.unique(photos)
        if len(unique) < 2:
            raise ValueError(
                f"unpaired training needs at least two photos in the data, found {len(unique)}"
            )
        order = np.random.default_rng(seed).permutation(unique)
        clean_side = order[: len(order) // 2]
        on_clean_side = np.isin(photos, clean_side)
        items = np.arange(len(photos))
        return cls(dataset, items[~on_clean_side], dataset, items[on_clean_side])

    @classmethod
    def between(cls, degraded: Any, clean: Any) -> Unpaired:
        """Every item of ``degraded`` with clean images from every item of ``clean``."""
        return cls(degraded, np.arange(len(degraded)), clean, np.arange(len(clean)))

    def __len__(self) -> int:
        return len(self.degraded_items)

    def photos(self) -> np.ndarray:
        return self._degraded_photos[self.degraded_items]

    def set_epoch(self, epoch: int) -> None:
        for side in (self.degraded, self.clean):
            if hasattr(side, "set_epoch"):
                side.set_epoch(epoch)

    def __getitem__(self, item: int) -> dict[str, Tensor]:
        index = int(self.degraded_items[item])
        sample = dict(self.degraded[index])
        other = int(self.clean_items[int(torch.randint(len(self.clean_items), ()))])
        sample["clean"] = self.clean.clean_image(other)
        sample["photo"] = torch.tensor(int(self._degraded_photos[index]))
        sample["clean_photo"] = torch.tensor(int(self._clean_photos[other]))
        return sample
