"""``run_ablation``: the ladder trained on the same data, crops and budget, then scored
under one protocol, run by run, resumable.

Runs go seed by seed (every variant with seed 0, then with seed 1, ...), so a stopped
ablation already holds whole ladders. After each run, ``ablation.json`` and
``ablation.md`` are rewritten from every result so far (``complete`` false until the
last run is done).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from skyclear.degrade.location import location

from ..config import ConfigError, override, preset
from ..runtime import resolve_device
from .machine import describe_machine
from .markdown import to_markdown
from .plan import check_ablation_folder, claim_ablation_folder, plan_of, write_json
from .runs import Report, Run, execute, is_done, standing_result
from .summary import ablation_document
from .variants import DEFAULT_VARIANTS, VARIANTS, variant_configs

__all__ = ["Progress", "plan_runs", "run_ablation"]

#: Called with ``("run", record)`` as a run starts and ``("done", record)`` when it is
#: finished; ``record`` has ``index``, ``total``, ``variant``, ``seed``, ``folder``, and
#: when done ``skipped`` (it was done before), ``seconds`` and ``result``.
Progress = Callable[[str, dict[str, Any]], None]


def plan_runs(
    out: Path, config_name: str, changes: Sequence[str], variants: Sequence[str], seeds: int
) -> list[Run]:
    """Every run of the ablation, seed by seed, each variant's config with ``seed``
    set, in ``out/runs/VARIANT/seed_S``."""
    if seeds < 1:
        raise ConfigError(f"seeds must be >= 1, got {seeds}")
    configs = variant_configs(config_name, changes, variants)
    return [
        Run(name, seed, replace(config, seed=seed), out / "runs" / name / f"seed_{seed}")
        for seed in range(seeds)
        for name, config in configs.items()
    ]


def run_ablation(
    data: str | Path,
    out: str | Path,
    config_name: str,
    seeds: int,
    changes: Sequence[str] = (),
    variants: Sequence[str] = DEFAULT_VARIANTS,
    nfe: Sequence[int] = (1, 2, 4),
    latency_side: int = 256,
    command: str = "",
    progress: Progress | None = None,
    report: Report | None = None,
    retime: bool = False,
) -> dict[str, Any]:
    """Train and score every variant with every seed into ``out``; return ``ablation.json``.

    Args:
        data: any data ``restore train`` accepts (its test split is scored).
        out: the ablation folder: new, empty or one of the same plan (continued).
        config_name: the preset every variant starts from (``tiny``, ``small``, ``paper``).
        seeds: runs per variant, with seeds ``0 .. seeds - 1``.
        changes: ``key=value`` config changes shared by every variant (steps, crop, ...).
        variants: names of ``VARIANTS``.
        nfe: network evaluations per image at which each checkpoint is scored.
        latency_side: side of the square image of the one-step latency.
        retime: time every run's one-step restoration again, finished runs too (nothing
            is trained or scored again for it).
        command: the command line, recorded.
        progress: see ``Progress``.
        report: passed to ``train`` (its progress events).

    Raises:
        ConfigError: a bad preset, variant, key or value; nothing written.
        ValueError: a CUDA device asked for where there is none; nothing written.
        skyclear.degrade.outputs.OutputError: ``out`` meets ``data``, holds files but no
            ablation, or holds another ablation (``PlanMismatchError``); nothing written.
    """
    data, out = location(data), Path(out)
    nfe = sorted(set(nfe))
    if not nfe or nfe[0] < 1 or latency_side < 8:
        raise ConfigError(f"NFEs must be >= 1 and the latency side >= 8, got {nfe}, {latency_side}")
    runs = plan_runs(out, config_name, changes, variants, seeds)
    plan = plan_of(data, config_name, override(preset(config_name), list(changes)))
    machine = describe_machine(resolve_device(runs[0].config.device))  # a missing GPU: here
    check_ablation_folder(out, data, plan)
    claim_ablation_folder(out, plan)
    meta = {
        "command": command,
        **{key: plan[key] for key in ("data", "config", "steps", "crop", "batch_size")},
        "changes": list(changes),
        "seeds": list(range(seeds)),
        "nfe": nfe,
        "variants": list(dict.fromkeys(variants)),
        "overrides": {name: list(VARIANTS[name].overrides) for name in dict.fromkeys(variants)},
        "latency_side": latency_side,
        "machine": machine,
    }
    started = time.perf_counter()
    results: dict[str, dict[int, dict[str, Any]]] = {run.variant: {} for run in runs}
    for index, run in enumerate(runs, 1):
        record = {
            "index": index,
            "total": len(runs),
            "variant": run.variant,
            "seed": run.seed,
            "folder": run.folder,
        }
        skipped = is_done(standing_result(run.folder), nfe, latency_side)
        if progress is not None and not skipped:
            progress("run", record)
        begun = time.perf_counter()
        result = execute(
            run,
            data,
            nfe,
            latency_side,
            workers=run.config.data.workers,
            report=report,
            retime=retime,
        )
        results[run.variant][run.seed] = result
        if progress is not None:
            seconds = time.perf_counter() - begun
            progress("done", {**record, "skipped": skipped, "seconds": seconds, "result": result})
        meta["wall_seconds"] = time.perf_counter() - started
        _write(out, ablation_document(meta, results, complete=index == len(runs)))
    return ablation_document(meta, results, complete=True)


def _write(out: Path, document: dict[str, Any]) -> None:
    write_json(out / "ablation.json", document)
    (out / "ablation.md").write_text(to_markdown(document))
