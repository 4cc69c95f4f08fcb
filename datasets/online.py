"""Clean photos degraded on the fly, masks included: one sample at a time in the loader
(``OnlineSynthesis``), or a batch at a time where the batch goes, a GPU say
(``CleanCrops`` in the loader, ``degrade_batch`` on the device).
"""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

import numpy as np
import torch
from skyclear.degrade.compose import Composite
from skyclear.degrade.depth_model import DepthModel
from skyclear.degrade.io import from_numpy
from skyclear.degrade.names import TIERS
from skyclear.degrade.seeding import entropy_seed
from skyclear.degrade.store.format import presence_of
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

__all__ = ["CleanCrop", "CleanCrops", "OnlineSynthesis", "degrade_batch"]


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
        clean_cache_mb: keep photos resized and cropped to ``size`` in memory, up to this
            many MiB per process (0: read and resize a photo for each item).
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
        clean_cache_mb: int = 256,
    ) -> None:
        unknown = [tier for tier in tiers if tier not in TIERS]
        if unknown or not tiers:
            raise ValueError(f"tiers must be a non-empty subset of {TIERS}, got {tiers}")
        if repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {repeats}")
        if clean_cache_mb < 0:
            raise ValueError(f"clean_cache_mb must be >= 0, got {clean_cache_mb}")
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
        # Every item of a photo starts from it resized: kept (per process) while the budget
        # lasts, as the stores keep their clean photos.
        self._clean_budget = clean_cache_mb << 20
        self._clean_cache: dict[int, tuple[np.ndarray, tuple[int, int]]] = {}

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        state["_clean_cache"] = {}  # each process fills its own
        return state

    def _fitted(self, source: int) -> tuple[np.ndarray, tuple[int, int]]:
        """Photo ``source`` resized and centre-cropped to ``size`` (read-only) and the
        photo's own height and width, decoded once per process while the budget lasts."""
        cached = self._clean_cache.get(source)
        if cached is not None:
            return cached
        photo = read_source(self.src / self.sources[source], self.size)
        clean = fit_photo(photo, self.size)
        clean.flags.writeable = False
        fitted = (clean, (photo.shape[0], photo.shape[1]))
        if clean.nbytes * (len(self._clean_cache) + 1) <= self._clean_budget:
            self._clean_cache[source] = fitted
        return fitted

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
        clean, _ = self._fitted(source)
        rows, cols = self.crop.window(self.size, self.size)
        return _image(clean[rows, cols], self.uint8)

    def _locate(self, item: int) -> tuple[int, str, int, int]:
        """``(item, tier, photo, seed)`` of an item (negative ones counted from the end):
        its tier, the index of its photo in ``sources`` and the seed of its degradation."""
        if not -len(self) <= item < len(self):
            raise IndexError(f"index {item} out of range for {len(self)} samples")
        item %= len(self)
        tier = self.tiers[item % len(self.tiers)]
        source = (item // len(self.tiers)) % len(self.sources)
        seed = entropy_seed(self.seed, self.epoch, source, TIERS.index(tier), item)
        return item, tier, source, seed

    def __getitem__(self, item: int) -> Sample:
        item, tier, source, seed = self._locate(item)
        relative = self.sources[source]
        clean, photo_shape = self._fitted(source)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad(), single_threaded():
            if self._depth is None or self._depth[0] != source:
                fitted, _ = source_depth(
                    relative, clean, photo_shape, self.depth_dir, self.depth_model
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


class CleanCrop(TypedDict):
    """A ``CleanCrops`` item: ``clean`` ``(3, h, w)`` (uint8 codes with ``uint8=True``),
    ``tier`` (int64, its index in ``TIERS``) and ``seed`` (int64) of its degradation."""

    clean: Tensor
    tier: Tensor
    seed: Tensor


class CleanCrops(OnlineSynthesis):
    """``OnlineSynthesis``'s items left clean: each is its photo's crop with the tier and
    the seed that degrade it, and ``degrade_batch`` degrades a batch of them at once where
    the batch goes (on the GPU inside the training step, say), not in the loader.

    Items, epochs and seeds are ``OnlineSynthesis``'s (the same arguments, ``depth_dir``
    and ``depth_model`` aside: haze takes the composite's depth prior), but the crop is
    degraded, not the whole photo: the haze prior's depth and the particle fields are
    those of the crop, so a sample is not ``OnlineSynthesis``'s item cropped.
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
        uint8: bool = False,
        clean_cache_mb: int = 256,
    ) -> None:
        super().__init__(src, size, crop, random_crop, tiers, composite, seed, repeats,
                         uint8=uint8, clean_cache_mb=clean_cache_mb)  # fmt: skip

    def __getitem__(self, item: int) -> CleanCrop:  # type: ignore[override]
        item, tier, source, seed = self._locate(item)
        clean, _ = self._fitted(source)
        rows, cols = self.crop.window(self.size, self.size)
        return CleanCrop(
            clean=_image(clean[rows, cols], self.uint8),
            tier=torch.tensor(TIERS.index(tier), dtype=torch.int64),
            seed=torch.tensor(seed, dtype=torch.int64),
        )


_PRESENCE = torch.from_numpy(np.stack([presence_of(tier) for tier in TIERS]))


def degrade_batch(
    batch: dict[str, Tensor], composite: Composite | None = None, codes: bool = True
) -> dict[str, Tensor]:
    """Degrade a batch of ``CleanCrops`` items into their tiers, on the batch's device, in
    one ``Composite.apply_mixed`` call; each sample's parameters come from its own seed
    (``Composite.sample_each``), so a sample is the same in any batch and on any device
    (to float rounding).

    Args:
        batch: ``clean`` ``(B, 3, h, w)`` (uint8 codes or floats in [0, 1]), ``tier`` and
            ``seed`` ``(B,)``, as a DataLoader collates ``CleanCrops`` items; ``clean`` on
            the device to degrade on, ``tier`` and ``seed`` best left on the CPU.
        composite: the operators and order (default ``Composite()``; the dataset's own is
            its ``composite``).
        codes: round ``degraded`` and ``masks`` to 8-bit codes, as a store or a loader
            holds them, so that the network sees what it would see from stored data.

    Returns:
        A batch of the sample contract (float32, on the batch's device): ``degraded``,
        ``clean``, ``masks``, ``tier``, ``presence`` and ``has_masks``.
    """
    composite = composite or Composite()
    clean = batch["clean"]
    clean = clean.float().div_(255.0) if clean.dtype == torch.uint8 else clean.float()
    device = clean.device
    tier_codes = batch["tier"].cpu()  # (kept on the CPU by a caller, as training does)
    tier_index = tier_codes.to(device, non_blocking=True)
    tiers = [TIERS[i] for i in tier_codes.tolist()]
    params = composite.sample_each(tiers, batch["seed"].cpu().tolist())  # on the CPU
    with torch.no_grad():
        result = composite.apply_mixed(clean, tiers, params)
    degraded, masks = result.image, result.masks
    if codes:
        degraded = degraded.mul_(255.0).round_().div_(255.0)
        masks = masks.clamp_(0.0, 1.0).mul_(255.0).round_().div_(255.0)
    return {
        "degraded": degraded,
        "clean": clean,
        "masks": masks,
        "tier": tier_index,
        "presence": _PRESENCE[tier_codes].to(device, non_blocking=True),
        "has_masks": torch.ones(len(tiers), dtype=torch.bool, device=device),
    }
