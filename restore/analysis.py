"""What a restorer sees in a photo: the parser's maps, its global weights, how much of the
frame each degradation covers, and whether the photo is unlike the training data.

``Restorer.inspect`` runs one network evaluation (the first of the method's sampler) on the
photo seen at most ``context_side`` pixels a side. From it:

* **maps** ``(4, h, w)``: the parser's per-pixel maps of low light, haze, rain and snow;
* **weights** ``(4,)``: the parser's global weights (its presence estimate);
* **coverage** ``(4,)``: the share of the frame where a map reaches ``COVERAGE_LEVEL``;
* **features**: every image-level mean the network takes in that pass (each NAF block's
  channel-attention mean, the parser's normalisation and pooled maps), as one vector.

**Unusual photos.** The features are standardised by their per-dimension mean and
standard deviation over training images, ``z = (f - mu) / sigma``; the score is the mean
distance from a photo's ``z`` to its ``NEIGHBOURS`` (5) nearest training images, divided by
``sqrt(D)`` (per-dimension units). ``calibrate`` keeps those training ``z`` (up to a few
hundred images), scores the held-out split and puts the threshold at its ``quantile``
(0.95 by default): a photo scoring above it is flagged ``unusual``, so that about 5 % of
held-out images of the training distribution are. A nearest-neighbour distance, not a
distance to the mean: photos with little going on (grey, text) sit near the training
mean while no training image lies near them, and the distance to the mean scored them as
the most typical of all (docs/science.md). A flag says that the network meets
statistics it was not trained on; the restoration may still be good, and a photo under
the threshold may still be restored badly.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image
from skyclear.degrade.names import DEGRADATIONS
from torch import Tensor

from .inference import Restorer
from .visual import coloured_maps, image_grid, maps_strip

__all__ = [
    "ANALYSIS_FILE",
    "CALIBRATION_FORMAT",
    "COVERAGE_LEVEL",
    "NEIGHBOURS",
    "Analysis",
    "Calibration",
    "analyse",
    "calibrate",
    "contact_sheet",
    "save_maps",
    "sheet_row",
    "spread",
]

#: A map counts a pixel as covered by its degradation from this value on.
COVERAGE_LEVEL = 0.5
ANALYSIS_FILE = "analysis.jsonl"
CALIBRATION_FORMAT = "skyclear-ood-calibration-1"
_SCALE_FLOOR = 1e-4  # a feature constant over the training images still has a scale
#: Training images a score averages the distance to.
NEIGHBOURS = 5
_THUMBNAIL = 160  # pixels, the longer side of a contact sheet's tiles


@dataclass(frozen=True)
class Analysis:
    """One photo as the restorer sees it (see the module docstring)."""

    name: str
    width: int
    height: int
    maps: Tensor
    weights: Tensor
    coverage: Tensor
    score: float | None = None
    unusual: bool | None = None

    def record(self, maps_file: str | None = None) -> dict[str, Any]:
        """The JSON line of this photo."""
        return {
            "photo": self.name,
            "width": self.width,
            "height": self.height,
            "weights": _named(self.weights),
            "coverage": _named(self.coverage),
            "ood_score": None if self.score is None else round(self.score, 4),
            "unusual": self.unusual,
            "maps": maps_file,
        }


def _named(values: Tensor) -> dict[str, float]:
    return {name: round(float(v), 4) for name, v in zip(DEGRADATIONS, values, strict=True)}


@dataclass(frozen=True)
class Calibration:
    """The training split's feature statistics and the held-out threshold of one
    checkpoint's weights (``checkpoint``: its digest, with ``:ema`` or ``:model``)."""

    checkpoint: str
    mean: list[float]
    scale: list[float]
    reference: list[list[float]]
    quantile: float
    threshold: float
    train_images: int
    held_out_images: int
    held_out_scores: dict[str, float]

    def standardise(self, features: Tensor) -> Tensor:
        """``(B, D)`` features as z-scores of the training images' statistics."""
        if features.shape[-1] != len(self.mean):
            raise ValueError(
                f"the calibration holds {len(self.mean)} features, the network gives "
                f"{features.shape[-1]}: it was made for another network"
            )
        mean, scale, _ = self._tensors
        return (features.double().cpu() - mean) / scale

    def score(self, features: Tensor) -> Tensor:
        """``(B,)`` mean distance of ``(B, D)`` features to their ``NEIGHBOURS`` nearest
        training images, in standardised units per dimension."""
        z = self.standardise(features)
        reference = self._tensors[2]
        distances = torch.cdist(z, reference) / math.sqrt(z.shape[-1])
        nearest = distances.topk(min(NEIGHBOURS, len(reference)), largest=False).values
        return nearest.mean(dim=-1)

    @functools.cached_property
    def _tensors(self) -> tuple[Tensor, Tensor, Tensor]:
        """``mean``, ``scale`` and ``reference`` as float64 tensors, made once (every
        photo is scored against them)."""
        return tuple(torch.tensor(values, dtype=torch.float64)  # type: ignore[return-value]
                     for values in (self.mean, self.scale, self.reference))  # fmt: skip

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"format": CALIBRATION_FORMAT, **asdict(self)}) + "\n")

    @classmethod
    def load(cls, path: Path) -> Calibration:
        """Read a calibration file; ``ValueError`` naming the path if it is not one."""
        try:
            document = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: not a calibration file ({error})") from error
        if not isinstance(document, dict) or document.pop("format", None) != CALIBRATION_FORMAT:
            raise ValueError(f"{path}: not a calibration file of restore analyze")
        try:
            return cls(**document)
        except TypeError as error:
            raise ValueError(f"{path}: a calibration file with other fields ({error})") from error


def analyse(
    restorer: Restorer,
    name: str,
    image: Tensor,
    calibration: Calibration | None = None,
) -> Analysis:
    """The analysis of one photo ``(1, 3, H, W)`` in [0, 1]."""
    aux, features = restorer.inspect(image)
    maps = aux.maps[0]
    coverage = (maps >= COVERAGE_LEVEL).float().mean(dim=(-2, -1))
    score = unusual = None
    if calibration is not None:
        score = float(calibration.score(features)[0])
        unusual = score > calibration.threshold
    height, width = image.shape[-2:]
    return Analysis(name, width, height, maps, aux.weights[0], coverage, score, unusual)


def calibrate(
    restorer: Restorer,
    train: Iterable[Tensor],
    held_out: Iterable[Tensor],
    checkpoint: str,
    quantile: float = 0.95,
) -> Calibration:
    """Feature statistics over the ``train`` images and the threshold at ``quantile`` of
    the ``held_out`` images' scores (each image ``(1, 3, H, W)``)."""
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must lie in (0, 1), got {quantile}")
    seen = torch.cat([restorer.inspect(image)[1].double().cpu() for image in train])
    if len(seen) < 2:
        raise ValueError(f"calibration needs at least 2 training images, got {len(seen)}")
    mean = seen.mean(dim=0)
    scale = seen.std(dim=0).clamp_min(_SCALE_FLOOR)
    standard = ((seen - mean) / scale).tolist()
    reference = [[round(value, 4) for value in row] for row in standard]  # a small file
    provisional = Calibration(
        checkpoint, mean.tolist(), scale.tolist(), reference, quantile, math.inf, len(seen), 0, {}
    )
    scores = np.array([float(provisional.score(restorer.inspect(image)[1])[0])
                       for image in held_out])  # fmt: skip
    if len(scores) == 0:
        raise ValueError("calibration needs held-out images (the store's test split is empty)")
    summary = {
        "min": float(scores.min()),
        "median": float(np.median(scores)),
        "max": float(scores.max()),
    }
    threshold = float(np.quantile(scores, quantile))
    return Calibration(checkpoint, mean.tolist(), scale.tolist(), reference, quantile,
                       threshold, len(seen), len(scores), summary)  # fmt: skip


def spread(count: int, most: int) -> list[int]:
    """At most ``most`` indices of ``range(count)``, evenly spread, first and last included:
    the images of a split a calibration reads."""
    if count <= 0:
        return []
    return sorted({int(i) for i in np.linspace(0, count - 1, min(count, most)).round()})


def save_maps(
    path: Path, maps: Tensor, weights: Tensor, text: dict[str, str] | None = None
) -> None:
    """The four maps ``(4, H, W)`` side by side in colour, titled with the global
    ``weights`` ``(4,)``, as a PNG (what ``restore run --save-maps`` and ``restore
    analyze`` write)."""
    from .images import save_png

    save_png(path, maps_strip(maps, weights), None, text)


SheetRow = tuple[list[NDArray[np.uint8]], str]  # a contact sheet's pictures and title


def sheet_row(analysis: Analysis, thumbnail: NDArray[np.uint8]) -> SheetRow:
    """A photo's row of a contact sheet: its thumbnail and its four coloured maps at the
    thumbnail's size, titled with the photo's name and its flag (a few hundred KB, where
    the photo's maps are its full size)."""
    size = thumbnail.shape[:2]
    maps = torch.nn.functional.interpolate(analysis.maps[None].float(), size=size,
                                           mode="area")[0]  # fmt: skip
    flag = "" if analysis.unusual is None else ("UNUSUAL" if analysis.unusual else "ok")
    return [thumbnail, *coloured_maps(maps)], _short(Path(analysis.name).name, 15) + "\n" + flag


def contact_sheet(rows: list[SheetRow]) -> NDArray[np.uint8]:
    """A grid of photos' ``sheet_row``s under the columns photo, low, haze, rain, snow."""
    columns = ["photo", *(f"{name}" for name in DEGRADATIONS)]
    return image_grid([row for row, _ in rows], columns, row_titles=[title for _, title in rows])


def thumbnail(image: Tensor) -> NDArray[np.uint8]:
    """A ``(1, 3, H, W)`` photo as an ``(h, w, 3)`` uint8 picture, longer side ``_THUMBNAIL``."""
    pixels = (image[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    picture = Image.fromarray(pixels)
    picture.thumbnail((_THUMBNAIL, _THUMBNAIL), Image.Resampling.LANCZOS)
    return np.asarray(picture.convert("RGB"))


def pages(items: list[Any], size: int) -> Iterator[list[Any]]:
    """``items`` in pages of ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _short(name: str, length: int) -> str:
    return name if len(name) <= length else "..." + name[-(length - 3) :]
