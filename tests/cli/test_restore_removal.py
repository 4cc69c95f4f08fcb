"""Remove only what you choose: restore run and eval with --remove/--keep, training on it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from skyclear.cli.restore import main
from skyclear.restore.checkpoint import load_checkpoint, save_checkpoint
from skyclear.restore.config import config_to_dict, override, preset
from skyclear.restore.nn import F2DNet


def _checkpoint(root: Path, removal: bool) -> Path:
    torch.manual_seed(0)
    sets = ["data.partial=0.3", "model.removal=true"] if removal else []
    config = override(preset("tiny"), sets)
    weights = F2DNet(config.model).state_dict()
    path = root / ("removal.pt" if removal else "full.pt")
    save_checkpoint({"config": config_to_dict(config), "step": 0, "model": weights,
                     "ema": weights}, path)  # fmt: skip
    return path


def _invoke(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(arg) for arg in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "rainy.png"
    pixels = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_bad_names_and_checkpoints_that_cannot_choose_are_refused(
    tmp_path: Path, photo: Path
) -> None:
    full, removal = _checkpoint(tmp_path, False), _checkpoint(tmp_path, True)
    code, output = _invoke("run", "--ckpt", removal, "--input", photo, "--out", tmp_path / "o",
                           "--remove", "rain,fog")  # fmt: skip
    assert code == 2 and "low, haze, rain, snow" in output
    code, output = _invoke("run", "--ckpt", full, "--input", photo, "--out", tmp_path / "o",
                           "--remove", "rain")  # fmt: skip
    assert code == 2 and "without remove-sets" in output
    code, output = _invoke("run", "--ckpt", removal, "--input", photo, "--out", tmp_path / "o",
                           "--remove", "rain", "--keep", "haze")  # fmt: skip
    assert code == 2 and "exclude each other" in output
    assert not (tmp_path / "o").exists()


def test_keep_is_remove_the_other_way_round(tmp_path: Path, photo: Path) -> None:
    removal = _checkpoint(tmp_path, True)
    with torch.no_grad():  # make the choice matter: the experts and the embedding act
        payload = load_checkpoint(removal)
        for key, value in payload["ema"].items():
            if value.is_floating_point() and not value.any():
                payload["ema"][key] = torch.randn_like(value) * 0.1
        save_checkpoint(payload, removal)
    outputs = {}
    for flag, names in (("--remove", "low,rain,snow"), ("--keep", "haze"), (None, None)):
        out = tmp_path / f"out-{flag}"
        extra = [] if flag is None else [flag, names]
        code, output = _invoke("run", "--ckpt", removal, "--input", photo, "--out", out, *extra)
        assert code == 0, output
        outputs[flag] = np.asarray(Image.open(out / "rainy.png"))
        provenance = Image.open(out / "rainy.png").info["skyclear.restore"]
        assert ('"remove"' in provenance) == (flag is not None)
    assert np.array_equal(outputs["--remove"], outputs["--keep"])
    assert not np.array_equal(outputs["--remove"], outputs[None])


@pytest.mark.parametrize("method", ["f2d", "irflow"])  # irflow: a term on part of the batch
def test_training_on_partial_targets_and_scoring_against_them(
    store: Path, tmp_path: Path, method: str
) -> None:
    run = tmp_path / "run"
    code, output = _invoke("train", "--data", store, "--out", run, "--config", "tiny",
                           "--method", method,
                           "--steps", "2", "--crop", "16", "--batch-size", "4", "--workers", "0",
                           "--set", "data.partial=0.5", "--set", "model.removal=true",
                           "--set", "val_every=2", "--set", "data.val_samples=2")  # fmt: skip
    assert code == 0, output
    config = load_checkpoint(run / "last.pt")["config"]
    assert config["model"]["removal"] is True and config["data"]["partial"] == 0.5
    if method != "f2d":
        return  # the training step is what differs; scoring is the same for every method
    code, full = _invoke("eval", "--ckpt", run / "last.pt", "--data", store)
    assert code == 0, full
    code, partial = _invoke("eval", "--ckpt", run / "last.pt", "--data", store,
                            "--remove", "haze", "--out", tmp_path / "report")  # fmt: skip
    assert code == 0, partial

    def input_psnr(table: str) -> str:  # the untouched input's score, row "all"
        rows = [line for line in table.splitlines() if line.startswith("| **all**")]
        return rows[0].split("|")[3]  # the first table; the selectivity one follows

    assert input_psnr(partial) != input_psnr(full)  # scored against the partial targets
    report = json.loads((tmp_path / "report" / "eval.json").read_text())
    assert report["remove"] == ["haze"]
