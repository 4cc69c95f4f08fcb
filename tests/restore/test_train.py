"""Training end to end on the CPU: learning, exact resume, signals, DDP, the guard."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from skyclear.degrade.names import TIERS
from skyclear.restore.checkpoint import load_checkpoint
from skyclear.restore.config import override
from skyclear.restore.evaluate import evaluate_checkpoint
from skyclear.restore.inference import Restorer
from skyclear.restore.train import NonFiniteError, TrainingInterrupted, train

from .runs import quick_config

TRAINING_TIERS = ("low", "low_haze")


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_tiny_run_learns_and_beats_the_input(store: Path, tmp_path: Path) -> None:
    config = quick_config(
        "steps=40",
        "data.batch_size=8",
        f"data.tiers={list(TRAINING_TIERS)}",
        "optim.lr=3e-3",
        "optim.warmup_steps=5",
        "optim.ema_decay=0.9",
        "log_every=5",
        "val_every=20",
        "ckpt_every=20",
    )
    result = train(config, store, tmp_path / "run")
    assert result["step"] == 40
    losses = [r["residual"] for r in _log(tmp_path / "run") if r["kind"] == "train"]
    assert sum(losses[-3:]) / 3 < 0.5 * sum(losses[:3]) / 3
    evaluation = evaluate_checkpoint(tmp_path / "run" / "best.pt", store, split="train")
    scores = {row.name: row.scores for row in evaluation.rows}
    assert list(evaluation.examples) == list(TIERS)  # one example per tier, in order
    for tier in TRAINING_TIERS:
        assert scores[tier]["psnr"] > scores[tier]["input_psnr"] + 3.0, tier
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} >= {"config.yaml", "last.pt", "best.pt", "log.jsonl"}
    assert len(list((run / "val").glob("step_*.png"))) == 2


@pytest.mark.parametrize("synthesis", ["loader", "device"])
def test_resume_equals_uninterrupted_training(
    store: Path, clean_photos: Path, tmp_path: Path, synthesis: str
) -> None:
    """From a store, and from clean photos degraded on the device inside each step."""
    config = quick_config("steps=6", "data.workers=1", f"data.synthesis={synthesis}",
                          "data.val_crop=32")  # fmt: skip
    data = store if synthesis == "loader" else clean_photos
    train(config, data, tmp_path / "whole")

    def stop_at_three(event: str, record: dict) -> None:
        if event == "checkpoint" and record["step"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(TrainingInterrupted) as stopped:
        train(config, data, tmp_path / "halves", report=stop_at_three)
    assert stopped.value.step == 3 and stopped.value.signal_number == signal.SIGTERM
    train(config, data, tmp_path / "halves", resume=True)

    one = load_checkpoint(tmp_path / "whole" / "last.pt")
    two = load_checkpoint(tmp_path / "halves" / "last.pt")
    assert one["step"] == two["step"] == 6
    for key in ("model", "ema"):
        for name, value in one[key].items():
            assert torch.equal(value, two[key][name]), (key, name)
    for state_one, state_two in zip(
        one["optimizer"]["state"].values(), two["optimizer"]["state"].values(), strict=True
    ):
        assert all(torch.equal(state_one[k], state_two[k]) for k in state_one)
    records = [(r["kind"], r["step"]) for r in _log(tmp_path / "halves")]
    assert records == [(r["kind"], r["step"]) for r in _log(tmp_path / "whole")]


def test_synthesis_on_the_device_trains_on_clean_photos_only(
    store: Path, clean_photos: Path, tmp_path: Path
) -> None:
    config = quick_config("steps=2", "data.synthesis=device", "data.val_crop=32")
    with pytest.raises(ValueError, match="a folder of clean photos, and this is a make-cdd11"):
        train(config, store, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    events: list[tuple[str, dict]] = []
    train(config, clean_photos, tmp_path / "run", report=lambda *event: events.append(event))
    assert events[0][0] == "start" and events[0][1]["synthesis_on_device"]
    assert (tmp_path / "run" / "last.pt").exists()


def test_existing_run_is_not_overwritten(store: Path, tmp_path: Path) -> None:
    train(quick_config("steps=2"), store, tmp_path / "run")
    before = (tmp_path / "run" / "last.pt").read_bytes()
    with pytest.raises(FileExistsError, match="already holds a run"):
        train(quick_config("steps=2"), store, tmp_path / "run")
    assert (tmp_path / "run" / "last.pt").read_bytes() == before


def test_non_finite_gradients_stop_with_a_clear_error(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import skyclear.restore.train.loop as loop

    real = loop.restoration_loss

    def poisoned(*args: object, **kwargs: object) -> dict[str, torch.Tensor]:
        terms = real(*args, **kwargs)  # type: ignore[arg-type]
        terms["loss"] = terms["loss"] * float("nan")
        return terms

    monkeypatch.setattr(loop, "restoration_loss", poisoned)
    with pytest.raises(NonFiniteError, match="not finite in 3 steps in a row"):
        train(quick_config("optim.max_bad_steps=3"), store, tmp_path / "run")
    payload = load_checkpoint(tmp_path / "run" / "last.pt")
    assert payload["step"] == 2  # skipped steps count, the weights stay the initial ones


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "skyclear.cli.restore", *args]


def _environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.mark.slow
@pytest.mark.parametrize(("number", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_saves_a_loadable_checkpoint(
    store: Path, tmp_path: Path, number: signal.Signals, status: int
) -> None:
    run = tmp_path / "run"
    process = subprocess.Popen(
        _command(
            "train",
            "--data",
            str(store),
            "--out",
            str(run),
            "--steps",
            "100000",
            "--crop",
            "32",
            "--batch-size",
            "2",
            "--workers",
            "1",
            "--device",
            "cpu",
            "--set",
            "val_every=100000",
            "--set",
            "ckpt_every=100000",
            "--set",
            "log_every=1",
        ),
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not (run / "log.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (run / "log.jsonl").exists(), process.communicate()
    os.killpg(process.pid, number)  # the loader worker too, as Ctrl-C and torchrun do
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == status, stderr
    assert f"stopped by {number.name}" in stderr and "--resume" in stderr
    payload = load_checkpoint(run / "last.pt")
    assert payload["step"] >= 1
    assert not list(run.glob(".*.tmp"))


@pytest.mark.slow
@pytest.mark.parametrize("method", ["f2d", "darcot"])  # darcot: two passes and a critic
def test_two_process_ddp_on_gloo(store: Path, tmp_path: Path, method: str) -> None:
    run = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "skyclear.cli.restore",
        "train", "--data", str(store), "--out", str(run), "--steps", "4", "--crop", "32",
        "--batch-size", "4", "--workers", "0", "--device", "cpu", "--method", method,
        "--set", "val_every=4", "--set", "log_every=2", "--set", "data.val_samples=2",
    ]  # fmt: skip
    done = subprocess.run(command, env=_environment(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    payload = load_checkpoint(run / "last.pt")
    assert payload["step"] == 4
    assert [r["step"] for r in _log(run) if r["kind"] == "train"] == [2, 4]
    assert done.stdout.count("trained 4 steps") == 1  # one process reports


@pytest.mark.slow
@pytest.mark.parametrize("synthesis", ["loader", "device"])
def test_two_processes_train_as_one_with_the_same_global_batch(
    store: Path, clean_photos: Path, tmp_path: Path, synthesis: str
) -> None:
    """DDP on gloo under torchrun: the ranks end with the same weights (checked inside the
    run, which fails otherwise), and those equal a one-process run of the same global batch:
    each sample's crop, degradation (on the device, from its own seed) and transport noise
    depend on its place in the batch, not on the process that draws it."""
    data = store if synthesis == "loader" else clean_photos
    common = [
        "-m", "skyclear.cli.restore", "train", "--data", str(data), "--steps", "3",
        "--crop", "32", "--batch-size", "4", "--workers", "0", "--device", "cpu",
        "--set", "val_every=3", "--set", "data.val_samples=2", "--set", "optim.warmup_steps=1",
        "--set", "data.val_crop=32", "--synthesis", synthesis,
    ]  # fmt: skip
    runs = {"two": tmp_path / "two", "one": tmp_path / "one"}
    launch = {
        "two": [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node", "2"],
        "one": [sys.executable],
    }  # fmt: skip
    for name, run in runs.items():
        command = [*launch[name], *common, "--out", str(run)]
        done = subprocess.run(command, env=_environment(), capture_output=True, text=True,
                              timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
    two, one = (load_checkpoint(run / "last.pt") for run in runs.values())
    assert two["step"] == one["step"] == 3
    for key, value in one["model"].items():
        torch.testing.assert_close(two["model"][key], value, atol=1e-5, rtol=1e-4, msg=key)


@pytest.mark.cuda
def test_training_on_cuda_with_bf16_and_channels_last(store: Path, tmp_path: Path) -> None:
    config = quick_config("device=cuda", "data.workers=1")
    assert config.amp == "auto" and config.channels_last == "auto"  # bf16, NHWC on CUDA
    result = train(config, store, tmp_path / "run")
    assert result["step"] == 6 and math.isfinite(result["best"])
    restorer = Restorer.from_checkpoint(tmp_path / "run" / "best.pt", device="cuda")
    assert restorer.bf16 and restorer.channels_last
    restored, aux = restorer(torch.rand(1, 3, 40, 56))
    assert aux.maps.device.type == "cpu"
    assert restored.device.type == "cpu" and torch.isfinite(restored).all()


class _Slow(torch.utils.data.Dataset):
    """A dataset whose items take a while, so the trainer waits on its loader."""

    def __init__(self, dataset: torch.utils.data.Dataset, seconds: float) -> None:
        self.dataset, self.seconds = dataset, seconds

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict:
        time.sleep(self.seconds)
        return self.dataset[index]


def test_a_signal_while_waiting_for_data_still_saves(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import multiprocessing
    import threading

    import skyclear.restore.train.loop as loop

    real = loop.open_dataset

    def slow(*args: object, **kwargs: object) -> torch.utils.data.Dataset:
        dataset = real(*args, **kwargs)  # type: ignore[arg-type]
        return _Slow(dataset, 0.3) if args[1] == "train" else dataset

    monkeypatch.setattr(loop, "open_dataset", slow)

    def group_signal() -> None:  # as a process-group SIGTERM would: workers, then trainer
        for worker in multiprocessing.active_children():
            os.kill(worker.pid, signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)

    def during_the_next_fetch(event: str, record: dict) -> None:
        if event == "train" and record["step"] == 2:
            threading.Timer(0.2, group_signal).start()

    config = quick_config("steps=50", "data.workers=1", "val_every=50", "ckpt_every=50")
    with pytest.raises(TrainingInterrupted) as stopped:
        train(config, store, tmp_path / "run", report=during_the_next_fetch)
    assert stopped.value.step == 2
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == 2


def test_repeated_sigterm_still_saves_and_resume_takes_new_optimizer_values(
    store: Path, tmp_path: Path
) -> None:
    def twice(event: str, record: dict) -> None:  # a scheduler's and torchrun's copies
        if event == "checkpoint" and record["step"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)

    config = quick_config()
    with pytest.raises(TrainingInterrupted):
        train(config, store, tmp_path / "run", report=twice)
    changed = override(config, ["optim.betas=[0.8, 0.9]", "optim.weight_decay=0.0"])
    train(changed, store, tmp_path / "run", resume=True)
    payload = load_checkpoint(tmp_path / "run" / "last.pt")
    group = payload["optimizer"]["param_groups"][0]
    assert payload["step"] == 6 and tuple(group["betas"]) == (0.8, 0.9)
    assert group["weight_decay"] == 0.0
    assert "- 0.8" in (tmp_path / "run" / "config.yaml").read_text()


def test_processes_whose_weights_differ_stop_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """The end-of-run check of a process group, with the gathering stood in for: equal
    digests pass, a rank whose weights moved apart raises."""
    from types import SimpleNamespace

    from skyclear.restore.train.distributed import Processes
    from skyclear.restore.train.loop import _Trainer

    trainer = SimpleNamespace(
        model=torch.nn.Linear(3, 2),
        processes=Processes(rank=0, world=2),
        state=SimpleNamespace(step=7),
    )
    offset = {"value": 0.0}

    def gather(into: list[torch.Tensor], digest: torch.Tensor) -> None:
        into[0].copy_(digest)
        into[1].copy_(digest + offset["value"])

    monkeypatch.setattr(torch.distributed, "all_gather", gather)
    _Trainer._check_ranks_agree(trainer)  # type: ignore[arg-type]
    offset["value"] = 1e-9
    with pytest.raises(RuntimeError, match="weights differ after step 7"):
        _Trainer._check_ranks_agree(trainer)  # type: ignore[arg-type]
