"""One run of an ablation: train it (or resume it), then score its checkpoint.

A run's folder, ``DIR/runs/VARIANT/seed_S``, is a ``restore train`` run folder. Its result
is ``ablation_eval.json`` beside the checkpoints, written (atomically) once the checkpoint
has been scored at every NFE asked for, with its parameter count and one-step latency. A
run whose result covers the NFEs asked for, of ``last.pt``, timed at the latency side
asked for, is not touched again (unless asked to time it again); one without a result is
trained on from its ``last.pt`` if training had not finished (``train(resume=True)``),
then scored; NFEs added later are scored and added to the result.

The checkpoint scored is ``last.pt``: every variant at the same budget of steps. Training's
``best.pt`` is chosen on the test split's samples, so scoring it would pick the model on
the data that scores it; a result made from another checkpoint is scored again, unless
that checkpoint was the same file as ``last.pt`` (the same digest). Scores
are those of ``evaluate_checkpoint`` on the test split, kept for each row of
its table (tiers, complexity groups, ``all``). A variant without experts has no routing:
its routing scores (every score but PSNR, SSIM and LPIPS) are recorded as undefined.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import checkpoint_digest, load_checkpoint
from ..config import TrainConfig
from ..evaluate import evaluate_checkpoint
from ..inference import Restorer
from ..train import RunFolder, train
from ..train.folder import is_run_folder
from .machine import describe_machine
from .plan import write_json

__all__ = [
    "RESTORATION_SCORES",
    "RESULT_FILE",
    "RESULT_FORMAT",
    "Run",
    "execute",
    "is_done",
    "missing_nfe",
    "one_step_latency",
    "read_result",
    "standing_result",
]

#: A run's result, beside its checkpoints, and its ``format``.
RESULT_FILE = "ablation_eval.json"
RESULT_FORMAT = "skyclear.ablation-run/1"
#: The checkpoint a run is scored on: its last, after the budget of steps.
SCORED_CHECKPOINT = "last.pt"
#: Training wall time spent on the run so far, over every command that trained it.
TIME_FILE = "ablation_time.json"
#: The scores of the restoration itself; every other score reads the routing.
RESTORATION_SCORES = frozenset({"input_psnr", "input_ssim", "input_lpips", "psnr", "ssim", "lpips"})

Report = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class Run:
    """One variant trained with one seed (``config.seed``) in ``folder``."""

    variant: str
    seed: int
    config: TrainConfig
    folder: Path

    @property
    def result_path(self) -> Path:
        return self.folder / RESULT_FILE


def read_result(folder: Path) -> dict[str, Any] | None:
    """A run's saved result, or ``None`` where there is none (or an unreadable one)."""
    try:
        result = json.loads((folder / RESULT_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(result, dict) or result.get("format") != RESULT_FORMAT:
        return None
    return result


def standing_result(folder: Path) -> dict[str, Any]:
    """The part of a run's saved result that still stands (empty where none does): a
    result scored on another checkpoint than ``SCORED_CHECKPOINT`` (an older protocol)
    stands only where that checkpoint was the same file as ``last.pt`` (best.pt is last.pt
    when the last validation was the best), and is then relabelled as ``last.pt``'s."""
    result = read_result(folder) or {}
    if result and result.get("checkpoint") != SCORED_CHECKPOINT:
        last = RunFolder(folder).last
        same = last.exists() and result.get("checkpoint_digest") == checkpoint_digest(last)
        result = {**result, "checkpoint": SCORED_CHECKPOINT} if same else {}
    return result


def is_done(result: dict[str, Any] | None, nfe: Sequence[int], latency_side: int) -> bool:
    """Whether ``result`` leaves nothing to do: every NFE of ``nfe`` scored on
    ``SCORED_CHECKPOINT``, and timed at ``latency_side``."""
    if not result or missing_nfe(result, nfe):
        return False
    return bool(result.get("latency", {}).get("side") == latency_side)


def missing_nfe(result: dict[str, Any] | None, nfe: Sequence[int]) -> list[int]:
    """The NFEs of ``nfe`` that ``result`` has not scored: all of them where it scored
    another checkpoint than ``SCORED_CHECKPOINT``."""
    if not result or result.get("checkpoint") != SCORED_CHECKPOINT:
        return list(nfe)
    done = result.get("nfe", {})
    return [n for n in nfe if str(n) not in done]


def execute(
    run: Run,
    data: Path | str,
    nfe: Sequence[int],
    latency_side: int = 256,
    latency_repeats: int = 21,
    workers: int = 0,
    report: Report | None = None,
    retime: bool = False,
) -> dict[str, Any]:
    """Train ``run`` as far as its config says (resuming where it stopped), score its
    checkpoint at each NFE not yet scored, time it where not yet timed at
    ``latency_side`` (or again, with ``retime``: on a quiet machine, after a run timed
    while other work shared it), save and return its result. Nothing is done when its
    result already covers ``nfe``, timed at ``latency_side``, and ``retime`` is false."""
    folder = RunFolder(run.folder)
    result = standing_result(run.folder)
    if is_done(result, nfe, latency_side) and not retime:
        return result
    missing = missing_nfe(result, nfe)
    timed = result.get("latency", {}).get("side") == latency_side and not retime
    _train(run, data, report)
    checkpoint = folder.last
    scored = dict(result.get("nfe", {}))
    for steps in missing:
        scored[str(steps)] = _score(run, checkpoint, data, steps, workers)
    if timed:
        measured = {key: result[key] for key in ("latency", "parameters", "machine")}
    else:
        measured = one_step_latency(checkpoint, run.config.device, latency_side, latency_repeats)
    result = {
        "format": RESULT_FORMAT,
        "variant": run.variant,
        "seed": run.seed,
        "checkpoint": checkpoint.name,
        "checkpoint_digest": checkpoint_digest(checkpoint),
        "step": int(load_checkpoint(checkpoint)["step"]),
        "train_seconds": _train_seconds(run.folder),
        **measured,
        "nfe": {str(n): scored[str(n)] for n in sorted(scored, key=int)},
    }
    write_json(run.result_path, result)
    return result


def _train(run: Run, data: Path | str, report: Report | None) -> None:
    """Train the run, or resume it from ``last.pt``; nothing when it has all its steps.
    The wall time is added to the run's ``TIME_FILE`` however training ends."""
    last = RunFolder(run.folder).last
    step = int(load_checkpoint(last)["step"]) if last.exists() else None
    if step is not None and step >= run.config.steps:
        return
    started = time.perf_counter()
    try:
        train(run.config, data, run.folder, resume=step is not None, report=report)
    finally:
        if is_run_folder(run.folder):  # train claimed it: ours to write into
            seconds = _train_seconds(run.folder) or 0.0
            write_json(
                run.folder / TIME_FILE,
                {"train_seconds": seconds + time.perf_counter() - started},
            )


def _train_seconds(folder: Path) -> float | None:
    try:
        return float(json.loads((folder / TIME_FILE).read_text())["train_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _score(
    run: Run, checkpoint: Path, data: Path | str, steps: int, workers: int
) -> dict[str, Any]:
    """The rows of the test split's table at ``steps`` network evaluations, with the
    wall time it took."""
    started = time.perf_counter()
    evaluation = evaluate_checkpoint(
        checkpoint, data, split="test", steps=steps, device=run.config.device, workers=workers
    )
    rows = {}
    for row in evaluation.rows:
        scores = dict(row.scores)
        if not run.config.model.experts:  # all-ones routing: no prediction to score
            scores = {k: v if k in RESTORATION_SCORES else math.nan for k, v in scores.items()}
        rows[row.name] = {"count": row.count, **scores}
    return {"seconds": time.perf_counter() - started, "rows": rows}


def one_step_latency(
    checkpoint: Path, device: str = "auto", side: int = 256, repeats: int = 21
) -> dict[str, Any]:
    """Parameters of the checkpoint's network, and the median wall time of ``repeats``
    one-step restorations of a random ``side`` x ``side`` image on ``device`` (after one
    call to warm up), as ``restore eval`` runs them (the run's bf16 and channels_last on
    CUDA). Returns ``parameters``, ``latency`` (``seconds``, ``side``, ``repeats``) and the
    ``machine`` it ran on."""
    restorer = Restorer.from_checkpoint(checkpoint, device=device)
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, side, side, generator=generator).to(restorer.device)

    def synchronize() -> None:
        if restorer.device.type == "cuda":
            torch.cuda.synchronize(restorer.device)

    restorer(image)
    synchronize()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        restorer(image)
        synchronize()
        times.append(time.perf_counter() - started)
    return {
        "parameters": sum(p.numel() for p in restorer.model.parameters()),
        "latency": {"seconds": statistics.median(times), "side": side, "repeats": repeats},
        "machine": describe_machine(restorer.device),
    }
