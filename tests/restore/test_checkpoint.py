"""Checkpoints: atomic writes, and loading that never runs pickled code."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from skyclear.restore.checkpoint import (
    CheckpointError,
    link_checkpoint,
    load_checkpoint,
    save_checkpoint,
    train_config_of,
)
from skyclear.restore.config import config_to_dict, preset
from skyclear.restore.inference import Restorer
from skyclear.restore.nn import F2DNet


def _payload(step: int = 0) -> dict:
    model = F2DNet(preset("tiny").model)
    state = model.state_dict()
    return {"config": config_to_dict(preset("tiny")), "step": step, "model": state, "ema": state}


def test_round_trip_and_restorer(tmp_path: Path) -> None:
    save_checkpoint(_payload(3), tmp_path / "last.pt")
    payload = load_checkpoint(tmp_path / "last.pt")
    assert payload["step"] == 3 and train_config_of(payload) == preset("tiny")
    restorer = Restorer.from_checkpoint(tmp_path / "last.pt", device="cpu")
    restored, aux = restorer(torch.rand(1, 3, 20, 28))
    assert restored.shape == (1, 3, 20, 28) and aux.maps.shape == (1, 4, 20, 28)
    with pytest.raises(TypeError, match="as_float"):
        restorer(torch.zeros(1, 3, 20, 28, dtype=torch.uint8))


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(_payload(1), path)
    before = path.read_bytes()
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        save_checkpoint({**_payload(2), "broken": lambda: None}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_link_makes_a_complete_copy(tmp_path: Path) -> None:
    save_checkpoint(_payload(4), tmp_path / "last.pt")
    link_checkpoint(tmp_path / "last.pt", tmp_path / "best.pt")
    save_checkpoint(_payload(5), tmp_path / "last.pt")  # a new file: best keeps step 4
    assert load_checkpoint(tmp_path / "best.pt")["step"] == 4


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_would_run_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({**_payload(), "format": "skyclear.restore/1", "x": _RunsCode(marker)}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError):
        Restorer.from_checkpoint(path, device="cpu")
    assert not marker.exists()


def test_foreign_and_malformed_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a skyclear restorer checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    save_checkpoint(_payload(), tmp_path / "good.pt")
    data = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "truncated.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "text.pt")
    torch.save({"format": "skyclear.restore/1", "step": 0}, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(tmp_path / "partial.pt")
    payload = _payload()
    payload["config"]["model"]["width"] = 24  # weights no longer fit the config
    save_checkpoint(payload, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="do not fit"):
        Restorer.from_checkpoint(tmp_path / "mismatch.pt", device="cpu")
