"""The test split by folder: every photo under it, and no other, is a test photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner
from skyclear.cli.degrade import main
from skyclear.degrade.store import BuildOptions, build

from ...photos import write_photos


def test_a_test_folder_holds_out_exactly_its_photos(tmp_path: Path) -> None:
    write_photos(tmp_path / "src", count=4, height=24, width=24)  # p0..p2, sub/p3
    options = BuildOptions(src=str(tmp_path / "src"), size=16, tiers=("low", "haze"),
                           test_fraction=0.5, test_folder="sub")  # fmt: skip
    build(options, tmp_path / "d.zarr")
    group = zarr.open_group(str(tmp_path / "d.zarr"), mode="r")
    sources = list(group.attrs["sources"])
    held_out = {sources[i] for i in np.unique(group["source"][:][group["split"][:] == 1])}
    assert held_out == {"sub/p3.png"}, "the folder decides, not --test-fraction"
    assert group.attrs["test_folder"] == "sub"
    plain = BuildOptions(src=str(tmp_path / "src"), size=16, tiers=("low",))
    build(plain, tmp_path / "plain.zarr")
    assert "test_folder" not in zarr.open_group(str(tmp_path / "plain.zarr"), mode="r").attrs


@pytest.mark.parametrize("folder", ["nothing", "."])
def test_a_test_folder_must_leave_photos_on_both_sides(tmp_path: Path, folder: str) -> None:
    write_photos(tmp_path / "src", count=3, height=24, width=24)
    result = CliRunner().invoke(main, [
        "make-cdd11", "--src", str(tmp_path / "src"), "--out", str(tmp_path / "d.zarr"),
        "--size", "16", "--tiers", "low", "--test-folder", folder,
    ])  # fmt: skip
    assert result.exit_code != 0
    assert "--test-folder" in result.output or "test_folder" in result.output, result.output


def test_a_test_folder_must_lie_under_src() -> None:
    with pytest.raises(ValueError, match="test_folder"):
        BuildOptions(src="x", test_folder="../elsewhere")
