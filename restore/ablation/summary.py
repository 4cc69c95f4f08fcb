"""The ablation's numbers: every run's, and each variant's mean and spread over seeds."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["ABLATION_FORMAT", "ablation_document", "mean_std", "summarize_variant"]

#: The ``format`` of ``ablation.json``.
ABLATION_FORMAT = "skyclear.ablation/1"


def mean_std(values: Iterable[float | int | None]) -> dict[str, float | int]:
    """``mean``, ``std`` (the sample standard deviation, n - 1) and ``n`` of the finite
    values: an undefined score (``None``, NaN) is left out; ``mean`` is NaN when no value
    is finite, ``std`` when fewer than two are."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    return {
        "mean": statistics.fmean(finite) if finite else math.nan,
        "std": statistics.stdev(finite) if len(finite) > 1 else math.nan,
        "n": len(finite),
    }


def summarize_variant(results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean and spread over a variant's seeds (its runs' results): ``parameters``,
    ``latency_seconds``, ``train_seconds``, and under ``nfe`` for each NFE and each row
    of the table (tier, group, ``all``), each score."""
    results = list(results)
    nfe: dict[str, dict[str, dict[str, Any]]] = {}
    for key in sorted({k for r in results for k in r["nfe"]}, key=int):
        scored = [r["nfe"][key] for r in results if key in r["nfe"]]
        rows: dict[str, dict[str, Any]] = {}
        for name in dict.fromkeys(name for s in scored for name in s["rows"]):
            chosen = [s["rows"][name] for s in scored if name in s["rows"]]
            columns = dict.fromkeys(c for row in chosen for c in row if c != "count")
            rows[name] = {c: mean_std(row.get(c) for row in chosen) for c in columns}
        nfe[key] = rows
    return {
        "seeds": [r["seed"] for r in results],
        "parameters": mean_std(r["parameters"] for r in results),
        "latency_seconds": mean_std(r["latency"]["seconds"] for r in results),
        "train_seconds": mean_std(r.get("train_seconds") for r in results),
        "nfe": nfe,
    }


def ablation_document(
    meta: Mapping[str, Any],
    results: Mapping[str, Mapping[int, Mapping[str, Any]]],
    complete: bool,
) -> dict[str, Any]:
    """``ablation.json``: ``format``, ``meta`` (the command and its options, the variants
    and their overrides, the machine), ``complete`` (every run done), then ``runs`` (each
    variant's results by seed) and ``summary`` (each variant's ``summarize_variant``)."""
    return {
        "format": ABLATION_FORMAT,
        **meta,
        "complete": complete,
        "runs": {
            variant: {str(seed): _without_format(result) for seed, result in by_seed.items()}
            for variant, by_seed in results.items()
        },
        "summary": {
            variant: summarize_variant(by_seed.values())
            for variant, by_seed in results.items()
            if by_seed
        },
    }


def _without_format(result: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in result.items() if key != "format"}
