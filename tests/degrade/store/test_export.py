"""HDF5 and folder exports read back equal to the Zarr store."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from skyclear.cli.degrade import main
from skyclear.degrade.store import BuildOptions, build, export_folder, export_hdf5, open_store
from skyclear.degrade.store.export import photo_names, sample_name

from ...photos import write_photos


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("export")
    write_photos(root / "src", count=3)
    options = BuildOptions(src=str(root / "src"), size=32, variants=2, test_fraction=0.34)
    build(options, root / "d.zarr")
    return root / "d.zarr"


def test_hdf5_equals_the_store(store: Path, tmp_path: Path) -> None:
    out = export_hdf5(store, tmp_path / "d.h5")
    group = open_store(store)
    with h5py.File(out, "r") as h5:
        for name in ("clean", "degraded", "masks", "source", "tier", "split"):
            assert np.array_equal(h5[name][:], group[name][:]), name
            assert h5[name].chunks == group[name].chunks
            names = json.loads(h5[name].attrs["dimension_names"])
            assert names == list(group[name].metadata.dimension_names)
        params = [p.decode() if isinstance(p, bytes) else p for p in h5["params"][:]]
        assert params == list(group["params"][:])
        assert json.loads(h5.attrs["sources"]) == group.attrs["sources"]
        assert h5.attrs["format"] == group.attrs["format"] and bool(h5.attrs["complete"])


def test_folder_equals_the_store(store: Path, tmp_path: Path) -> None:
    out = export_folder(store, tmp_path / "folder")
    group = open_store(store)
    attrs = dict(group.attrs)
    source_of, tier_of, split_of = group["source"][:], group["tier"][:], group["split"][:]
    stems = photo_names(attrs["sources"])
    for m in range(group["degraded"].shape[0]):
        split = ("train", "test")[split_of[m]]
        tier = attrs["tiers"][tier_of[m]]
        name = sample_name(stems[source_of[m]], m % 2, 2)
        degraded = np.asarray(Image.open(out / split / tier / name))
        assert np.array_equal(degraded, group["degraded"][m])
        masks = np.moveaxis(np.asarray(Image.open(out / split / "masks" / tier / name)), -1, 0)
        assert np.array_equal(masks, group["masks"][m])
        clean_name = sample_name(stems[source_of[m]], 0, 1)
        clean = np.asarray(Image.open(out / split / "clear" / clean_name))
        assert np.array_equal(clean, group["clean"][source_of[m]])


def test_make_cdd11_straight_to_hdf5_and_folder(tmp_path: Path) -> None:
    write_photos(tmp_path / "src", count=2)
    runner = CliRunner()
    for fmt, out in (("hdf5", tmp_path / "d.h5"), ("folder", tmp_path / "folder")):
        args = ["make-cdd11", "--src", str(tmp_path / "src"), "--out", str(out), "--size", "32",
                "--tiers", "rain", "--format", fmt]  # fmt: skip
        result = runner.invoke(main, args)
        assert result.exit_code == 0, result.output
        assert out.exists() and not out.with_name(out.name + ".zarr-staging").exists()
        refused = runner.invoke(main, args)
        assert refused.exit_code != 0 and "--overwrite" in refused.output


def test_clashing_names_stay_distinct() -> None:
    assert photo_names(["a/b.png", "a__b.jpg", "c.png", "c.jpg", "d.png"]) == [
        "a__b__0", "a__b__1", "c__2", "c__3", "d",
    ]  # fmt: skip
