"""Run folders and report folders: skyclear reuses only its own, never the data's."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from skyclear.cli.restore import main
from skyclear.degrade.outputs import OutputError
from skyclear.restore.evaluate import Evaluation
from skyclear.restore.report import REPORT_FORMAT, write_report
from skyclear.restore.train import train
from skyclear.restore.train.folder import RUN_FORMAT, RunFolder, is_run_folder

from .runs import quick_config


def _tree(path: Path) -> dict[str, str]:
    return {
        str(item.relative_to(path)): hashlib.sha1(item.read_bytes()).hexdigest()
        for item in sorted(path.rglob("*"))
        if item.is_file()
    }


def _foreign(folder: Path) -> dict[str, str]:
    """A folder of someone's files, under the names a run and a report write."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("config.yaml", "log.jsonl", "eval.json", "eval.md", "notes.txt"):
        (folder / name).write_text(f"someone's {name}")
    return _tree(folder)


def test_a_run_never_writes_into_a_foreign_folder(store: Path, tmp_path: Path) -> None:
    from skyclear.restore.checkpoint import CheckpointError

    before = _foreign(tmp_path / "mine")
    with pytest.raises(OutputError, match="not a skyclear run folder"):
        train(quick_config("steps=1"), store, tmp_path / "mine")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        train(None, store, tmp_path / "mine", resume=True)
    assert _tree(tmp_path / "mine") == before


@pytest.mark.parametrize(
    ("out", "reason"),
    [("d.zarr", "is the input"), (".", "holds the input"), ("d.zarr/run", "lies inside")],
)
def test_a_run_keeps_clear_of_its_data(store: Path, out: str, reason: str) -> None:
    before = _tree(store.parent)
    with pytest.raises(OutputError, match=reason):
        train(quick_config("steps=1"), store, store.parent / out)
    assert _tree(store.parent) == before


def test_a_run_through_a_symlink_into_its_data_is_refused(store: Path, tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to(store)
    with pytest.raises(OutputError, match="lies inside the input"):
        train(quick_config("steps=1"), tmp_path / "link", store / "run")
    with pytest.raises(OutputError, match="is the input"):
        train(quick_config("steps=1"), store, tmp_path / "link")


def test_own_run_folders_are_marked_reused_and_resumed(store: Path, tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run")
    (tmp_path / "run").mkdir()  # an empty folder is fine
    train(quick_config("steps=1", "val_every=1", "data.grid_samples=0"), store, run.root)
    assert is_run_folder(run.root)
    assert json.loads(run.marker.read_text()) == {"format": RUN_FORMAT}
    # A person's file beside the run's is left alone; a run made before the marker existed
    # is still resumed (its checkpoint says whose it is), and marked.
    (run.root / "notes.txt").write_text("mine")
    run.marker.unlink()
    train(None, store, run.root, resume=True)
    assert is_run_folder(run.root) and (run.root / "notes.txt").read_text() == "mine"
    # A run of ours stopped before its first checkpoint is started anew.
    run.last.unlink()
    run.best.unlink()
    train(quick_config("steps=1", "val_every=1", "data.grid_samples=0"), store, run.root)
    assert run.last.is_file() and (run.root / "notes.txt").read_text() == "mine"


def _evaluation() -> Evaluation:
    from skyclear.restore.evaluate import summarize

    records = [{"tier": "low", "input_psnr": 20.0, "psnr": 30.0, "mask_mae": math.nan}]
    tiles = [np.zeros((8, 8, 3), np.uint8)] * 7
    return Evaluation(summarize(records), records, {"low": tiles})


def test_reports_replace_only_reports(tmp_path: Path) -> None:
    report = tmp_path / "report"
    write_report(_evaluation(), {"split": "test"}, report)
    assert json.loads((report / "eval.json").read_text())["format"] == REPORT_FORMAT
    write_report(_evaluation(), {"split": "train"}, report)  # its own: replaced
    assert json.loads((report / "eval.json").read_text())["split"] == "train"
    # A report written before eval.json had its format is still known by its shape.
    legacy = json.loads((report / "eval.json").read_text())
    del legacy["format"]
    (report / "eval.json").write_text(json.dumps(legacy))
    write_report(_evaluation(), {"split": "test"}, report)
    (report / "eval.json").write_text(json.dumps({"format": "another.tool/1", "rows": []}))
    with pytest.raises(OutputError, match="not a skyclear report folder"):
        write_report(_evaluation(), {"split": "test"}, report)
    before = _foreign(tmp_path / "mine")
    with pytest.raises(OutputError, match="not a skyclear report folder"):
        write_report(_evaluation(), {"split": "test"}, tmp_path / "mine")
    assert _tree(tmp_path / "mine") == before
    (tmp_path / "data").mkdir()
    with pytest.raises(OutputError, match="lies inside the input"):
        write_report(_evaluation(), {}, tmp_path / "data" / "e", inputs=[tmp_path / "data"])
    assert not (tmp_path / "data" / "e").exists()


def test_cli_refuses_before_training_or_evaluating(store: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    before = _foreign(tmp_path / "mine")
    ckpt = tmp_path / "best.pt"
    ckpt.write_bytes(b"never read: the refusal comes first")
    cases = [
        (["train", "--data", str(store), "--out", str(tmp_path / "mine")], "not a skyclear run"),
        (["train", "--data", str(store), "--out", str(store)], "is the input"),
        (["train", "--data", str(store), "--out", str(store.parent)], "holds the input"),
        (["eval", "--ckpt", str(ckpt), "--data", str(store), "--out", str(tmp_path / "mine")],
         "not a skyclear report folder"),
        (["eval", "--ckpt", str(ckpt), "--data", str(store), "--out", str(store / "e")],
         "lies inside the input"),
    ]  # fmt: skip
    for arguments, message in cases:
        result = runner.invoke(main, arguments)
        assert result.exit_code == 2, (arguments, result.output)
        assert message in result.output, (arguments, result.output)
    assert _tree(tmp_path / "mine") == before and not (store / "e").exists()
