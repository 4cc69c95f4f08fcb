"""Depth files and disparity conversion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skyclear.degrade import depth_from_disparity, depth_to_tensor, load_depth


def test_png16_in_millimetres(tmp_path: Path) -> None:
    raw = np.array([[1000, 2500], [65535, 0]], dtype=np.uint16)
    Image.fromarray(raw).save(tmp_path / "d.png")
    depth = load_depth(tmp_path / "d.png")
    np.testing.assert_allclose(depth, raw.astype(np.float32) / 1000)
    np.testing.assert_allclose(load_depth(tmp_path / "d.png", scale=0.01), raw * 0.01, rtol=1e-6)


def test_npy_in_metres(tmp_path: Path) -> None:
    np.save(tmp_path / "d.npy", np.full((4, 5), 7.5))
    depth = load_depth(tmp_path / "d.npy")
    assert depth.dtype == np.float32 and depth.shape == (4, 5)
    assert depth_to_tensor(depth).shape == (1, 1, 4, 5)


@pytest.mark.parametrize(
    ("name", "writer", "message"),
    [
        ("d8.png", lambda p: Image.fromarray(np.zeros((4, 4), np.uint8)).save(p), "16-bit"),
        ("d.jpg", lambda p: Image.fromarray(np.zeros((4, 4), np.uint8)).save(p), ".png"),
        ("nan.npy", lambda p: np.save(p, np.full((3, 3), np.nan)), "NaN"),
        ("neg.npy", lambda p: np.save(p, -np.ones((3, 3))), ">= 0"),
        ("cube.npy", lambda p: np.save(p, np.ones((2, 3, 3))), r"\(H, W\)"),
    ],
)
def test_bad_depth_files(tmp_path: Path, name: str, writer: object, message: str) -> None:
    writer(tmp_path / name)  # type: ignore[operator]
    with pytest.raises(ValueError, match=message):
        load_depth(tmp_path / name)


def test_disparity_conversion_and_hole_filling() -> None:
    disparity = np.array([[10.0, np.inf, 20.0, 40.0], [np.nan, 5.0, 0.0, 8.0]])
    depth = depth_from_disparity(disparity, focal_baseline=100.0, doffs=0.0)
    # Holes take the farther (smaller-disparity) of their row neighbours.
    np.testing.assert_allclose(depth, 100.0 / np.array([[10, 10, 20, 40], [5, 5, 5, 8]]))
    shifted = depth_from_disparity(disparity, focal_baseline=100.0, doffs=10.0)
    assert shifted[0, 0] == pytest.approx(100.0 / 20.0)


def test_disparity_needs_calibration() -> None:
    with pytest.raises(ValueError, match="focal_baseline"):
        depth_from_disparity(np.ones((2, 2)), focal_baseline=0.0)
    with pytest.raises(ValueError, match="no valid"):
        depth_from_disparity(np.full((2, 2), np.inf), focal_baseline=1.0)
