"""make-cdd11 on a dask.distributed cluster: the bytes of a local build, resumable."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from skyclear.cli.degrade import main
from skyclear.degrade.store import BuildOptions, build, open_store

from ...photos import write_photos
from .test_build import SIZE, _tree_digest

pytest.importorskip("distributed")


def _options(src: Path) -> BuildOptions:
    return BuildOptions(src=str(src), size=SIZE, test_fraction=0.34,
                        tiers=("haze", "low_rain", "low_haze_snow"))  # fmt: skip


@pytest.mark.slow
def test_a_local_cluster_writes_the_bytes_of_a_local_build_and_resumes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_photos(src, count=4)
    build(_options(src), tmp_path / "here.zarr")
    summary = build(_options(src), tmp_path / "dask.zarr", scheduler="local:2")
    assert summary.complete and summary.written == 4 * 3
    assert _tree_digest(tmp_path / "dask.zarr") == _tree_digest(tmp_path / "here.zarr")
    # Interrupted after half the photos (as a shard leaves it), finished on the cluster.
    half = tmp_path / "half.zarr"
    build(_options(src), half, shard=(0, 2))
    resumed = build(_options(src), half, scheduler="local:2")
    assert resumed.complete and resumed.written == 2 * 3  # only the photos missing
    assert _tree_digest(half) == _tree_digest(tmp_path / "here.zarr")
    assert open_store(half).attrs["complete"] is True


def test_bad_schedulers_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_photos(src, count=2)
    for args, message in (
        (["--scheduler", "local:0"], "N >= 1"),
        (["--scheduler", "banana"], "local:N or a scheduler address"),
        (["--scheduler", "local:2", "--workers", "2"], "drop --workers and --shard"),
    ):
        out = tmp_path / "d.zarr"
        result = CliRunner().invoke(main, ["make-cdd11", "--src", str(src), "--out", str(out),
                                           "--size", str(SIZE), *args])  # fmt: skip
        assert result.exit_code == 2 and message in result.output, result.output
        assert not out.exists()
