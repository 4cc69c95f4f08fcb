"""``restore run`` as a user runs it: a folder of odd photos, tiles, maps, bad checkpoints."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from skyclear.cli.restore_run import run
from skyclear.restore.checkpoint import save_checkpoint
from skyclear.restore.config import config_to_dict, preset
from skyclear.restore.images import read_photo
from skyclear.restore.nn import F2DNet
from skyclear.restore.png16 import write_png16


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised tiny restorer."""
    torch.manual_seed(0)
    weights = F2DNet(preset("tiny").model).state_dict()
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    config = config_to_dict(preset("tiny"))
    save_checkpoint({"config": config, "step": 0, "model": weights, "ema": weights}, path)
    return path


def _rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Odd-sized, grey, RGBA and 16-bit photos, and one truncated file."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(_rgb(37, 53)).save(src / "odd.jpg")
    Image.fromarray(_rgb(30, 41, 1)[..., 0]).save(src / "sub" / "grey.png")
    rgba = np.dstack([_rgb(24, 33, 2), np.arange(24 * 33, dtype=np.uint8).reshape(24, 33)])
    Image.fromarray(rgba).save(src / "rgba.png")
    deep = np.random.default_rng(3).integers(0, 65536, (21, 26, 3), dtype=np.uint16)
    write_png16(src / "deep.png", deep)
    buffer = io.BytesIO()
    Image.fromarray(_rgb(40, 40, 4)).save(buffer, format="PNG")
    (src / "broken.png").write_bytes(buffer.getvalue()[:200])
    return src


def _invoke(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(run, [str(arg) for arg in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_a_folder_is_restored_in_each_photos_form(
    checkpoint: Path, folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    code, output = _invoke("--ckpt", checkpoint, "--input", folder, "--out", out, "--device", "cpu")
    assert code == 1, output
    assert "failed broken.png: corrupt or truncated" in output
    assert f"restored 4 of 5 images into {out}; 1 failed" in output
    written = sorted(path.relative_to(out).as_posix() for path in out.rglob("*"))
    assert written == ["deep.png", "odd.png", "rgba.png", "sub", "sub/grey.png"]
    with Image.open(out / "odd.png") as odd:
        assert odd.size == (53, 37) and odd.mode == "RGB"
    with Image.open(out / "sub" / "grey.png") as grey:
        assert grey.size == (41, 30) and grey.mode == "L"
    with Image.open(out / "rgba.png") as rgba, Image.open(folder / "rgba.png") as source:
        assert rgba.mode == "RGBA"
        assert np.array_equal(np.asarray(rgba)[..., 3], np.asarray(source)[..., 3])
    deep = read_photo(out / "deep.png")
    assert deep.mode == "RGB;16" and deep.image.shape == (1, 3, 21, 26)

    again_code, again = _invoke("--ckpt", checkpoint, "--input", folder, "--out", out)
    assert again_code == 1 and "restored 0 of 5 images" in again
    assert "4 already there, kept (--overwrite redoes them)" in again


def test_tiles_and_maps(checkpoint: Path, tmp_path: Path) -> None:
    Image.fromarray(_rgb(40, 70)).save(tmp_path / "wide.png")
    out = tmp_path / "out"
    args = ["--ckpt", checkpoint, "--input", tmp_path / "wide.png", "--out", out, "--device", "cpu"]
    code, output = _invoke(*args, "--tile", "16", "--overlap", "4", "--save-maps")
    assert code == 0, output
    assert f"restored 1 of 1 images into {out}; 0 failed" in output
    with Image.open(out / "wide.png") as restored:
        assert restored.size == (70, 40)
    with Image.open(out / "wide_maps.png") as strip:
        assert strip.mode == "RGB" and strip.width > 4 * 128 and strip.height > 128 * 40 // 70

    overwritten = _invoke(*args, "--steps", "2", "--seed", "5", "--overwrite")
    assert overwritten[0] == 0 and "restored 1 of 1" in overwritten[1]
    first = np.asarray(Image.open(out / "wide.png"))
    _invoke(*args, "--steps", "2", "--seed", "5", "--overwrite")
    assert np.array_equal(first, np.asarray(Image.open(out / "wide.png"))), "same seed"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--tile", "4"], "must be 0 or >= 8"),
        (["--tile", "32", "--overlap", "16"], "must be at most 10 for --tile 32"),
        (["--overlap", "4"], "--overlap needs --tile"),
        (["--device", "tpu"], "--device"),
    ],
)
def test_bad_options_are_usage_errors(
    checkpoint: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    Image.fromarray(_rgb(20, 20)).save(tmp_path / "a.png")
    code, output = _invoke(
        "--ckpt", checkpoint, "--input", tmp_path / "a.png", "--out", tmp_path / "o", *extra
    )
    assert code == 2 and message in output


class _Trap:
    """An object whose unpickling would run a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_unusable_checkpoints_are_refused_before_anything_runs(tmp_path: Path) -> None:
    Image.fromarray(_rgb(20, 20)).save(tmp_path / "a.png")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    marker = tmp_path / "ran"
    torch.save({"format": "skyclear.restore/1", "config": _Trap(marker)}, tmp_path / "trap.pt")
    expected = {
        "missing.pt": "no such checkpoint file",
        "foreign.pt": "not a skyclear restorer checkpoint",
        "trap.pt": "refused",
    }
    for name, message in expected.items():
        args = ["--ckpt", tmp_path / name, "--input", tmp_path / "a.png", "--out", tmp_path / "o"]
        code, output = _invoke(*args)
        assert code == 2 and message in output and "--ckpt" in output, output
    assert not marker.exists(), "the pickle's command must never run"
    assert not (tmp_path / "o").exists()


def test_photos_of_one_size_are_batched_and_restore_as_they_do_alone(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from skyclear.restore.inference import Restorer

    src = tmp_path / "src"
    src.mkdir()
    for index, (name, size) in enumerate(
        [("a", (40, 56)), ("b", (40, 56)), ("c", (40, 56)), ("d", (32, 32)), ("e", (40, 56))]
    ):
        Image.fromarray(_rgb(*size, seed=index)).save(src / f"{name}.png")
    Image.fromarray(_rgb(40, 56, 9)[..., 0]).save(src / "f.png")  # grey: batched all the same
    batches: list[int] = []
    original = Restorer.__call__

    def counted(self: Restorer, degraded: torch.Tensor, *args: object) -> object:
        batches.append(degraded.shape[0])
        return original(self, degraded, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Restorer, "__call__", counted)
    outputs = {}
    for size in (1, 3):
        batches.clear()
        out = tmp_path / f"out{size}"
        code, output = _invoke("--ckpt", checkpoint, "--input", src, "--out", out,
                               "--batch-size", size, "--save-maps")  # fmt: skip
        assert code == 0, output
        assert "restored 6 of 6" in output
        outputs[size] = {p.name: np.asarray(Image.open(p)) for p in sorted(out.glob("*.png"))}
        expected = [1] * 6 if size == 1 else [3, 1, 2]  # a b c | d | e f
        assert batches == expected
    assert outputs[1].keys() == outputs[3].keys() and len(outputs[1]) == 12
    for name, alone in outputs[1].items():
        together = outputs[3][name]
        assert alone.shape == together.shape
        assert np.abs(alone.astype(int) - together.astype(int)).max() <= 1, name


def test_colour_profiles_as_a_user_meets_them(checkpoint: Path, tmp_path: Path) -> None:
    from skyclear.restore.colour import srgb_profile

    from ..photos import adobe_rgb_profile

    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(_rgb(20, 24, 1)).save(src / "adobe.png", icc_profile=adobe_rgb_profile())
    Image.fromarray(_rgb(20, 24, 2)).save(src / "garbled.png", icc_profile=b"\x00" * 40)
    code, output = _invoke("--ckpt", checkpoint, "--input", src, "--out", tmp_path / "a")
    assert code == 0, output
    assert "restored 2 of 2" in output
    notes = [line for line in output.splitlines() if "garbled.png" in line]
    assert len(notes) == 1 and "restored as sRGB" in notes[0]
    assert not any("adobe.png" in line for line in output.splitlines())
    for name in ("adobe.png", "garbled.png"):
        with Image.open(tmp_path / "a" / name) as written:
            assert written.info["icc_profile"] == srgb_profile()
    code, output = _invoke("--ckpt", checkpoint, "--input", src / "adobe.png",
                           "--out", tmp_path / "b", "--keep-profile")  # fmt: skip
    assert code == 0, output
    with Image.open(tmp_path / "b" / "adobe.png") as written:
        assert written.info["icc_profile"] == adobe_rgb_profile()
