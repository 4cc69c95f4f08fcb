"""The ablation ladder: its variants' configs, an ablation end to end, resuming, refusal."""

from __future__ import annotations

import json
import math
import signal
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from skyclear.degrade.outputs import OutputError
from skyclear.restore.ablation import (
    DEFAULT_VARIANTS,
    PLAN_FILE,
    RESULT_FILE,
    PlanMismatchError,
    mean_std,
    run_ablation,
    variant_configs,
)
from skyclear.restore.ablation import runs as ablation_runs
from skyclear.restore.ablation.plan import plan_of
from skyclear.restore.config import ConfigError, override, preset
from skyclear.restore.nn import F2DNet
from skyclear.restore.train import TrainingInterrupted, train

#: Seconds of CPU per run: 32-pixel crops, two steps, one validation on two samples.
QUICK = [
    "steps=2",
    "data.crop=32",
    "data.batch_size=4",
    "data.workers=0",
    "data.val_samples=2",
    "data.grid_samples=0",
    "optim.warmup_steps=1",
    "device=cpu",
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _parameters(config: Any) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in F2DNet(config.model).parameters())


def test_variants_map_to_their_configs() -> None:
    configs = variant_configs("tiny", ["steps=7"], DEFAULT_VARIANTS)
    tiny = preset("tiny")
    assert list(configs) == list(DEFAULT_VARIANTS)
    fm, stochastic, experts = configs["fm"], configs["stochastic"], configs["experts"]
    assert fm.transport.b == 0 and not fm.model.experts
    assert stochastic.transport.b == tiny.transport.b == 0.5 and not stochastic.model.experts
    assert experts.model.experts and experts.model.routing == "pixel"
    assert experts.model.gate == "none"
    for gate in ("sigmoid", "softmax"):
        full = configs[f"gate_{gate}"].model
        assert full.experts and full.routing == "pixel" and full.gate == gate
    image = configs["image"].model
    assert image.experts and image.routing == "image" and image.gate == tiny.model.gate
    wide = configs["wide"]
    assert wide.model.widen and not wide.model.experts and wide.transport.b == 0.5
    # The capacity control matches the full model's parameters; the plain backbone does not.
    full = _parameters(configs["gate_sigmoid"])
    assert abs(_parameters(wide) - full) <= 0.1 * full
    assert _parameters(stochastic) < 0.9 * full
    # The same data, crops and budget for every variant.
    for config in configs.values():
        assert config.steps == 7 and config.data == tiny.data and config.optim == tiny.optim
    # `gate` is the full model with the preset's gate, whatever the caller set.
    assert variant_configs("tiny", [], ["gate"])["gate"].model == configs["gate_sigmoid"].model
    softmax = variant_configs("tiny", ["model.gate=softmax"], ["gate", "image"])
    assert softmax["gate"].model.gate == softmax["image"].model.gate == "softmax"


def test_variants_that_coincide_or_do_not_exist_are_refused() -> None:
    with pytest.raises(ConfigError, match="gate and gate_sigmoid are the same config"):
        variant_configs("tiny", [], ["gate", "gate_sigmoid"])
    with pytest.raises(ConfigError, match="fm and stochastic are the same config"):
        variant_configs("tiny", ["transport.b=0"], ["fm", "stochastic"])
    with pytest.raises(ConfigError, match="unknown variant 'huge'"):
        variant_configs("tiny", [], ["fm", "huge"])
    with pytest.raises(ConfigError, match="unknown config"):
        variant_configs("tiny_wide", [], ["fm"])


def test_mean_std_over_seeds_leaves_undefined_scores_out() -> None:
    stats = mean_std([1.0, 3.0, None, math.nan])
    assert stats["mean"] == 2.0 and stats["n"] == 2
    assert stats["std"] == pytest.approx(math.sqrt(2.0))  # the sample deviation, n - 1
    one = mean_std([5.0])
    assert one["mean"] == 5.0 and math.isnan(one["std"])
    assert math.isnan(mean_std([None])["mean"])


class _Spy:
    """Counts the calls of ``train`` and ``evaluate_checkpoint`` inside the ablation."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.trained: list[tuple[Path, bool]] = []
        self.scored: list[int] = []
        train_, evaluate_ = ablation_runs.train, ablation_runs.evaluate_checkpoint

        def counted_train(config: Any, data: Any, out: Any, resume: bool = False, **kw: Any) -> Any:
            self.trained.append((Path(out), resume))
            return train_(config, data, out, resume=resume, **kw)

        def counted_evaluate(*args: Any, **kw: Any) -> Any:
            self.scored.append(kw["steps"])
            return evaluate_(*args, **kw)

        monkeypatch.setattr(ablation_runs, "train", counted_train)
        monkeypatch.setattr(ablation_runs, "evaluate_checkpoint", counted_evaluate)

    def reset(self) -> None:
        self.trained.clear()
        self.scored.clear()


def _ablate(store: Path, out: Path, **options: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "changes": QUICK,
        "variants": ["fm", "gate_sigmoid"],
        "nfe": [1, 2],
        "latency_side": 32,
    }
    return run_ablation(store, out, "tiny", 1, **{**arguments, **options})


def test_ablation_end_to_end_then_nothing_redone(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = _Spy(monkeypatch)
    out = tmp_path / "ablation"
    events: list[str] = []
    _ablate(store, out, command="restore ablate ...", progress=lambda e, r: events.append(e))
    assert [folder.name for folder, _ in spy.trained] == ["seed_0", "seed_0"]
    assert sorted(spy.scored) == [1, 1, 2, 2] and events == ["run", "done", "run", "done"]

    document = json.loads((out / "ablation.json").read_text())
    assert document["format"] == "skyclear.ablation/1" and document["complete"]
    for key in ("command", "data", "config", "steps", "seeds", "crop", "nfe", "machine"):
        assert key in document, key
    assert document["steps"] == 2 and document["crop"] == 32 and document["nfe"] == [1, 2]
    assert {"cpu", "gpu", "torch"} <= set(document["machine"])
    assert set(document["runs"]) == set(document["summary"]) == {"fm", "gate_sigmoid"}
    run = document["runs"]["gate_sigmoid"]["0"]
    assert run["checkpoint"] == "last.pt"  # the budget's end, never chosen on the test split
    assert run["step"] == 2 and run["parameters"] > document["runs"]["fm"]["0"]["parameters"]
    assert run["latency"]["seconds"] > 0 and run["train_seconds"] > 0
    rows = run["nfe"]["2"]["rows"]
    assert {"single", "pair", "triple", "all"} <= set(rows)
    assert rows["all"]["mask_mae"] is not None and rows["all"]["presence_accuracy"] is not None
    fm = document["summary"]["fm"]["nfe"]["1"]["all"]
    assert fm["psnr"]["mean"] is not None and fm["psnr"]["n"] == 1
    for routing in ("selectivity", "mask_mae", "presence_accuracy"):
        assert fm[routing]["mean"] is None, routing  # no experts: no routing to score
    assert set(document["summary"]["gate_sigmoid"]) >= {"parameters", "latency_seconds", "nfe"}
    text = (out / "ablation.md").read_text()
    assert "| fm | 0.089 |" in text and "| gate_sigmoid |" in text
    assert "| variant | 1 NFE | 2 NFE |" in text and "| input (untouched) |" in text

    # The same command again: every run is done, nothing is trained or scored.
    spy.reset()
    kept = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*") if p.is_file()}
    _ablate(store, out)
    assert spy.trained == [] and spy.scored == []
    assert kept == {p: p.stat().st_mtime_ns for p in kept}

    # A run whose result is gone is scored again, not trained again; the other is kept.
    (out / "runs" / "fm" / "seed_0" / RESULT_FILE).unlink()
    _ablate(store, out)
    assert spy.trained == [] and sorted(spy.scored) == [1, 2]
    assert (out / "runs" / "fm" / "seed_0" / RESULT_FILE).is_file()
    # An NFE added later is scored for every run, the others kept.
    spy.reset()
    document = _ablate(store, out, nfe=[1, 2, 4])
    assert spy.trained == [] and spy.scored == [4, 4]
    assert set(document["runs"]["fm"]["0"]["nfe"]) == {"1", "2", "4"}
    # A result scored on another checkpoint (best.pt, chosen on the test split) is kept
    # where that was the same file as last.pt, and scored again where it was not.
    path = out / "runs" / "fm" / "seed_0" / RESULT_FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), "checkpoint": "best.pt"}))
    spy.reset()
    events.clear()
    document = _ablate(store, out, nfe=[1, 2, 4], progress=lambda e, r: events.append(e))
    assert spy.trained == [] and spy.scored == []
    assert events == ["done", "done"]  # relabelled, not run: both reported done before
    assert document["runs"]["fm"]["0"]["checkpoint"] == "last.pt"
    other = {"checkpoint": "best.pt", "checkpoint_digest": "0" * 16}
    path.write_text(json.dumps({**json.loads(path.read_text()), **other}))
    events.clear()
    document = _ablate(store, out, nfe=[1, 2, 4], progress=lambda e, r: events.append(e))
    assert spy.trained == [] and sorted(spy.scored) == [1, 2, 4]
    assert events == ["run", "done", "done"]  # reported as run, the other as done before
    assert document["runs"]["fm"]["0"]["checkpoint"] == "last.pt"
    # Retimed: every run timed again, nothing trained or scored; a new side is timed anew.
    spy.reset()
    timed = {v: document["runs"][v]["0"]["latency"] for v in ("fm", "gate_sigmoid")}
    document = _ablate(store, out, nfe=[1, 2, 4], retime=True)
    assert spy.trained == [] and spy.scored == []
    for variant, latency in timed.items():
        assert document["runs"][variant]["0"]["latency"] != latency, variant
    events.clear()
    document = _ablate(
        store, out, nfe=[1, 2, 4], latency_side=16, progress=lambda e, r: events.append(e)
    )
    assert spy.trained == [] and spy.scored == []
    assert document["runs"]["fm"]["0"]["latency"]["side"] == 16
    assert events == ["run", "done", "run", "done"]  # timed anew: not "done before"


def test_a_run_stopped_in_training_resumes_from_its_last_checkpoint(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "ablation"

    def stopped_after_one_step(config: Any, data: Any, run: Any, **kw: Any) -> Any:
        train(replace(config, steps=1), data, run, **kw)  # last.pt at step 1, then a signal
        raise TrainingInterrupted(signal.SIGTERM, 1)

    monkeypatch.setattr(ablation_runs, "train", stopped_after_one_step)
    with pytest.raises(TrainingInterrupted):
        _ablate(store, out, variants=["fm"], nfe=[1])
    monkeypatch.undo()
    spy = _Spy(monkeypatch)
    document = _ablate(store, out, variants=["fm"], nfe=[1])
    assert spy.trained == [(out / "runs" / "fm" / "seed_0", True)]
    assert document["runs"]["fm"]["0"]["step"] == 2


def test_an_out_holding_another_ablation_or_other_files_is_refused(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = _Spy(monkeypatch)
    out = tmp_path / "ablation"
    out.mkdir()
    longer = plan_of(store, "tiny", override(preset("tiny"), [*QUICK, "steps=3"]))
    (out / PLAN_FILE).write_text(json.dumps(longer))
    with pytest.raises(PlanMismatchError, match=r"holds another ablation.*steps: 3 there, 2 here"):
        _ablate(store, out)
    with pytest.raises(PlanMismatchError, match="config: 'tiny' there, 'small' here"):
        run_ablation(store, out, "small", 1, [*QUICK, "steps=3"], ["fm"])
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not a skyclear ablation folder"):
        _ablate(store, foreign)
    with pytest.raises(OutputError, match="lies inside the input"):
        _ablate(store, store / "ablation")
    assert spy.trained == [] and sorted(p.name for p in out.iterdir()) == [PLAN_FILE]
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


def test_the_plan_leaves_out_workers_device_and_seed(store: Path) -> None:
    plan = plan_of(store, "tiny", override(preset("tiny"), QUICK))
    faster = [*QUICK, "data.workers=3", "device=auto", "seed=9"]
    assert plan_of(store, "tiny", override(preset("tiny"), faster)) == plan
    assert plan_of(store, "tiny", override(preset("tiny"), [*QUICK, "optim.lr=0.01"])) != plan
