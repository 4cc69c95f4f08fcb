"""`restore ablate` as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from skyclear.cli.restore import main

QUICK = [
    "--steps", "2", "--seeds", "1", "--crop", "32", "--batch-size", "4", "--workers", "0",
    "--set", "device=cpu", "--set", "data.val_samples=2", "--set", "data.grid_samples=0",
    "--set", "optim.warmup_steps=1", "--latency-side", "32",
]  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_help_explains_the_ladder() -> None:
    assert "ablate" in CliRunner().invoke(main, ["--help"]).output
    result = CliRunner().invoke(main, ["ablate", "--help"])
    assert result.exit_code == 0
    for variant in ("fm", "stochastic", "experts", "gate_sigmoid", "gate_softmax", "image", "wide"):
        assert f"  {variant} " in result.output, variant


def test_ablate_writes_the_tables_then_continues(store: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "ablation"
    command = ["ablate", "--data", str(store), "--out", str(out), *QUICK]
    first = runner.invoke(main, [*command, "--variants", "fm", "--nfe", "1"])
    assert first.exit_code == 0, first.output
    assert "[1/1] fm seed 0: running in" in first.output
    assert "[1/1] fm seed 0: done in" in first.output and "at 1 NFE" in first.output
    document = json.loads((out / "ablation.json").read_text())
    assert document["variants"] == ["fm"] and document["nfe"] == [1] and document["complete"]
    assert document["command"].startswith(f"restore ablate --data {store} --out {out} ")
    assert document["command"].endswith("--nfe 1 --variants fm --latency-side 32")
    assert "| fm |" in (out / "ablation.md").read_text()

    again = runner.invoke(main, [*command, "--variants", "fm", "--nfe", "1"])
    assert again.exit_code == 0, again.output
    assert "[1/1] fm seed 0: done before" in again.output and "running" not in again.output

    result = out / "runs" / "fm" / "seed_0" / "ablation_eval.json"
    before = json.loads(result.read_text())
    retimed = runner.invoke(main, [*command, "--variants", "fm", "--nfe", "1", "--retime"])
    assert retimed.exit_code == 0, retimed.output
    assert "done before" in retimed.output and "one step timed again:" in retimed.output
    after = json.loads(result.read_text())
    assert after["latency"] != before["latency"] and after["nfe"] == before["nfe"]
    assert "--retime" not in json.loads((out / "ablation.json").read_text())["command"]


def test_usage_errors_exit_2_and_train_nothing(store: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "ablation"
    (out / "runs").mkdir(parents=True)
    (out / "ablation_plan.json").write_text(
        json.dumps({"format": "skyclear.ablation-plan/1", "data": "/elsewhere", "config": "tiny"})
    )
    base = ["ablate", "--data", str(store), "--out", str(out), *QUICK]
    cases = [
        ([*base, "--nfe", "1", "2"], "give several values as --nfe 1,2,4"),
        ([*base, "--nfe", "0"], "network evaluations >= 1"),
        ([*base, "--variants", "fm,huge"], "unknown variant 'huge'"),
        ([*base, "--variants", "gate,gate_sigmoid"], "are the same config here"),
        ([*base, "--set", "optim.lrr=1"], "unknown key 'optim.lrr'"),
        (base, "holds another ablation"),
    ]
    for arguments, message in cases:
        result = runner.invoke(main, arguments)
        assert result.exit_code == 2, (arguments, result.output)
        assert message in " ".join(result.output.split()), (arguments, result.output)
    assert list((out / "runs").iterdir()) == []
