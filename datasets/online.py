"""``OnlineSynthesis``: clean photos degraded on the fly, masks included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from skyclear.degrade.compose import Composite
from skyclear.degrade.depth_model import DepthModel
from skyclear.degrade.io import from_numpy
from skyclear.degrade.names import TIERS
from skyclear.degrade.seeding import entropy_seed
from skyclear.degrade.store.ingest import (
    Skipped,
    find_sources,
    fit_photo,
    read_source,
    source_depth,
)
from skyclear.degrade.store.writer import hwc_uint8, single_threaded, to_uint8
from torch import Tensor
from torch.utils.data import Dataset

from ._sample import Crop, Sample, _image, make_sample

__all__ = ["OnlineSynthesis"]


class OnlineSynthesis(Dataset[Sample]):
    """Degrade clean photos on the fly into the CDD-11 tiers.

    Item ``k`` is photo ``(k // T) % N`` in tier ``k % T`` (``T`` tiers, ``N`` photos),
    repeated ``repeats`` times. Its randomness comes from a generator seeded by
    ``(seed, epoch, photo, tier, k)`` and it is computed on one thread: the same item gives
    the same sample in any worker and any process, different items and epochs give
    different ones, and no two DataLoader workers repeat each other. Call ``set_epoch`` to
    draw anew each epoch (with ``persistent_workers=True`` the workers keep the epoch they
    started with: recreate the loader instead). A random crop comes from torch's RNG,
    which the DataLoader seeds per worker from ``torch.manual_seed``.

    Args:
        src: folder of clean photos (walked recursively like make-cdd11's ``--src``).
        size: photos are resized (short side) and centre-cropped to ``size``.
        crop: a square crop of the result (random or centred), or ``None``.
        random_crop: random crops (training) or centre crops.
        tiers: the tiers to draw (default all 11).
        composite: the operators and order (default ``Composite()``).
        seed: base seed.
        repeats: passes over (photo, tier) pairs per epoch.
        depth_dir: optional depth maps matched by stem, as make-cdd11's ``--depth``; a
            photo without one takes its depth from ``depth_model``, else haze uses the
            composite's depth prior.
        depth_model: optional ``skyclear.degrade.depth_model.DepthModel`` (a local
            transformers model), as make-cdd11's ``--depth-model``; loaded once per
            worker process.
        uint8: yield pixels as uint8 codes (see ``as_float``), not float32.
    """

    def __init__(
        self,
        src: str | Path,
        size: int = 256,
        crop: int | None = None,
        random_crop: bool = True,
        tiers: tuple[str, ...] = TIERS,
        composite: Composite | None = None,
        seed: int = 0,
        repeats: int = 1,
        depth_dir: str | Path | None = None,
        uint8: bool = False,
        depth_model: DepthModel | None = None,
    ) -> None:
        unknown = [tier for tier in tiers if tier not in TIERS]
        if unknown or not tiers:
            raise ValueError(f"tiers must be a non-empty subset of {TIERS}, got {tiers}")
        if repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {repeats}")
        self.src = Path(src)
        self.size = size
        self.crop = Crop(crop, random_crop)
        self.uint8 = uint8
        self.tiers = tuple(tiers)
        self.composite = composite or Composite()
        self.seed = seed
        self.repeats = repeats
        self.depth_dir = None if depth_dir is None else Path(depth_dir)
        self.depth_model = depth_model
        # The depth of the photo drawn last (items run through a photo's tiers in turn),
        # so a depth model runs once per photo and pass rather than once per item.
        self._depth: tuple[int, np.ndarray | None] | None = None
        self.epoch = 0
        self.sources, self.skipped = find_sources(self.src, size)
        if not self.sources:
            raise ValueError(f"no usable photo in {self.src} ({len(self.skipped)} files skipped)")

    @property
    def skipped_files(self) -> list[Skipped]:
        """Files under ``src`` that are not usable photos, with reasons."""
        return self.skipped

    def set_epoch(self, epoch: int) -> None:
        """Draw new degradations (a DistributedSampler-style epoch hook)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.sources) * len(self.tiers) * self.repeats

    def photos(self) -> np.ndarray:
        """The photo of every item (its index in ``sources``), int64."""
        items = np.arange(len(self), dtype=np.int64)
        return (items // len(self.tiers)) % len(self.sources)

    def clean_image(self, item: int) -> Tensor:
        """Item ``item``'s clean image alone, cropped as its sample's would be: what
        unpaired training takes of a clean-side item, without reading or making the rest."""
        source = ((item % len(self)) // len(self.tiers)) % len(self.sources)
        photo = read_source(self.src / self.sources[source], self.size)
        clean = fit_photo(photo, self.size)
        rows, cols = self.crop.window(self.size, self.size)
        return _image(clean[rows, cols], self.uint8)

    def __getitem__(self, item: int) -> Sample:
        if not -len(self) <= item < len(self):
            raise IndexError(f"index {item} out of range for {len(self)} samples")
        item %= len(self)
        tier = self.tiers[item % len(self.tiers)]
        source = (item // len(self.tiers)) % len(self.sources)
        relative = self.sources[source]
        photo = read_source(self.src / relative, self.size)
        clean = fit_photo(photo, self.size)
        seed = entropy_seed(self.seed, self.epoch, source, TIERS.index(tier), item)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad(), single_threaded():
            if self._depth is None or self._depth[0] != source:
                fitted, _ = source_depth(
                    relative, clean, photo.shape[:2], self.depth_dir, self.depth_model
                )
                self._depth = (source, fitted)
            fitted = self._depth[1]
            depth = None
            if fitted is not None:
                depth = torch.from_numpy(fitted).view(1, 1, self.size, self.size)
            result = self.composite(from_numpy(clean), tier, generator, depth)
        degraded = hwc_uint8(result.image[0])
        masks = to_uint8(result.masks[0])
        rows, cols = self.crop.window(self.size, self.size)
        return make_sample(
            np.asarray(degraded[rows, cols]),
            clean[rows, cols],
            masks[:, rows, cols],
            tier,
            self.uint8,
        )
