"""`restore train` and `restore eval` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from skyclear.cli.restore import main

QUICK = [
    "--steps", "2", "--crop", "32", "--batch-size", "2", "--workers", "0", "--device", "cpu",
    "--set", "val_every=2", "--set", "data.val_samples=2", "--set", "optim.warmup_steps=1",
]  # fmt: skip


def test_help_lists_the_commands() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("train", "eval", "run"):
        assert command in result.output


def test_train_then_eval(store: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    run = tmp_path / "run"
    trained = runner.invoke(main, ["train", "--data", str(store), "--out", str(run), *QUICK])
    assert trained.exit_code == 0, trained.output
    assert "trained 2 steps" in trained.output and (run / "best.pt").is_file()
    assert "PSNR" in trained.output  # the validation line

    evaluated = runner.invoke(
        main,
        [
            "eval",
            "--ckpt",
            str(run / "best.pt"),
            "--data",
            str(store),
            "--out",
            str(tmp_path / "e"),
        ],
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert "| input (untouched) |" in evaluated.output and "| **all** |" in evaluated.output
    document = json.loads((tmp_path / "e" / "eval.json").read_text())
    assert document["split"] == "test" and document["rows"][-1]["name"] == "all"
    assert (tmp_path / "e" / "eval.md").is_file()


def test_usage_errors_exit_2_and_touch_nothing(store: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    run = tmp_path / "run"
    assert (
        runner.invoke(main, ["train", "--data", str(store), "--out", str(run), *QUICK]).exit_code
        == 0
    )
    before = (run / "last.pt").read_bytes()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("not a photo")
    cases = [
        (["train", "--data", str(store), "--out", str(run), *QUICK], "already holds a run"),
        (["train", "--data", str(store), "--out", str(run), "--resume", "--config", "small"],
         "--config cannot replace it"),
        (["train", "--data", str(store), "--out", str(tmp_path / "b"), "--set", "optim.lrr=1"],
         "unknown key 'optim.lrr'"),
        (["train", "--data", str(store), "--out", str(tmp_path / "c"), "--config", "huge"],
         "unknown config 'huge'"),
        (["train", "--data", str(tmp_path / "notes"), "--out", str(tmp_path / "d"), "--crop",
          "16"], "no usable photo"),
        (["train", "--data", str(tmp_path), "--out", str(tmp_path / "d")], "lies inside the input"),
        (["train", "--data", str(store), "--out", str(tmp_path / "e"), "--synthesis", "device"],
         "degrades a folder of clean photos"),
        (["train", "--data", str(store), "--out", str(tmp_path / "e"), "--synthesis", "gpu"],
         "'gpu' is not one of 'loader', 'device'"),
        (["eval", "--ckpt", str(store / "zarr.json"), "--data", str(store)], "not a readable"),
    ]  # fmt: skip
    for arguments, message in cases:
        result = runner.invoke(main, arguments)
        assert result.exit_code == 2, (arguments, result.output)
        assert message in result.output, (arguments, result.output)
    assert (run / "last.pt").read_bytes() == before
    for name in ("b", "c", "d", "e"):
        assert not (tmp_path / name).exists(), name


def test_resume_of_a_finished_run_changes_nothing(store: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    run = tmp_path / "run"
    assert (
        runner.invoke(main, ["train", "--data", str(store), "--out", str(run), *QUICK]).exit_code
        == 0
    )
    resumed = runner.invoke(main, ["train", "--data", str(store), "--out", str(run), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "trained 2 steps" in resumed.output
    longer = ["train", "--data", str(store), "--out", str(run), "--resume", "--steps", "3"]
    extended = runner.invoke(main, longer)
    assert extended.exit_code == 0, extended.output
    assert "trained 3 steps" in extended.output


def test_train_with_synthesis_on_the_device(clean_photos: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    arguments = ["train", "--data", str(clean_photos), "--out", str(run), "--synthesis",
                 "device", *QUICK, "--set", "data.val_crop=32"]  # fmt: skip
    trained = CliRunner().invoke(main, arguments)
    assert trained.exit_code == 0, trained.output
    assert "degraded on the device in each step" in trained.output
    assert "synthesis: device" in (run / "config.yaml").read_text()
