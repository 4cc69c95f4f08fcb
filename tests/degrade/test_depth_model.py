"""Depth from a local monocular model, per-photo depth files with a fallback, and where
each sample's depth came from."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import zarr
from click.testing import CliRunner
from skyclear.cli.degrade import main
from skyclear.datasets import OnlineSynthesis
from skyclear.degrade.depth_model import DepthModel, declared_kind, inverse_to_metres

from ..photos import photo, write_photos

SIZE = 32


@pytest.fixture(scope="module")
def tiny_dpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised DPT with its image processor, saved as a user would save a
    downloaded one (nothing is downloaded)."""
    transformers = pytest.importorskip("transformers")
    folder = tmp_path_factory.mktemp("tiny_dpt")
    config = transformers.DPTConfig(
        hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32,
        image_size=32, patch_size=8, neck_hidden_sizes=[8, 8, 8, 8], fusion_hidden_size=8,
        backbone_out_indices=[0, 1, 2, 3],
    )  # fmt: skip
    transformers.set_seed(0)
    transformers.DPTForDepthEstimation(config).save_pretrained(folder)
    processor = transformers.DPTImageProcessor(
        size={"height": 32, "width": 32}, keep_aspect_ratio=False, ensure_multiple_of=8
    )
    processor.save_pretrained(folder)
    return folder


def test_inverse_depth_becomes_metres_far_where_it_is_small() -> None:
    """Larger inverse depth is nearer: the 2nd percentile comes out ``far``, the 98th
    ``near``, linearly in inverse depth between them, clipped beyond."""
    inverse = np.linspace(0.0, 1.0, 101).reshape(1, 101)
    depth = inverse_to_metres(inverse, near=2.0, far=100.0)
    assert depth[0, 0] == pytest.approx(100.0) and depth[0, 2] == pytest.approx(100.0)
    assert depth[0, -1] == pytest.approx(2.0) and depth[0, 98] == pytest.approx(2.0)
    middle = 1.0 / (1.0 / 100.0 + 0.5 * (1.0 / 2.0 - 1.0 / 100.0))
    assert depth[0, 50] == pytest.approx(middle, rel=1e-5)
    assert np.all(np.diff(depth[0]) <= 0), "nearer as inverse depth grows"
    sky_over_street = np.concatenate([np.full((8, 8), 0.1), np.full((8, 8), 5.0)])
    metres = inverse_to_metres(sky_over_street, near=3.0, far=80.0)
    assert metres[:8].min() == pytest.approx(80.0) and metres[8:].max() == pytest.approx(3.0)
    assert np.all(inverse_to_metres(np.full((4, 4), 7.0), 3.0, 80.0) == np.float32(80.0))
    with pytest.raises(ValueError, match="near < far"):
        inverse_to_metres(inverse, near=5.0, far=5.0)
    with pytest.raises(ValueError, match="non-finite"):
        inverse_to_metres(np.array([[np.nan, 1.0]]), 2.0, 10.0)


def test_what_a_model_predicts_is_read_from_its_config() -> None:
    assert declared_kind(SimpleNamespace(model_type="dpt")) == "inverse"
    assert declared_kind(SimpleNamespace(model_type="glpn")) == "metric"
    assert declared_kind(SimpleNamespace(model_type="zoedepth")) == "metric"
    metric_anything = SimpleNamespace(model_type="depth_anything", depth_estimation_type="metric")
    assert declared_kind(metric_anything) == "metric"
    relative = SimpleNamespace(model_type="depth_anything", depth_estimation_type="relative")
    assert declared_kind(relative) == "inverse"


def test_a_saved_model_gives_depth_in_metres(tiny_dpt: Path) -> None:
    model = DepthModel(str(tiny_dpt), near=3.0, far=60.0)
    assert model.resolved_kind == "inverse"
    assert model.describe() == {"model_type": "dpt", "kind": "inverse", "near": 3.0, "far": 60.0}
    depth = model(photo(0))
    assert depth.shape == (48, 64) and depth.dtype == np.float32
    assert depth.min() >= 3.0 - 1e-4 and depth.max() <= 60.0 + 1e-3
    metric = DepthModel(str(tiny_dpt), kind="metric")(photo(0))
    assert np.isfinite(metric).all() and metric.min() >= 0.01
    with pytest.raises(ValueError, match="kind"):
        DepthModel(str(tiny_dpt), kind="disparity")
    with pytest.raises(ValueError, match="not a folder"):
        DepthModel(str(tiny_dpt / "config.json"))


_said: list[str] = []


def _store(out: Path, *args: str) -> zarr.Group:
    result = CliRunner().invoke(
        main, ["make-cdd11", "--out", str(out), "--size", str(SIZE), "--tiers", "haze", *args]
    )
    assert result.exit_code == 0, result.output
    said = result.output
    if "depth of the photos:" in said:  # after the progress bar, on its line or the next
        _said.append(said[said.index("depth of the photos:") :].splitlines()[0])
    return zarr.open_group(str(out), mode="r")


def _sources(group: zarr.Group) -> list[str]:
    """Each sample's ``depth_source``, in sample order (one tier, one variant)."""
    return [json.loads(row)["depth_source"] for row in group["params"][:]]


def test_depth_files_a_model_and_the_prior_fill_in_for_each_other(
    tmp_path: Path, tiny_dpt: Path
) -> None:
    """p0 has a depth file; p1 and sub/p2 do not: with a model they take its depth, without
    one the prior's (NaN in the depth array). Each sample says which it had."""
    src, depth_dir = tmp_path / "src", tmp_path / "depth"
    write_photos(src, count=3)
    depth_dir.mkdir()
    np.save(depth_dir / "p0.npy", np.full((48, 64), 3.0, np.float32))

    files_only = _store(tmp_path / "a.zarr", "--src", str(src), "--depth", str(depth_dir))
    assert _said[-1] == "depth of the photos: 1 from file, 0 from model, 2 from prior"
    assert _sources(files_only) == ["file", "prior", "prior"]
    depth = files_only["depth"][:]
    assert np.allclose(depth[0], 3.0) and np.isnan(depth[1:]).all()
    assert "depth_model" not in files_only.attrs

    args = ["--src", str(src), "--depth", str(depth_dir), "--depth-model", str(tiny_dpt)]
    both = _store(tmp_path / "b.zarr", *args, "--depth-near", "4", "--depth-far", "50")
    assert _sources(both) == ["file", "model", "model"]
    assert _said[-1] == "depth of the photos: 1 from file, 2 from model, 0 from prior"
    depth = both["depth"][:].astype(np.float32)
    assert np.allclose(depth[0], 3.0)
    assert np.isfinite(depth[1:]).all() and depth[1:].min() >= 3.99 and depth[1:].max() <= 50.1
    assert dict(both.attrs["depth_model"]) == {
        "model_type": "dpt", "kind": "inverse", "near": 4.0, "far": 50.0
    }  # fmt: skip
    # The files' samples are the same whatever fills in for the others.
    assert np.array_equal(both["degraded"][0], files_only["degraded"][0])
    assert not np.array_equal(both["degraded"][1], files_only["degraded"][1])


def test_a_folder_that_is_no_model_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    pytest.importorskip("transformers")
    src, fake = tmp_path / "src", tmp_path / "fake_model"
    write_photos(src, count=2)
    fake.mkdir()
    out = tmp_path / "d.zarr"
    result = CliRunner().invoke(
        main,
        ["make-cdd11", "--src", str(src), "--out", str(out), "--size", str(SIZE),
         "--depth-model", str(fake)],
    )  # fmt: skip
    assert result.exit_code == 1 and "depth model" in result.output, result.output
    assert not out.exists()


def test_preview_takes_depth_from_a_model(tmp_path: Path, tiny_dpt: Path) -> None:
    from PIL import Image

    source = tmp_path / "p.png"
    Image.fromarray(photo(1)).save(source)
    out = tmp_path / "grid.png"
    args = ["preview", "--src", str(source), "--out", str(out), "--size", "32"]
    result = CliRunner().invoke(main, [*args, "--depth-model", str(tiny_dpt)])
    assert result.exit_code == 0, result.output
    assert Image.open(out).size[0] > 32


def test_online_synthesis_falls_back_per_photo(tmp_path: Path, tiny_dpt: Path) -> None:
    """A photo without a depth file takes the model's depth, or the prior's: no error."""
    src, depth_dir = tmp_path / "src", tmp_path / "depth"
    write_photos(src, count=2)
    depth_dir.mkdir()
    np.save(depth_dir / "p0.npy", np.full((48, 64), 3.0, np.float32))
    prior = OnlineSynthesis(src, SIZE, tiers=("haze",), depth_dir=depth_dir)
    model = OnlineSynthesis(
        src, SIZE, tiers=("haze",), depth_dir=depth_dir, depth_model=DepthModel(str(tiny_dpt))
    )
    assert len(prior) == 2
    assert np.array_equal(prior[0]["degraded"].numpy(), model[0]["degraded"].numpy())
    assert not np.array_equal(prior[1]["degraded"].numpy(), model[1]["degraded"].numpy())


def test_online_synthesis_runs_the_model_once_per_photo_and_pass(tmp_path: Path) -> None:
    """Items run through a photo's tiers in turn: its depth is made once, not per tier."""
    src = tmp_path / "src"
    write_photos(src, count=2)
    calls: list[tuple[int, ...]] = []

    def model(clean: np.ndarray) -> np.ndarray:
        calls.append(clean.shape)
        return np.full(clean.shape[:2], 7.0, np.float32)

    tiers = ("haze", "haze_rain", "low_haze")
    data = OnlineSynthesis(src, SIZE, tiers=tiers, depth_model=model)  # type: ignore[arg-type]
    for index in range(len(data)):
        data[index]
    assert len(calls) == 2 and len(data) == 6


def test_the_scene_scale_without_a_model_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_photos(src, count=2)
    out = tmp_path / "d.zarr"
    args = ["make-cdd11", "--src", str(src), "--out", str(out), "--size", str(SIZE)]
    result = CliRunner().invoke(main, [*args, "--depth-far", "80", "--depth-kind", "metric"])
    assert result.exit_code == 2 and "--depth-kind, --depth-far describe" in result.output
    assert not out.exists()
