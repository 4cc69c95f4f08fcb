"""``restore run`` and what is already there, photos too large, and memory running out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skyclear.restore import memory
from skyclear.restore.batch import PROVENANCE_KEY, provenance_of
from skyclear.restore.checkpoint import save_checkpoint
from skyclear.restore.config import config_to_dict, preset
from skyclear.restore.inference import Restorer
from skyclear.restore.nn import F2DNet

from .test_restore_run import _invoke, _rgb


def _checkpoint(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    weights = F2DNet(preset("tiny").model).state_dict()
    config = config_to_dict(preset("tiny"))
    save_checkpoint({"config": config, "step": seed, "model": weights, "ema": weights}, path)
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("ckpts")
    return _checkpoint(folder / "a.pt", 0), _checkpoint(folder / "b.pt", 1)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for index in range(3):
        Image.fromarray(_rgb(24, 32, index)).save(src / f"p{index}.png")
    return src


def test_results_record_what_made_them_and_another_checkpoints_are_redone(
    checkpoints: tuple[Path, Path], photos: Path, tmp_path: Path
) -> None:
    first, second = checkpoints
    out = tmp_path / "out"
    args = ["--input", photos, "--out", out, "--device", "cpu", "--save-maps"]
    assert _invoke("--ckpt", first, *args)[0] == 0
    made = provenance_of(out / "p0.png")
    assert made is not None and made == provenance_of(out / "p0_maps.png")
    code, output = _invoke("--ckpt", first, *args)
    assert code == 0 and "restored 0 of 3" in output and "3 already there, kept" in output
    code, output = _invoke("--ckpt", second, *args)
    assert code == 0 and "restored 3 of 3" in output
    assert "3 made by another checkpoint or other options, redone" in output
    assert provenance_of(out / "p0.png") != made
    code, output = _invoke("--ckpt", second, *args, "--steps", "2")
    assert "3 made by another checkpoint or other options, redone" in output


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_files_no_restoration_wrote_are_never_replaced(
    checkpoints: tuple[Path, Path], photos: Path, tmp_path: Path, overwrite: list[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    mine = out / "p1.png"
    Image.fromarray(_rgb(5, 5, 9)).save(mine)
    before = mine.read_bytes()
    (out / "p2.png").symlink_to(photos / "p2.png")
    code, output = _invoke(
        "--ckpt", checkpoints[0], "--input", photos, "--out", out, "--device", "cpu", *overwrite
    )
    assert code == 1
    assert f"failed p1.png: {mine} is there and no restoration run wrote it" in output
    assert "failed p2.png:" in output and "restored 1 of 3" in output
    assert mine.read_bytes() == before and (out / "p2.png").is_symlink()
    assert provenance_of(out / "p0.png") is not None


def test_running_out_of_memory_skips_one_photo_and_says_which_tile_fits(
    checkpoints: tuple[Path, Path], photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole, calls = Restorer.__call__, []

    def allocate(self: Restorer, degraded: torch.Tensor, *args: object) -> object:
        calls.append(degraded.shape)
        if len(calls) == 1:  # the first photo in sorted order, p0.png
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate")
        return whole(self, degraded, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Restorer, "__call__", allocate)
    out = tmp_path / "out"
    code, output = _invoke(
        "--ckpt", checkpoints[0], "--input", photos, "--out", out, "--device", "cpu"
    )
    assert code == 1, output
    assert "failed p0.png: out of memory (32x24, whole need about" in output
    assert "--tile" in output and "would fit" in output
    assert "restored 2 of 3" in output and (out / "p2.png").exists()


def test_a_photo_too_large_for_the_memory_free_is_restored_in_tiles(
    checkpoints: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Image.fromarray(_rgb(120, 200)).save(tmp_path / "big.png")
    config = preset("tiny").model
    budget = memory.activation_bytes(config, 64, 64) / 0.8 + 1
    monkeypatch.setattr(memory, "available_bytes", lambda device: int(budget))
    args = ["--ckpt", checkpoints[0], "--input", tmp_path / "big.png", "--device", "cpu"]
    code, output = _invoke(*args, "--out", tmp_path / "tiled")
    assert code == 0, output
    assert "big.png: 200x120 needs about" in output and "restoring it in 64-pixel tiles" in output
    monkeypatch.setattr(memory, "available_bytes", lambda device: 1 << 40)
    code, output = _invoke(*args, "--out", tmp_path / "whole")
    assert code == 0 and "tiles" not in output
    tiled = np.asarray(Image.open(tmp_path / "tiled" / "big.png"), dtype=np.float64)
    whole = np.asarray(Image.open(tmp_path / "whole" / "big.png"), dtype=np.float64)
    assert np.abs(tiled - whole).mean() < 1.0


def test_max_pixels_opens_photos_past_the_bomb_limit(
    checkpoints: tuple[Path, Path], tmp_path: Path
) -> None:
    Image.fromarray(_rgb(60, 80)).save(tmp_path / "a.png")
    args = ["--ckpt", checkpoints[0], "--input", tmp_path / "a.png", "--out", tmp_path / "o"]
    code, output = _invoke(*args, "--max-pixels", "4000")
    assert code == 1 and "decompression bomb: more than 4000 pixels" in output
    code, output = _invoke(*args, "--max-pixels", "4800")
    assert code == 0 and (tmp_path / "o" / "a.png").exists()
    with Image.open(tmp_path / "o" / "a.png") as restored:
        assert PROVENANCE_KEY in restored.info
