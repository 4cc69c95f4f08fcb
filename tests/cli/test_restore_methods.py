"""Every method through the same commands: train, eval and run read the method the
checkpoint records, and refuse another's."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from skyclear.cli.restore import main
from skyclear.restore.checkpoint import load_checkpoint, train_config_of
from skyclear.restore.inference import Restorer

from .test_restore_cli import QUICK


@pytest.mark.parametrize(
    ("method", "nfe"), [("irsde", 100), ("irflow", 4), ("resflow", 4), ("darcot", 2)]
)
def test_a_method_trains_evaluates_and_restores_at_its_own_nfe(
    store: Path, tmp_path: Path, method: str, nfe: int
) -> None:
    runner = CliRunner()
    run = tmp_path / "run"
    quick = [*QUICK, "--set", "data.val_samples=1"]
    trained = runner.invoke(
        main, ["train", "--data", str(store), "--out", str(run), "--method", method, *quick]
    )
    assert trained.exit_code == 0, trained.output
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    steps = [record for record in log if record["kind"] == "train"]
    assert all(torch.isfinite(torch.tensor(record["loss"])) for record in steps)
    if method == "irflow":
        assert all(record["consistency"] > 0 for record in steps)
    if method == "darcot":  # both players logged; pairs: the L1 term is on
        assert all(record["paired"] > 0 and record["penalty"] >= 0 for record in steps)
        assert all(math.isfinite(record["critic"]) for record in steps)
    last = run / "last.pt"
    assert train_config_of(load_checkpoint(last), last).method == method

    restorer = Restorer.from_checkpoint(last, device="cpu")
    calls: list[int] = []
    model = restorer.model
    forward = model.forward

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return forward(*args, **kwargs)  # type: ignore[arg-type]

    model.forward = counted  # type: ignore[method-assign]
    restored, _ = restorer(torch.rand(1, 3, 32, 32), generator=torch.Generator().manual_seed(0))
    assert len(calls) == nfe and restored.shape == (1, 3, 32, 32)

    report = tmp_path / "e"
    evaluated = runner.invoke(
        main, ["eval", "--ckpt", str(last), "--data", str(store), "--out", str(report)]
    )
    assert evaluated.exit_code == 0, evaluated.output
    document = json.loads((report / "eval.json").read_text())
    assert document["method"] == method and document["steps"] == nfe

    refused = runner.invoke(
        main, ["eval", "--ckpt", str(last), "--data", str(store), "--method", "f2d"]
    )
    assert refused.exit_code == 2 and f"trained as {method}" in refused.output
    assert "sampled as f2d" in refused.output


def test_an_unknown_method_is_refused_with_the_list(store: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["train", "--data", str(store), "--out", str(tmp_path / "r"), "--method", "ddpm", *QUICK],
    )
    assert result.exit_code == 2
    assert "f2d, fm, irsde, irflow, resflow, darcot" in result.output
    assert not (tmp_path / "r").exists()


def test_resume_cannot_switch_the_method(store: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    run = tmp_path / "run"
    assert (
        runner.invoke(main, ["train", "--data", str(store), "--out", str(run), *QUICK]).exit_code
        == 0
    )
    switched = runner.invoke(
        main, ["train", "--data", str(store), "--out", str(run), "--resume", "--method", "fm"]
    )
    assert switched.exit_code == 2 and "cannot switch it to fm" in switched.output
