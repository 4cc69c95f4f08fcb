"""``ablation.md``: the ablation's tables for people."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..evaluate import GROUPS, score_columns
from ..report import HEADERS
from .runs import RESTORATION_SCORES
from .variants import VARIANTS

__all__ = ["to_markdown"]

_DIGITS = {"psnr": 2, "input_psnr": 2, "ssim": 3, "input_ssim": 3, "mask_mae": 3, "mask_iou": 3}


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _cell(stats: Mapping[str, Any] | None, digits: int, scale: float = 1.0) -> str:
    """``mean ± std`` (``mean`` alone from one seed); ``–`` where nothing is defined."""
    if not stats:
        return "–"
    mean, std = _number(stats.get("mean")) * scale, _number(stats.get("std")) * scale
    if math.isnan(mean):
        return "–"
    if math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [_line(header), "|" + "---|" * len(header), *(_line(row) for row in rows)]


def to_markdown(document: Mapping[str, Any]) -> str:
    """The ladder, then at the first NFE asked for a table of variants by parameters,
    latency, PSNR and SSIM over all samples, PSNR per complexity group and the routing
    scores (mean ± std over seeds), then PSNR over all samples at each NFE, then the
    runs."""
    summary: Mapping[str, Any] = document["summary"]
    variants = [name for name in document["variants"] if name in summary]
    nfe = [str(n) for n in document["nfe"]]
    seeds = len(document["seeds"])
    status = "" if document["complete"] else " (incomplete: runs still to do)"
    lines = [
        f"# Ablation: `{document['config']}`, {document['steps']} steps, "
        f"{seeds} seed{'s' if seeds > 1 else ''}{status}",
        "",
        f"Data `{document['data']}`, crop {document['crop']}, batch {document['batch_size']}; "
        f"scored on the test split at {', '.join(nfe)} NFE. Command: `{document['command']}`",
        "",
        _machine_line(document["machine"]),
        "",
        *_table(
            ["variant", "what", "overrides"],
            [
                [name, VARIANTS[name].summary, ", ".join(f"`{o}`" for o in overrides) or "–"]
                for name, overrides in document["overrides"].items()
            ],
        ),
    ]
    if variants:
        lines += [
            "",
            *_main_table(document, variants, nfe[0]),
            "",
            *_nfe_table(summary, variants, nfe),
        ]
        lines += ["", *_runs_table(document["runs"], variants)]
    return "\n".join(lines) + "\n"


def _machine_line(machine: Mapping[str, Any]) -> str:
    parts = [f"CPU {machine['cpu']} ({machine['cpu_count']} cores)"]
    if machine.get("gpu"):
        parts.append(f"GPU {machine['gpu']}")
    parts.append(f"torch {machine['torch']}")
    return "Machine: " + ", ".join(parts) + "."


def _main_table(document: Mapping[str, Any], variants: Sequence[str], nfe: str) -> list[str]:
    summary = document["summary"]
    keys = {k for name in variants for k in summary[name]["nfe"].get(nfe, {}).get("all", {})}
    routing = [c for c in score_columns(keys) if c not in RESTORATION_SCORES and c in keys]
    groups = [g for g in GROUPS if any(g in summary[n]["nfe"].get(nfe, {}) for n in variants)]
    side = document["latency_side"]
    header = [
        "variant",
        "params (M)",
        f"latency {side}² (ms)",
        "PSNR",
        "SSIM",
        *(f"PSNR {group}" for group in groups),
        *(HEADERS.get(c, c) for c in routing),
    ]
    rows = []
    for name in variants:
        table = summary[name]["nfe"].get(nfe, {})
        rows.append(
            [
                name,
                _cell({"mean": summary[name]["parameters"]["mean"]}, 3, 1e-6),
                _cell(summary[name]["latency_seconds"], 1, 1e3),
                _cell(table.get("all", {}).get("psnr"), 2),
                _cell(table.get("all", {}).get("ssim"), 3),
                *(_cell(table.get(group, {}).get("psnr"), 2) for group in groups),
                *(_cell(table.get("all", {}).get(c), _DIGITS.get(c, 2)) for c in routing),
            ]
        )
    first = summary[variants[0]]["nfe"].get(nfe, {})

    def baseline(row: str, column: str, digits: int) -> str:  # the same for every run
        return _cell({"mean": first.get(row, {}).get(column, {}).get("mean")}, digits)

    untouched = [
        "input (untouched)",
        "",
        "",
        baseline("all", "input_psnr", 2),
        baseline("all", "input_ssim", 3),
        *(baseline(group, "input_psnr", 2) for group in groups),
        *("" for _ in routing),
    ]
    return [
        f"At {nfe} NFE, mean ± std over seeds; `–`: not defined (no experts: no routing; "
        "image routing: no per-pixel maps).",
        "",
        *_table(header, [*rows, untouched]),
    ]


def _nfe_table(
    summary: Mapping[str, Any], variants: Sequence[str], nfe: Sequence[str]
) -> list[str]:
    rows = [
        [name, *(_cell(summary[name]["nfe"].get(n, {}).get("all", {}).get("psnr"), 2) for n in nfe)]
        for name in variants
    ]
    return [
        "PSNR over all test samples by network evaluations (mean ± std over seeds):",
        "",
        *_table(["variant", *(f"{n} NFE" for n in nfe)], rows),
    ]


def _runs_table(runs: Mapping[str, Mapping[str, Any]], variants: Sequence[str]) -> list[str]:
    rows = []
    for name in variants:
        for seed, result in runs[name].items():
            train = result.get("train_seconds")
            evaluation = sum(_number(s.get("seconds")) for s in result["nfe"].values())
            rows.append(
                [
                    name,
                    seed,
                    f"{result['checkpoint']} (step {result['step']})",
                    "–" if train is None else f"{train:.1f}",
                    f"{evaluation:.1f}",
                    f"{_number(result['latency']['seconds']) * 1e3:.1f}",
                    str(result["machine"].get("gpu") or result["machine"].get("device")),
                ]
            )
    return [
        "Runs:",
        "",
        *_table(
            ["variant", "seed", "checkpoint", "train (s)", "eval (s)", "latency (ms)", "device"],
            rows,
        ),
    ]
