"""make-cdd11 and export replace only skyclear's own outputs, and never touch their inputs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import pytest
import zarr
from click.testing import CliRunner, Result
from skyclear.cli.degrade import main
from skyclear.degrade.store import (
    BuildOptions,
    StoreError,
    build,
    is_export,
    is_store,
    open_store,
)
from skyclear.degrade.store.export import FOLDER_MARKER, export_folder, export_hdf5

from ...photos import write_photos

QUICK = ["--size", "16", "--tiers", "low", "--test-fraction", "0"]


def _tree(path: Path) -> dict[str, str]:
    """Every file under ``path`` (or ``path`` itself) and the SHA-1 of its bytes."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(item): hashlib.sha1(item.read_bytes()).hexdigest() for item in files}


def _make(src: Path, out: Path, *extra: str) -> Result:
    arguments = ["make-cdd11", "--src", str(src), "--out", str(out), *QUICK, *extra]
    return CliRunner().invoke(main, arguments)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    write_photos(folder, count=2)
    return folder


def _refused(result: Result, reason: str) -> None:
    assert result.exit_code == 1, result.output
    assert reason in result.output, result.output


def test_an_ordinary_folder_is_never_replaced(tmp_path: Path, src: Path) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "report.txt").write_text("mine")
    before = _tree(folder)
    for extra in ((), ("--overwrite",)):
        _refused(_make(src, folder, *extra), "is a folder that is not a skyclear store")
        assert _tree(folder) == before
    assert not list(tmp_path.glob(".work.*")) and not (tmp_path / "work.preparing").exists()


@pytest.mark.parametrize(
    ("out", "reason"),
    [
        ("photos", "is the input"),
        (".", "holds the input"),
        ("photos/sub", "lies inside the input"),
        ("photos/d.zarr", "lies inside the input"),
        ("to_photos", "is the input"),
        ("to_photos/d.zarr", "lies inside the input"),
        ("to_sub", "lies inside the input"),
        ("to_root", "holds the input"),
    ],
)
def test_src_is_never_written_over_into_or_around(
    tmp_path: Path, src: Path, out: str, reason: str
) -> None:
    (tmp_path / "to_photos").symlink_to(src)
    (tmp_path / "to_sub").symlink_to(src / "sub")
    (tmp_path / "to_root").symlink_to(tmp_path)
    before = _tree(src)
    for extra in ((), ("--overwrite",)):
        _refused(_make(src, tmp_path / out, *extra), reason)
        assert _tree(src) == before, "the photos are untouched"
        assert not list(src.rglob("*.zarr")) and not list(src.rglob(".*"))


def test_out_inside_the_depth_folder_is_refused(tmp_path: Path, src: Path) -> None:
    depth = tmp_path / "depth"
    depth.mkdir()
    result = _make(src, depth / "d.zarr", "--depth", str(depth), "--overwrite")
    _refused(result, "lies inside the input")
    assert not any(depth.iterdir())


def test_foreign_zarr_groups_and_files_are_kept(tmp_path: Path, src: Path) -> None:
    other = zarr.open_group(str(tmp_path / "other.zarr"), mode="w")
    other.attrs["owner"] = "someone else"
    (tmp_path / "file.zarr").write_text("x")
    for name in ("other.zarr", "file.zarr"):
        before = _tree(tmp_path / name)
        _refused(_make(src, tmp_path / name, "--overwrite"), "that is not a skyclear store")
        assert _tree(tmp_path / name) == before


def test_overwrite_replaces_own_stores_and_fills_empty_folders(tmp_path: Path, src: Path) -> None:
    options = BuildOptions(src=str(src), size=16, tiers=("low",), test_fraction=0.0)
    build(options, tmp_path / "d.zarr")
    with pytest.raises(StoreError, match="differs in: seed"):
        build(BuildOptions(**{**options.__dict__, "seed": 1}), tmp_path / "d.zarr")
    build(BuildOptions(**{**options.__dict__, "seed": 1}), tmp_path / "d.zarr", overwrite=True)
    assert open_store(tmp_path / "d.zarr").attrs["seed"] == 1
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="pass --overwrite"):
        build(options, tmp_path / "empty")
    assert build(options, tmp_path / "empty", overwrite=True).complete
    # What a preparation killed at its first step leaves: resumed, --overwrite or not.
    zarr.open_group(str(tmp_path / "killed.zarr"), mode="w", zarr_format=3)
    assert is_store(tmp_path / "killed.zarr")
    assert build(options, tmp_path / "killed.zarr").complete
    # The same empty group with something else beside it is not ours.
    zarr.open_group(str(tmp_path / "mixed.zarr"), mode="w", zarr_format=3)
    (tmp_path / "mixed.zarr" / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not a skyclear store"):
        build(options, tmp_path / "mixed.zarr", overwrite=True)
    assert (tmp_path / "mixed.zarr" / "notes.txt").read_text() == "mine"


def test_a_symlink_to_an_own_store_is_replaced_by_a_store_not_followed(
    tmp_path: Path, src: Path
) -> None:
    options = BuildOptions(src=str(src), size=16, tiers=("low",), test_fraction=0.0)
    build(options, tmp_path / "real.zarr")
    before = _tree(tmp_path / "real.zarr")
    (tmp_path / "link.zarr").symlink_to(tmp_path / "real.zarr")
    build(BuildOptions(**{**options.__dict__, "seed": 2}), tmp_path / "link.zarr", overwrite=True)
    assert not (tmp_path / "link.zarr").is_symlink()
    assert open_store(tmp_path / "link.zarr").attrs["seed"] == 2
    assert _tree(tmp_path / "real.zarr") == before


@pytest.mark.parametrize(("fmt", "name"), [("folder", "cdd11"), ("hdf5", "d.h5")])
def test_exports_replace_only_exports(tmp_path: Path, src: Path, fmt: str, name: str) -> None:
    out = tmp_path / name
    assert _make(src, out, "--format", fmt).exit_code == 0
    assert is_export(out)
    if fmt == "folder":
        assert (out / FOLDER_MARKER).is_file()
    else:
        with h5py.File(out, "r") as h5:
            assert h5.attrs["format"] == "skyclear.cdd11/1"
    refused = _make(src, out, "--format", fmt)
    assert refused.exit_code == 2 and "--overwrite" in refused.output
    replaced = _make(src, out, "--format", fmt, "--seed", "4", "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert is_export(out) and not (tmp_path / f"{name}.zarr-staging").exists()
    # Something else under that name is never replaced, and nothing is built for it.
    foreign = tmp_path / f"foreign-{name}"
    if fmt == "folder":
        (foreign / "train" / "clear").mkdir(parents=True)
        (foreign / "train" / "clear" / "a.png").write_bytes(b"someone's photo")
    else:
        with h5py.File(foreign, "w") as h5:
            h5.attrs["format"] = "another.tool/1"
    before = _tree(foreign)
    for extra in ((), ("--overwrite",)):
        _refused(_make(src, foreign, "--format", fmt, *extra), "not a skyclear export")
        assert _tree(foreign) == before
        assert not (tmp_path / f"foreign-{name}.zarr-staging").exists()


def test_export_out_inside_src_and_foreign_staging_are_refused(tmp_path: Path, src: Path) -> None:
    _refused(_make(src, src / "cdd11", "--format", "folder", "--overwrite"), "lies inside")
    staging = tmp_path / "cdd11.zarr-staging"
    staging.mkdir()
    (staging / "keep.txt").write_text("mine")
    _refused(_make(src, tmp_path / "cdd11", "--format", "folder", "--overwrite"), "not a skyclear")
    assert (staging / "keep.txt").read_text() == "mine" and not (tmp_path / "cdd11").exists()


def test_degrade_export_writes_only_where_nothing_is(tmp_path: Path, src: Path) -> None:
    store = tmp_path / "d.zarr"
    build(BuildOptions(src=str(src), size=16, tiers=("low",), test_fraction=0.0), store)
    runner = CliRunner()
    inside = runner.invoke(
        main, ["export", "--store", str(store), "--format", "folder", "--out", str(store / "x")]
    )
    _refused(inside, "lies inside the input")
    assert is_store(store) and not (store / "x").exists()
    (tmp_path / "notes").write_text("mine")
    arguments = ["export", "--store", str(store), "--format", "hdf5", "--out"]
    exists = runner.invoke(main, [*arguments, str(tmp_path / "notes")])
    assert exists.exit_code == 2 and "exists" in exists.output
    assert (tmp_path / "notes").read_text() == "mine"
    # A foreign file where the HDF5 export is written before its rename is kept too.
    (tmp_path / "d.h5.partial").write_text("mine")
    with pytest.raises(StoreError, match="not a skyclear export"):
        export_hdf5(store, tmp_path / "d.h5")
    assert (tmp_path / "d.h5.partial").read_text() == "mine"
    with pytest.raises(StoreError, match="not a skyclear export"):
        export_folder(store, tmp_path / "notes")
    assert (tmp_path / "notes").read_text() == "mine"


def test_a_replacement_killed_halfway_leaves_a_store_prepared_anew(
    tmp_path: Path, src: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed while removing the old store, --overwrite leaves what is still known for a
    skyclear store, and known to be unfinished: the next run starts it anew, whichever
    command it is, rather than resume it or refuse it as foreign."""
    import shutil

    import skyclear.degrade.store.prepare as prepare

    options = BuildOptions(src=str(src), size=16, tiers=("low",), test_fraction=0.0)
    build(options, tmp_path / "fresh.zarr")
    build(options, tmp_path / "d.zarr")
    real_rmtree = shutil.rmtree

    def killed(path: Path, *args: object, **kwargs: object) -> None:
        real_rmtree(path)
        raise KeyboardInterrupt  # the kill, after one array folder is gone

    monkeypatch.setattr(prepare.shutil, "rmtree", killed)
    with pytest.raises(KeyboardInterrupt):
        build(BuildOptions(**{**options.__dict__, "seed": 5}), tmp_path / "d.zarr", overwrite=True)
    monkeypatch.setattr(prepare.shutil, "rmtree", real_rmtree)
    assert is_store(tmp_path / "d.zarr")
    assert "complete" not in zarr.open_group(str(tmp_path / "d.zarr"), mode="r").attrs
    assert build(options, tmp_path / "d.zarr").complete
    assert _tree(tmp_path / "d.zarr") == {
        key.replace("fresh.zarr", "d.zarr"): value
        for key, value in _tree(tmp_path / "fresh.zarr").items()
    }
