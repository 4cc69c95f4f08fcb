"""``CDD11Folder``: the original CDD-11 release layout (and make-cdd11's folder export)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image
from skyclear.degrade.names import TIERS
from torch import Tensor
from torch.utils.data import Dataset

from ._sample import Crop, Sample, _image, make_sample

__all__ = ["CDD11Folder"]

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
_VARIANT = re.compile(r"^(?P<stem>.+)_v\d+$")


def _variant(path: Path) -> int:
    match = _VARIANT.match(path.stem)
    return int(path.stem.rsplit("_v", 1)[1]) if match else 0


def _split_root(root: Path, split: str | None) -> Path:
    if (root / "clear").is_dir():
        return root
    if split is None:
        raise ValueError(f"{root} has no clear/ folder; name a split ('train' or 'test')")
    for name in (split, f"CDD-11_{split}"):
        if (root / name / "clear").is_dir():
            return root / name
    raise ValueError(
        f"{root}: found neither {split}/clear/ nor CDD-11_{split}/clear/ (the CDD-11 layout: "
        "SPLIT/clear/NAME.png with SPLIT/TIER/NAME.png for each tier)"
    )


def _read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


class CDD11Folder(Dataset[Sample]):
    """Samples from CDD-11's folder layout: ``SPLIT/clear/NAME`` and ``SPLIT/TIER/NAME``.

    Accepts ``ROOT/train``, ``ROOT/CDD-11_train`` (the release's names) or a ``ROOT`` that
    holds ``clear/`` itself. Each image under a tier folder is paired with the clean image
    of the same name (``NAME_vK`` variants pair with ``NAME``). Presence comes from the
    folder name. Masks come from ``SPLIT/masks/TIER/NAME.png`` (RGBA: low, haze, rain,
    snow) where make-cdd11 exported them; the original release has none, and its samples
    carry zero masks with ``has_masks`` false.

    Args:
        root: the dataset's folder.
        split: ``"train"``, ``"test"``, or ``None`` when ``root`` holds ``clear/``.
        crop: side of a square crop applied identically to every field, or ``None``.
        random_crop: random crops (training) or centre crops (evaluation).
        tiers: keep only these tiers (default: every tier folder present).
        uint8: yield pixels as uint8 codes (see ``as_float``), not float32.
    """

    def __init__(
        self,
        root: str | Path,
        split: str | None = "train",
        crop: int | None = None,
        random_crop: bool = True,
        tiers: tuple[str, ...] | None = None,
        uint8: bool = False,
    ) -> None:
        self.root = _split_root(Path(root), split)
        self.crop = Crop(crop, random_crop)
        self.uint8 = uint8
        wanted = TIERS if tiers is None else tiers
        unknown = [tier for tier in wanted if tier not in TIERS]
        if unknown:
            raise ValueError(f"unknown tiers {unknown}")
        self.items: list[tuple[Path, Path, Path | None, str]] = []
        for tier in wanted:
            folder = self.root / tier
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                if path.suffix.lower() not in _IMAGE_SUFFIXES:
                    continue
                clean = self._clean_for(path)
                mask = self.root / "masks" / tier / f"{path.stem}.png"
                self.items.append((path, clean, mask if mask.is_file() else None, tier))
        if not self.items:
            raise ValueError(f"{self.root}: no degraded images in any tier folder")
        # Photo-major, then tier, then variant number, as in a make-cdd11 store.
        self.items.sort(key=lambda item: (item[1].stem, TIERS.index(item[3]), _variant(item[0])))

    def _clean_for(self, path: Path) -> Path:
        clear = self.root / "clear"
        candidates = [clear / path.name]
        match = _VARIANT.match(path.stem)
        if match:
            candidates.append(clear / f"{match['stem']}{path.suffix}")
        candidates += [clear / f"{path.stem}{suffix}" for suffix in sorted(_IMAGE_SUFFIXES)]
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        raise ValueError(f"{path}: no clean image of the same name in {clear}")

    def __len__(self) -> int:
        return len(self.items)

    def photos(self) -> np.ndarray:
        """The clean photo of every item (its index among the clean images), int64."""
        numbers: dict[Path, int] = {}
        return np.array(
            [numbers.setdefault(clean, len(numbers)) for _, clean, _, _ in self.items],
            dtype=np.int64,
        )

    def clean_image(self, item: int) -> Tensor:
        """Item ``item``'s clean image alone, cropped as its sample's would be: what
        unpaired training takes of a clean-side item, without reading or making the rest."""
        clean = _read_rgb(self.items[item][1])
        rows, cols = self.crop.window(*clean.shape[:2])
        return _image(clean[rows, cols], self.uint8)

    def __getitem__(self, item: int) -> Sample:
        degraded_path, clean_path, mask_path, tier = self.items[item]
        degraded = _read_rgb(degraded_path)
        clean = _read_rgb(clean_path)
        if degraded.shape != clean.shape:
            raise ValueError(
                f"{degraded_path} is {degraded.shape[1]}x{degraded.shape[0]} but its clean "
                f"image {clean_path} is {clean.shape[1]}x{clean.shape[0]}"
            )
        rows, cols = self.crop.window(*degraded.shape[:2])
        masks = None
        if mask_path is not None:
            with Image.open(mask_path) as image:
                masks = np.moveaxis(np.asarray(image.convert("RGBA"), dtype=np.uint8), -1, 0)
            masks = masks[:, rows, cols]
        return make_sample(degraded[rows, cols], clean[rows, cols], masks, tier, self.uint8)
