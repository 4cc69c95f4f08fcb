"""Per-tier evaluation: every sample scored by one protocol, then grouped.

Each sample is restored whole (no crop), then scored with ``metrics`` (8-bit RGB PSNR and
SSIM against the clean image), with the untouched input scored the same way as the
baseline. The routing is scored by its image-level selectivity (``selectivity``: mean
effective activation of the present degradations' experts over the absent ones'), its
pixel-level selectivity (``pixel_selectivity``: each present degradation's expert inside
its mask over outside it, averaged, and one column per degradation), the paper's
``most_over_least`` ratio, the mask error and overlap of the parser's maps against the
ground-truth masks (``mask_mae``, ``mask_iou``) and the presence accuracy of the parser's
global weights. The scores that read the maps per pixel (``PIXEL_COLUMNS``) are NaN where
the data has no masks, and where the routing has no per-pixel maps (``Aux.spatial``
false: the maps are then all ones, not a prediction). Given an LPIPS metric (see
``perceptual``), the 8-bit restored and input images are also scored by LPIPS against the
clean one (``lpips`` and ``input_lpips``, always on RGB); without one those columns are
absent, not NaN. Given an Inception feature extractor (see ``inception``), the whole split
is also scored by FID: the 8-bit restorations against the clean images (``fid``), and the
untouched inputs against them (``input_fid``); one number each, not per sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from skyclear.degrade.names import DEGRADATIONS, TIERS
from torch import Tensor, nn

from . import metrics
from .nn import Aux
from .perceptual import features_frechet_distance
from .visual import example_row

__all__ = [
    "COLUMNS",
    "DEGRADATION_COLUMNS",
    "FID_KEYS",
    "GROUPS",
    "LPIPS_COLUMNS",
    "PIXEL_COLUMNS",
    "Evaluation",
    "Row",
    "evaluate",
    "evaluate_checkpoint",
    "fid_scores",
    "mean_scores",
    "records_of",
    "score_batch",
    "score_columns",
    "summarize",
]

#: Scores of one sample, in table order.
COLUMNS: tuple[str, ...] = (
    "input_psnr",
    "input_ssim",
    "psnr",
    "ssim",
    "selectivity",
    "pixel_selectivity",
    "most_over_least",
    "mask_mae",
    "mask_iou",
    "presence_accuracy",
)
#: Pixel selectivity of each degradation's expert (``metrics.pixel_selectivity``), in the
#: order of the mask stack: scores of every sample, kept out of the main table.
DEGRADATION_COLUMNS: tuple[str, ...] = tuple(f"pixel_selectivity_{d}" for d in DEGRADATIONS)
#: The scores that read the maps per pixel: NaN without masks or without per-pixel maps.
PIXEL_COLUMNS: tuple[str, ...] = (
    "pixel_selectivity",
    "mask_mae",
    "mask_iou",
    *DEGRADATION_COLUMNS,
)
#: Scores present only when an LPIPS metric is given.
LPIPS_COLUMNS: tuple[str, ...] = ("input_lpips", "lpips")
#: Split-wide scores present only when an Inception feature extractor is given.
FID_KEYS: tuple[str, ...] = ("input_fid", "fid")
_TABLE_ORDER = (
    "input_psnr",
    "input_ssim",
    "input_lpips",
    "psnr",
    "ssim",
    "lpips",
    "selectivity",
    "pixel_selectivity",
    "most_over_least",
    "mask_mae",
    "mask_iou",
    "presence_accuracy",
)
#: The tiers of each complexity.
GROUPS: dict[str, tuple[str, ...]] = {
    "single": tuple(tier for tier in TIERS if tier.count("_") == 0),
    "pair": tuple(tier for tier in TIERS if tier.count("_") == 1),
    "triple": tuple(tier for tier in TIERS if tier.count("_") == 2),
}

Restore = Callable[[Tensor], tuple[Tensor, Aux]]


def score_columns(keys: Iterable[str] = ()) -> tuple[str, ...]:
    """The score columns of a table, in table order: ``COLUMNS``, plus those of
    ``LPIPS_COLUMNS`` found among ``keys`` (a record's or a row's score names)."""
    present = set(keys)
    return tuple(c for c in _TABLE_ORDER if c in COLUMNS or c in present)


def score_batch(
    degraded: Tensor,
    restored: Tensor,
    clean: Tensor,
    aux: Aux,
    masks: Tensor,
    presence: Tensor,
    has_masks: Tensor,
    y_channel: bool = False,
    lpips: nn.Module | None = None,
) -> dict[str, Tensor]:
    """Per-sample scores ``(B,)`` (float64) of a restored batch: ``COLUMNS`` and
    ``DEGRADATION_COLUMNS``; NaN where a score does not apply (``PIXEL_COLUMNS`` without
    ground-truth masks or, ``aux.spatial`` false, without per-pixel maps; a degradation's
    pixel selectivity where it is absent). ``y_channel`` scores PSNR and SSIM on the
    BT.601 luma instead of RGB. With ``lpips`` (a ``perceptual.LPIPS``), also
    ``input_lpips`` and ``lpips``: the 8-bit input and restoration against the clean image,
    computed on the metric's device."""
    image = metrics.selectivity(aux.alpha, aux.maps, presence)
    unordered = {
        "input_psnr": metrics.psnr(degraded, clean, y_channel),
        "input_ssim": metrics.ssim(degraded, clean, y_channel),
        "psnr": metrics.psnr(restored, clean, y_channel),
        "ssim": metrics.ssim(restored, clean, y_channel),
        "selectivity": image["present_over_absent"],
        "most_over_least": image["most_over_least"],
        "presence_accuracy": metrics.presence_accuracy(aux.weights, presence),
        **_pixel_scores(aux, masks, presence, has_masks),
    }
    scores = {key: unordered[key] for key in (*COLUMNS, *DEGRADATION_COLUMNS)}
    if lpips is not None:
        scores["input_lpips"] = _lpips_of(lpips, degraded, clean)
        scores["lpips"] = _lpips_of(lpips, restored, clean)
    return scores


def _pixel_scores(
    aux: Aux, masks: Tensor, presence: Tensor, has_masks: Tensor
) -> dict[str, Tensor]:
    """``PIXEL_COLUMNS`` of a batch, NaN on samples without masks; all NaN, and not
    computed, where the routing has no per-pixel maps: its all-ones maps are no
    prediction, and would score as uniform routing and as a mask that covers the image."""
    batch = aux.maps.shape[0]
    nan = torch.full((batch,), math.nan, dtype=torch.float64, device=aux.maps.device)
    if not aux.spatial:
        return dict.fromkeys(PIXEL_COLUMNS, nan)
    pixel = metrics.pixel_selectivity(aux.alpha, aux.maps, masks, presence)
    scores = {
        "pixel_selectivity": pixel["inside_over_outside"],
        "mask_mae": metrics.mask_mae(aux.maps, masks),
        "mask_iou": metrics.mask_iou(aux.maps, masks),
        **dict(zip(DEGRADATION_COLUMNS, pixel["per_degradation"].unbind(1), strict=True)),
    }
    defined = has_masks.to(nan.device).bool()
    return {key: torch.where(defined, value.double(), nan) for key, value in scores.items()}


def _lpips_of(lpips: nn.Module, image: Tensor, clean: Tensor) -> Tensor:
    """LPIPS of the 8-bit images, computed on the metric's device, float64 on the image's."""
    device = next(lpips.parameters()).device
    eight_bit = [metrics.quantize8(x).to(device, torch.float32) for x in (image, clean)]
    with torch.no_grad():
        return lpips(*eight_bit).double().to(image.device)


def records_of(
    batch: dict[str, Any],
    restored: Tensor,
    aux: Aux,
    y_channel: bool = False,
    lpips: nn.Module | None = None,
) -> list[dict[str, Any]]:
    """One record per sample of a restored batch: ``{"tier": name, **scores}`` (see
    ``score_batch``)."""
    scores = score_batch(
        batch["degraded"].cpu(),
        restored.cpu(),
        batch["clean"].cpu(),
        Aux(aux.maps.cpu(), aux.weights.cpu(), aux.alpha.cpu(), aux.spatial),
        batch["masks"].cpu(),
        batch["presence"].cpu(),
        batch["has_masks"].cpu(),
        y_channel,
        lpips,
    )
    return [
        {"tier": TIERS[tier], **{key: float(value[i]) for key, value in scores.items()}}
        for i, tier in enumerate(batch["tier"].tolist())
    ]


def evaluate(
    restore: Restore,
    samples: Iterable[dict[str, Any]],
    device: torch.device | str = "cpu",
    progress: Callable[[int], None] | None = None,
    y_channel: bool = False,
    on_batch: Callable[[dict[str, Any], Tensor, Aux], None] | None = None,
    lpips: nn.Module | None = None,
) -> list[dict[str, Any]]:
    """Restore and score every sample of an iterable of batches (a DataLoader over a
    skyclear dataset), one record per sample (see ``records_of``; ``lpips`` adds the LPIPS
    scores). ``on_batch`` sees each batch with its restoration."""
    records: list[dict[str, Any]] = []
    for batch in samples:
        degraded = batch["degraded"].to(device)
        restored, aux = restore(degraded)
        records += records_of(batch, restored, aux, y_channel, lpips)
        if on_batch is not None:
            on_batch(batch, restored, aux)
        if progress is not None:
            progress(len(degraded))
    return records


def mean_scores(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The mean of each score (``score_columns`` of the records, then those of
    ``DEGRADATION_COLUMNS`` they have) over the records where it is finite (NaN where none
    is: an infinite PSNR means identical images and is left out)."""
    keys = {key for record in records for key in record}
    means = {}
    for column in (*score_columns(keys), *(c for c in DEGRADATION_COLUMNS if c in keys)):
        values = [r[column] for r in records if math.isfinite(r.get(column, math.nan))]
        means[column] = sum(values) / len(values) if values else math.nan
    return means


@dataclass(frozen=True)
class Row:
    """One line of the table: a tier, a complexity group, or everything."""

    name: str
    count: int
    scores: dict[str, float]


@dataclass(frozen=True)
class Evaluation:
    """A checkpoint's evaluation: the table, every sample's scores, one example per tier
    as tiles (degraded, restored, clean, then the four coloured parser maps), and the
    split-wide ``FID_KEYS`` scores where they were computed (else empty)."""

    rows: list[Row]
    records: list[dict[str, Any]]
    examples: dict[str, list[NDArray[np.uint8]]]
    fid: dict[str, float] = field(default_factory=dict)
    method: str = "f2d"
    steps: int = 1


def summarize(records: Sequence[dict[str, Any]]) -> list[Row]:
    """Rows per tier (in CDD-11 order), then per complexity (averaged over its samples),
    then ``all``. Infinite PSNRs (identical images) are left out of the means."""
    rows: list[Row] = []

    def add(name: str, chosen: Sequence[dict[str, Any]]) -> None:
        if chosen:
            rows.append(Row(name, len(chosen), mean_scores(chosen)))

    for tier in TIERS:
        add(tier, [r for r in records if r["tier"] == tier])
    for group, tiers in GROUPS.items():
        add(group, [r for r in records if r["tier"] in tiers])
    add("all", records)
    return rows


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str | Path,
    split: str = "test",
    steps: int | None = None,
    device: str = "auto",
    workers: int = 0,
    y_channel: bool = False,
    weights: str = "ema",
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    lpips: nn.Module | None = None,
    inception: nn.Module | None = None,
    method: str | None = None,
    remove: frozenset[str] | None = None,
) -> Evaluation:
    """Restore every sample of a split at full resolution and score it; keep the first
    sample of each tier as an example. ``on_start`` is called with the number of samples
    before the first is restored. ``lpips`` (a ``perceptual.LPIPS``, moved to the
    restorer's device) adds the LPIPS scores; ``inception`` (an
    ``inception.InceptionFeatures``, moved likewise) the split's FID (``fid_scores``), which
    needs at least two samples. ``steps`` defaults to the checkpoint's method's own; given
    ``method``, a checkpoint trained as another method is refused. ``remove``: the network
    is told to remove these degradations only, and every score is taken against the
    partial target (the clean photo degraded by what the sample keeps,
    ``datasets.partial``), which takes the place of ``clean`` in the records."""
    from skyclear.datasets.partial import Removal, removal_vector
    from torch.utils.data import DataLoader

    from .data import open_dataset
    from .inference import Restorer

    restorer = Restorer.from_checkpoint(checkpoint, device=device, weights=weights)
    restorer.check_method(method, checkpoint)
    vector = None if remove is None else removal_vector(remove)
    if remove is not None:
        restorer.check_removal()  # refused before the data is read
    steps = restorer.method.steps_of(steps)
    for metric in (lpips, inception):
        if metric is not None:
            metric.to(restorer.device)
    removal = None if remove is None else Removal(remove=remove)
    dataset = open_dataset(data, split, None, False, seed=restorer.config.seed, removal=removal)
    if inception is not None and len(dataset) < 2:  # type: ignore[arg-type]
        raise ValueError(f"{data}: FID needs at least 2 samples in the {split} split")
    if on_start is not None:
        on_start(len(dataset))  # type: ignore[arg-type]
    loader = DataLoader(
        dataset,
        batch_size=1,  # full-resolution images may differ in size
        num_workers=workers,
        worker_init_fn=_one_thread if workers else None,
    )
    generator = torch.Generator().manual_seed(restorer.config.seed)

    def restore(degraded: Tensor) -> tuple[Tensor, Aux]:
        return restorer(degraded, steps, generator, vector)

    def against_targets(batches: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for batch in batches:
            yield batch if remove is None else {**batch, "clean": batch["target"]}

    examples: dict[str, list[NDArray[np.uint8]]] = {}
    features: dict[str, list[Tensor]] = {"input": [], "restored": [], "clean": []}

    def on_batch(batch: dict[str, Any], restored: Tensor, aux: Aux) -> None:
        tier = TIERS[int(batch["tier"][0])]
        if tier not in examples:
            examples[tier] = example_row(
                batch["degraded"][0], restored[0], batch["clean"][0], aux.maps[0]
            )
        if inception is not None:
            batches = (batch["degraded"], restored, batch["clean"])
            for name, values in zip(features, _features_of(inception, *batches), strict=True):
                features[name].append(values)

    records = evaluate(restore, against_targets(loader), restorer.device, progress, y_channel,
                       on_batch, lpips)  # fmt: skip
    ordered = {tier: examples[tier] for tier in TIERS if tier in examples}
    fid = {} if inception is None else fid_scores(*(torch.cat(f) for f in features.values()))
    return Evaluation(summarize(records), records, ordered, fid, restorer.config.method, steps)


def _features_of(inception: nn.Module, *images: Tensor) -> tuple[Tensor, ...]:
    """Inception features of equally sized 8-bit image batches, in one pass on the
    network's device; float64 on the CPU."""
    device = next(inception.parameters()).device
    eight_bit = [metrics.quantize8(x).to(device, torch.float32) for x in images]
    with torch.no_grad():
        features = inception(torch.cat(eight_bit)).double().cpu()
    return features.chunk(len(images))


def fid_scores(inputs: Tensor, restored: Tensor, clean: Tensor) -> dict[str, float]:
    """``FID_KEYS`` of a split from the features ``(N, D)`` of its inputs, restorations
    and clean images: ``fid`` is restored against clean, ``input_fid`` input against
    clean."""
    return {
        "input_fid": features_frechet_distance(inputs, clean),
        "fid": features_frechet_distance(restored, clean),
    }


def _one_thread(worker_id: int) -> None:
    torch.set_num_threads(1)
