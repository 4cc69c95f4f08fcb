"""The ``degrade`` command as a user runs it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from skyclear.cli.degrade import main


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(path)
    return path


def test_help_lists_commands() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "preview" in result.output and "samples" in result.output


def test_preview_writes_a_labelled_sheet(tmp_path: Path, photo: Path) -> None:
    out = tmp_path / "sheet" / "grid.png"
    args = ["preview", "--src", str(photo), "--size", "48", "--out"]
    result = CliRunner().invoke(main, [*args, str(out)])
    assert result.exit_code == 0, result.output
    sheet = np.asarray(Image.open(out))
    assert sheet.shape[1] > 12 * 48 and sheet.shape[0] > 5 * 30
    again = tmp_path / "again.png"
    CliRunner().invoke(main, [*args, str(again)])
    assert np.array_equal(sheet, np.asarray(Image.open(again))), "same seed, same sheet"


def test_preview_with_depth_and_disparity(tmp_path: Path, photo: Path) -> None:
    np.save(tmp_path / "depth.npy", np.full((40, 56), 12.0, np.float32))
    np.save(tmp_path / "disp.npy", np.full((40, 56), 30.0, np.float32))
    runner = CliRunner()
    base = ["preview", "--src", str(photo), "--size", "40"]
    depth = ["--depth", str(tmp_path / "depth.npy")]
    disparity = ["--depth", str(tmp_path / "disp.npy"), "--disparity"]
    ok = runner.invoke(main, [*base, *depth, "--out", str(tmp_path / "a.png")])
    assert ok.exit_code == 0, ok.output
    calibrated = [*disparity, "--focal-baseline", "300", "--out", str(tmp_path / "b.png")]
    converted = runner.invoke(main, [*base, *calibrated])
    assert converted.exit_code == 0, converted.output
    missing = runner.invoke(main, [*base, *disparity, "--out", str(tmp_path / "c.png")])
    assert missing.exit_code != 0 and "--focal-baseline" in missing.output


def test_preview_refuses_bad_input_clearly(tmp_path: Path, photo: Path) -> None:
    runner = CliRunner()
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    bad = runner.invoke(main, ["preview", "--src", str(text), "--out", str(tmp_path / "x.png")])
    assert bad.exit_code != 0 and "not an image" in bad.output
    np.save(tmp_path / "small.npy", np.ones((4, 4), np.float32))
    small = ["--depth", str(tmp_path / "small.npy"), "--out", str(tmp_path / "y.png")]
    mismatch = runner.invoke(main, ["preview", "--src", str(photo), *small])
    assert mismatch.exit_code != 0 and "depth map is 4x4" in mismatch.output
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "y.png").exists()


def test_samples_are_written_with_motorcycle_depth(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["samples", "--out", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    photos = sorted(p.name for p in (tmp_path / "s" / "photos").iterdir())
    assert photos == ["astronaut.png", "chelsea.png", "coffee.png", "motorcycle.png", "rocket.png"]
    assert sorted(p.name for p in (tmp_path / "s" / "depth").iterdir()) == ["motorcycle.npy"]
    depth = np.load(tmp_path / "s" / "depth" / "motorcycle.npy")
    image = Image.open(tmp_path / "s" / "photos" / "motorcycle.png")
    assert depth.shape == (image.height, image.width)
    assert np.isfinite(depth).all() and 0.5 < float(np.median(depth)) < 10.0
