"""Which photos a restoration run reads and where each result goes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skyclear.restore.batch import PROVENANCE_KEY, plan_run
from skyclear.restore.images import save_png

MADE_BY = '{"checkpoint": "0123456789abcdef"}'


def _touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")


def _restored(root: Path, *names: str, made_by: str = MADE_BY) -> None:
    """PNGs as a restoration run leaves them: recording what made them."""
    for name in names:
        save_png(root / name, np.zeros((2, 2, 3), np.uint8), None, {PROVENANCE_KEY: made_by})


def test_a_folder_is_mirrored_under_the_output(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    _touch(src, "b.JPG", "a.png", "sub/deep/c.tiff", "notes.txt", ".hidden.png", ".git/d.png")
    plan = plan_run(src, out, save_maps=True)
    assert [job.name for job in plan.todo] == ["a.png", "b.JPG", "sub/deep/c.tiff"]
    assert [job.output for job in plan.todo] == [
        out / "a.png",
        out / "b.png",
        out / "sub/deep/c.png",
    ]
    assert plan.todo[2].maps == out / "sub/deep/c_maps.png"
    assert plan.total == 3 and not plan.refused and not plan.existing


def test_one_file_goes_straight_into_the_output(tmp_path: Path) -> None:
    _touch(tmp_path, "photo.jpeg")
    plan = plan_run(tmp_path / "photo.jpeg", tmp_path / "out")
    assert [(job.name, job.output, job.maps) for job in plan.todo] == [
        ("photo.jpeg", tmp_path / "out/photo.png", None)
    ]


def test_outputs_already_there_are_kept_unless_overwriting(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    _touch(src, "a.png", "b.png")
    _restored(out, "a.png", "b.png", "b_maps.png")
    assert [job.name for job in plan_run(src, out, provenance=MADE_BY).existing] == [
        "a.png",
        "b.png",
    ]
    with_maps = plan_run(src, out, save_maps=True, provenance=MADE_BY)
    assert [job.name for job in with_maps.existing] == ["b.png"], "a's maps are missing"
    assert [job.name for job in with_maps.todo] == ["a.png"] and with_maps.redo == 0
    assert len(plan_run(src, out, overwrite=True, provenance=MADE_BY).todo) == 2
    other = plan_run(src, out, provenance='{"checkpoint": "fedcba9876543210"}')
    assert [job.name for job in other.todo] == ["a.png", "b.png"] and other.redo == 2


def test_files_no_run_wrote_are_refused_never_replaced(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    _touch(src, "a.png", "b.png", "c.png")
    _touch(out, "a.png")  # not a PNG of a run
    save_png(out / "b.png", np.zeros((2, 2, 3), np.uint8))  # a PNG, but no record
    (out / "c.png").mkdir()
    plan = plan_run(src, out, overwrite=True, provenance=MADE_BY)
    assert not plan.todo and [name for name, _ in plan.refused] == ["a.png", "b.png", "c.png"]
    assert all("no restoration run wrote it" in reason for _, reason in plan.refused)


def test_clashing_outputs_are_refused_with_the_reason(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _touch(src, "a.jpg", "a.png", "B.png", "b.png", "c_maps.png", "c.png")
    plan = plan_run(src, tmp_path / "out", save_maps=True)
    assert [job.name for job in plan.todo] == ["B.png", "a.jpg", "c.png"]
    reasons = dict(plan.refused)
    assert reasons["a.png"] == "its output a.png is also that of a.jpg"
    assert "B.png" in reasons["b.png"] and "c.png" in reasons["c_maps.png"]
    assert plan.total == 6


def test_an_output_folder_inside_the_input_is_not_walked(tmp_path: Path) -> None:
    _touch(tmp_path, "a.png")
    _restored(tmp_path, "restored/a.png")
    plan = plan_run(tmp_path, tmp_path / "restored", provenance=MADE_BY)
    assert plan.total == 1 and [job.name for job in plan.existing] == ["a.png"]
    with pytest.raises(ValueError, match="is the input folder"):
        plan_run(tmp_path, tmp_path)
    refused = plan_run(tmp_path / "a.png", tmp_path, overwrite=True).refused
    assert refused == [("a.png", "its output would replace the input itself")]
