"""Methods compared under one protocol: the same test samples, the same metric code, the
same device, timed in the same run.

``compare_runs`` restores the test split of one store with each run's ``last.pt`` at its
method's own number of network evaluations (NFE), and at any others asked for, scores
every sample with ``evaluate.records_of`` (what ``restore eval`` uses), and times each
restoration. A run trained on another store, or on other tiers, is compared all the same,
with a note that says so.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image, ImageDraw
from skyclear.degrade.io import to_numpy
from skyclear.degrade.location import identity
from skyclear.degrade.names import TIERS
from torch import Tensor, nn

from .checkpoint import load_checkpoint, train_config_of
from .evaluate import GROUPS, records_of, summarize
from .inference import Restorer
from .visual import image_grid

__all__ = ["Comparison", "Scored", "compare_runs", "write_comparison"]

#: The columns of the comparison, per tier group.
SCORES = ("psnr", "ssim")


@dataclass(frozen=True)
class Scored:
    """One run at one NFE: mean scores per tier group (``single``, ``pair``, ``triple``,
    ``all``), milliseconds per image, and the restorations of the picture's samples."""

    nfe: int
    groups: dict[str, dict[str, float]]
    ms_per_image: float
    pictures: dict[str, tuple[NDArray[np.uint8], float]]


@dataclass(frozen=True)
class Entry:
    """A run: its folder, method, parameters, what it was trained on, and its scores."""

    run: str
    method: str
    parameters: int
    notes: list[str]
    scored: list[Scored] = field(default_factory=list)


@dataclass(frozen=True)
class Comparison:
    """Every run's entry, the store, the samples scored per tier, the device."""

    data: str
    samples: int
    device: str
    entries: list[Entry]
    inputs: dict[str, dict[str, float]]
    pictures: dict[str, tuple[NDArray[np.uint8], NDArray[np.uint8], float]]


def _parameters(restorer: Restorer, payload: dict[str, Any]) -> int:
    """The network's parameters and those of anything else the method trained (DA-RCOT's
    critic): a method's extra modules count in its column."""
    critic = payload.get("critic") or {}
    return sum(p.numel() for p in restorer.model.parameters()) + sum(
        value.numel() for value in critic.values()
    )


def _samples(data: Path | str, per_tier: int | None) -> list[dict[str, Tensor]]:
    """The test split's samples, in order, at most ``per_tier`` of each tier."""
    from .data import open_dataset

    dataset = open_dataset(data, "test", None, False)
    chosen: list[dict[str, Tensor]] = []
    counts: dict[int, int] = {}
    for index in range(len(dataset)):  # type: ignore[arg-type]
        sample = dataset[index]
        tier = int(sample["tier"])
        if per_tier is not None and counts.get(tier, 0) >= per_tier:
            continue
        counts[tier] = counts.get(tier, 0) + 1
        chosen.append({key: value.unsqueeze(0) for key, value in sample.items()})
    if not chosen:
        raise ValueError(f"{data}: the test split is empty")
    return chosen


def _picture_indices(samples: Sequence[dict[str, Tensor]]) -> dict[str, int]:
    """The first sample of each tier group (the picture's rows)."""
    first: dict[str, int] = {}
    for index, sample in enumerate(samples):
        tier = TIERS[int(sample["tier"][0])]
        for group, tiers in GROUPS.items():
            if tier in tiers and group not in first:
                first[group] = index
    return first


def _notes(path: Path, payload: dict[str, Any], data: Path | str) -> list[str]:
    config = train_config_of(payload, path)
    notes = []
    trained_on = payload.get("data")
    if trained_on is None:
        notes.append("its training store is not recorded (a run of an earlier version)")
    elif identity(trained_on) != identity(data):
        notes.append(f"trained on {trained_on}, not on the compared store")
    if config.data.tiers is not None:
        notes.append(f"trained on the tiers {', '.join(config.data.tiers)} only")
    degraded = payload.get("degraded_data")
    if degraded is not None:
        notes.append(f"trained unpaired, its degraded images the real photos in {degraded}")
    elif config.data.unpaired:
        notes.append("trained unpaired (degraded and clean images from disjoint photos)")
    return notes


def _group_means(rows: Sequence[Any]) -> dict[str, dict[str, float]]:
    return {
        row.name: {key: row.scores.get(key, math.nan) for key in (*SCORES, "lpips")}
        for row in rows
        if row.name in (*GROUPS, "all")
    }


def compare_runs(
    runs: Sequence[Path],
    data: Path | str,
    device: str = "auto",
    also_nfe: Sequence[int] = (),
    per_tier: int | None = None,
    seed: int = 0,
    lpips: nn.Module | None = None,
    progress: Callable[[str], None] | None = None,
) -> Comparison:
    """Score each run's ``last.pt`` on ``data``'s test split (``per_tier`` samples of each
    tier, or all), at its own NFE and at each of ``also_nfe``; every sampler's noise is
    seeded by ``seed`` for every image."""
    samples = _samples(data, per_tier)
    picture = _picture_indices(samples)
    entries: list[Entry] = []
    resolved = "cpu"
    inputs: dict[str, dict[str, float]] = {}
    shown: dict[str, tuple[NDArray[np.uint8], NDArray[np.uint8], float]] = {}
    for run in runs:
        path = run / "last.pt" if run.is_dir() else run
        payload = load_checkpoint(path)
        restorer = Restorer.from_payload(payload, path, device=device)
        resolved = str(restorer.device)
        if lpips is not None:
            lpips.to(restorer.device)
        entry = Entry(
            str(run),
            restorer.config.method,
            _parameters(restorer, payload),
            _notes(path, payload, data),
        )
        own = restorer.method.nfe
        restorer(samples[0]["degraded"], 1, torch.Generator().manual_seed(seed))  # warm-up
        for nfe in dict.fromkeys((own, *also_nfe)):
            if progress is not None:
                progress(f"{run} ({entry.method}) at {nfe} NFE")
            records: list[dict[str, Any]] = []
            pictures: dict[str, tuple[NDArray[np.uint8], float]] = {}
            seconds = 0.0
            for index, batch in enumerate(samples):
                generator = torch.Generator().manual_seed(seed)
                start = time.perf_counter()
                restored, aux = restorer(batch["degraded"], nfe, generator)
                if restorer.device.type == "cuda":
                    torch.cuda.synchronize(restorer.device)
                seconds += time.perf_counter() - start
                record = records_of(batch, restored, aux, lpips=lpips)[0]
                records.append(record)
                for group, chosen in picture.items():
                    if chosen == index:
                        pictures[group] = (to_numpy(restored[0]), record["psnr"])
                        image, clean = batch["degraded"][0], batch["clean"][0]
                        shown.setdefault(
                            group, (to_numpy(image), to_numpy(clean), record["input_psnr"])
                        )
            if not inputs:
                rows = summarize([{**r, "psnr": r["input_psnr"], "ssim": r["input_ssim"]}
                                  for r in records])  # fmt: skip
                inputs = _group_means(rows)
            entry.scored.append(
                Scored(
                    nfe, _group_means(summarize(records)), 1000 * seconds / len(samples), pictures
                )
            )
        entries.append(entry)
    return Comparison(str(data), len(samples), resolved, entries, inputs, shown)


def _labelled(tile: NDArray[np.uint8], text: str) -> NDArray[np.uint8]:
    image = Image.fromarray(tile)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 7 * len(text) + 6, 14), fill=(0, 0, 0))
    draw.text((3, 2), text, fill=(255, 255, 255))
    return np.asarray(image)


def _markdown(comparison: Comparison) -> str:
    groups = [g for g in (*GROUPS, "all") if g in comparison.inputs]
    lpips = any(
        math.isfinite(scored.groups.get("all", {}).get("lpips", math.nan))
        for entry in comparison.entries
        for scored in entry.scored
    )
    header = ["method", "run", "NFE", "params (M)", "ms / image"]
    for group in groups:
        header += [f"PSNR {group}", f"SSIM {group}"] + ([f"LPIPS {group}"] if lpips else [])
    lines = [
        "# Methods compared",
        "",
        f"store: `{comparison.data}`, test split, {comparison.samples} samples; device "
        f"`{comparison.device}`; every method scored by the same code (8-bit RGB), timed in "
        "this run.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for entry in comparison.entries:
        for scored in entry.scored:
            cells = [entry.method, f"`{entry.run}`", str(scored.nfe),
                     f"{entry.parameters / 1e6:.3f}", f"{scored.ms_per_image:.1f}"]  # fmt: skip
            for group in groups:
                values = scored.groups.get(group, {})
                cells += [
                    f"{values.get('psnr', math.nan):.2f}",
                    f"{values.get('ssim', math.nan):.3f}",
                ]
                if lpips:
                    cells.append(f"{values.get('lpips', math.nan):.3f}")
            lines.append("| " + " | ".join(cells) + " |")
    cells = ["input (untouched)", "", "", "", ""]
    for group in groups:
        values = comparison.inputs[group]
        cells += [f"{values['psnr']:.2f}", f"{values['ssim']:.3f}"] + ([""] if lpips else [])
    lines.append("| " + " | ".join(cells) + " |")
    notes = [(entry, note) for entry in comparison.entries for note in entry.notes]
    if notes:
        lines += ["", "Notes:", ""] + [
            f"* `{entry.run}` ({entry.method}): {note}" for entry, note in notes
        ]
    return "\n".join(lines) + "\n"


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def write_comparison(comparison: Comparison, out: Path) -> list[Path]:
    """``compare.md``, ``compare.json`` and ``compare.png`` (per tier group one test
    image: degraded, each run's restoration at its own NFE with its PSNR, clean) in
    ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    markdown = out / "compare.md"
    markdown.write_text(_markdown(comparison))
    document = {
        "format": "skyclear.compare/1",
        "data": comparison.data,
        "samples": comparison.samples,
        "device": comparison.device,
        "input": comparison.inputs,
        "runs": [
            {
                "run": entry.run,
                "method": entry.method,
                "parameters": entry.parameters,
                "notes": entry.notes,
                "scores": [
                    {"nfe": s.nfe, "ms_per_image": s.ms_per_image, "groups": s.groups}
                    for s in entry.scored
                ],
            }
            for entry in comparison.entries
        ],
    }
    report = out / "compare.json"
    report.write_text(json.dumps(_finite(document), indent=2) + "\n")
    rows, names = [], []
    for group, (degraded, clean, input_psnr) in comparison.pictures.items():
        row = [_labelled(degraded, f"{input_psnr:.2f} dB")]
        for entry in comparison.entries:
            tile, psnr = entry.scored[0].pictures[group]
            row.append(_labelled(tile, f"{psnr:.2f} dB"))
        rows.append([*row, clean])
        names.append(group)
    titles = [
        "degraded",
        *(f"{e.method} ({e.scored[0].nfe} NFE)" for e in comparison.entries),
        "clean",
    ]
    picture = out / "compare.png"
    Image.fromarray(image_grid(rows, titles, row_titles=names)).save(picture)
    return [markdown, report, picture]
