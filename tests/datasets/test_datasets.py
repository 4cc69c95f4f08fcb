"""The four datasets: one sample contract, through DataLoader workers of every start method."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from skyclear.datasets import CDD11H5, CDD11Folder, CDD11Zarr, OnlineSynthesis, as_float
from skyclear.degrade.names import TIERS
from skyclear.degrade.store import BuildOptions, StoreError, build, export_folder, export_hdf5
from torch.utils.data import DataLoader

from ..photos import write_photos

KEYS = {"degraded", "clean", "masks", "tier", "presence", "has_masks"}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("datasets")
    write_photos(root / "src", count=3)
    options = BuildOptions(src=str(root / "src"), size=32, test_fraction=0.34)
    build(options, root / "d.zarr")
    export_hdf5(root / "d.zarr", root / "d.h5")
    export_folder(root / "d.zarr", root / "folder")
    return {
        "src": root / "src",
        "zarr": root / "d.zarr",
        "h5": root / "d.h5",
        "folder": root / "folder",
    }


def _datasets(
    data: dict[str, Path], crop: int | None = 24, uint8: bool = False
) -> dict[str, torch.utils.data.Dataset]:
    return {
        "zarr": CDD11Zarr(data["zarr"], split="train", crop=crop, uint8=uint8),
        "h5": CDD11H5(data["h5"], split="train", crop=crop, uint8=uint8),
        "folder": CDD11Folder(data["folder"], split="train", crop=crop, uint8=uint8),
        "online": OnlineSynthesis(data["src"], size=32, crop=crop, uint8=uint8),
    }


@pytest.mark.parametrize("name", ["zarr", "h5", "folder", "online"])
def test_sample_contract(data: dict[str, Path], name: str) -> None:
    dataset = _datasets(data)[name]
    assert len(dataset) == 22 if name != "online" else len(dataset) == 33
    sample = dataset[3]
    assert set(sample) == KEYS
    assert sample["degraded"].shape == sample["clean"].shape == (3, 24, 24)
    assert sample["masks"].shape == (4, 24, 24)
    for key in ("degraded", "clean", "masks"):
        assert sample[key].dtype == torch.float32
        assert float(sample[key].min()) >= 0 and float(sample[key].max()) <= 1
    tier = TIERS[int(sample["tier"])]
    expected = [float(d in tier.split("_")) for d in ("low", "haze", "rain", "snow")]
    assert sample["presence"].tolist() == expected
    assert bool(sample["has_masks"])
    for channel, present in enumerate(expected):
        if not present:
            assert float(sample["masks"][channel].max()) == 0.0


@pytest.mark.parametrize("name", ["zarr", "h5", "folder", "online"])
def test_clean_image_and_photos_match_the_samples(data: dict[str, Path], name: str) -> None:
    """``clean_image`` is the sample's own clean image (whole here: no crop to differ by),
    and ``photos`` numbers every item's photo (a tier's samples of one photo agree)."""
    dataset = _datasets(data, crop=None, uint8=True)[name]
    photos = dataset.photos()  # type: ignore[attr-defined]
    photo_count = 3 if name == "online" else 2  # online has no split; the stores' train has 2
    assert len(photos) == len(dataset) and len(set(photos.tolist())) == photo_count
    for index in (0, 5, len(dataset) - 1):  # type: ignore[arg-type]
        clean = dataset.clean_image(index)  # type: ignore[attr-defined]
        assert torch.equal(clean, dataset[index]["clean"]), (name, index)
        twin = next(i for i in range(len(photos)) if photos[i] == photos[index])
        assert torch.equal(dataset[twin]["clean"], clean)


def test_stores_and_exports_agree(data: dict[str, Path]) -> None:
    datasets = _datasets(data, crop=None)
    for index in range(len(datasets["zarr"])):
        reference = datasets["zarr"][index]
        for name in ("h5", "folder"):
            other = datasets[name][index]
            for key in KEYS:
                assert torch.equal(reference[key], other[key]), (name, index, key)


def test_crop_is_shared_by_every_field(data: dict[str, Path]) -> None:
    full = CDD11Zarr(data["zarr"], split="train")[0]
    torch.manual_seed(0)
    cropped = CDD11Zarr(data["zarr"], split="train", crop=16)[0]
    found = False
    for top in range(17):
        for left in range(17):
            window = (slice(None), slice(top, top + 16), slice(left, left + 16))
            if torch.equal(full["degraded"][window], cropped["degraded"]):
                assert torch.equal(full["clean"][window], cropped["clean"])
                assert torch.equal(full["masks"][window], cropped["masks"])
                found = True
    assert found
    centre = CDD11Zarr(data["zarr"], split="train", crop=16, random_crop=False)[0]
    assert torch.equal(centre["degraded"], full["degraded"][:, 8:24, 8:24])


def test_splits_and_tiers(data: dict[str, Path]) -> None:
    train = CDD11Zarr(data["zarr"], split="train")
    test = CDD11Zarr(data["zarr"], split="test")
    assert len(train) + len(test) == len(CDD11Zarr(data["zarr"], split=None)) == 33
    hazy = CDD11Zarr(data["zarr"], split=None, tiers=("haze", "low_haze"))
    assert len(hazy) == 6
    assert {TIERS[int(hazy[i]["tier"])] for i in range(6)} == {"haze", "low_haze"}
    with pytest.raises(ValueError, match="split"):
        CDD11Zarr(data["zarr"], split="val")


def test_folder_without_masks_is_presence_only(data: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    release = tmp_path / "CDD-11_train"
    shutil.copytree(data["folder"] / "train", release)
    shutil.rmtree(release / "masks")
    dataset = CDD11Folder(tmp_path, split="train")
    sample = dataset[0]
    assert not bool(sample["has_masks"]) and float(sample["masks"].abs().sum()) == 0
    assert float(sample["presence"].sum()) >= 1


@pytest.mark.parametrize("context", ["fork", "spawn", "forkserver"])
@pytest.mark.parametrize("name", ["zarr", "h5", "folder", "online"])
def test_dataloader_with_two_workers(data: dict[str, Path], name: str, context: str) -> None:
    if context != "fork" and name in ("folder", "h5"):
        pytest.skip("the start methods are exercised on the Zarr and online datasets")
    dataset = _datasets(data, crop=None)[name]
    pickle.loads(pickle.dumps(dataset))
    loader = DataLoader(dataset, batch_size=4, num_workers=2, multiprocessing_context=context)
    batches = list(loader)
    assert sum(len(batch["tier"]) for batch in batches) == len(dataset)
    first = batches[0]
    assert first["degraded"].shape == (4, 3, 32, 32) and first["masks"].shape == (4, 4, 32, 32)
    # Workers read the same samples the main process reads.
    assert torch.equal(first["degraded"][1], dataset[1]["degraded"])


def test_online_synthesis_is_reproducible_and_varies(data: dict[str, Path]) -> None:
    online = OnlineSynthesis(data["src"], size=32)
    again = OnlineSynthesis(data["src"], size=32)
    assert torch.equal(online[4]["degraded"], again[4]["degraded"])
    assert not torch.equal(online[4]["degraded"], online[15]["degraded"])  # same tier, next photo
    before = online[4]["degraded"]
    online.set_epoch(1)
    assert not torch.equal(before, online[4]["degraded"])
    loader = DataLoader(online, batch_size=3, num_workers=2)
    first = next(iter(loader))["degraded"]
    assert torch.equal(first[0], online[0]["degraded"])


def test_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no such store"):
        CDD11Zarr(tmp_path / "missing.zarr")
    with pytest.raises(StoreError, match="no such file"):
        CDD11H5(tmp_path / "missing.h5")
    with pytest.raises(ValueError, match="clear"):
        CDD11Folder(tmp_path)


def test_clean_photo_cache_changes_nothing_but_speed(data: dict[str, Path]) -> None:
    cached = CDD11Zarr(data["zarr"], split=None, crop=20, random_crop=False)
    uncached = CDD11Zarr(data["zarr"], split=None, crop=20, random_crop=False, clean_cache_mb=0)
    for i in range(len(cached)):
        one, two = cached[i], uncached[i]
        assert all(torch.equal(one[key], two[key]) for key in KEYS)  # type: ignore[literal-required]
    assert len(cached._clean_cache) == 3 and not uncached._clean_cache
    assert pickle.loads(pickle.dumps(cached))._clean_cache == {}
    one["clean"].fill_(0)  # a sample never aliases the cache
    assert torch.equal(cached[len(cached) - 1]["clean"], two["clean"])
    with pytest.raises(ValueError, match="clean_cache_mb"):
        CDD11Zarr(data["zarr"], clean_cache_mb=-1)


@pytest.mark.parametrize("crop", [None, 20])
@pytest.mark.parametrize("uint8", [False, True])
def test_online_photo_cache_changes_nothing_but_speed(
    data: dict[str, Path], crop: int | None, uint8: bool
) -> None:
    cached = OnlineSynthesis(data["src"], size=32, crop=crop, random_crop=False, uint8=uint8)
    uncached = OnlineSynthesis(data["src"], size=32, crop=crop, random_crop=False, uint8=uint8,
                               clean_cache_mb=0)  # fmt: skip
    for i in (0, 12, 25, 1, 13):
        one, two = cached[i], uncached[i]
        assert all(torch.equal(one[key], two[key]) for key in KEYS)  # type: ignore[literal-required]
        assert torch.equal(cached.clean_image(i), uncached.clean_image(i))
    assert len(cached._clean_cache) == 3 and not uncached._clean_cache
    assert pickle.loads(pickle.dumps(cached))._clean_cache == {}
    for sample in (one, cached.clean_image(1)):  # a sample never aliases the cache
        (sample["clean"] if isinstance(sample, dict) else sample).fill_(0)
    assert torch.equal(cached[1]["clean"], uncached[1]["clean"])
    with pytest.raises(ValueError, match="clean_cache_mb"):
        OnlineSynthesis(data["src"], size=32, clean_cache_mb=-1)


@pytest.mark.parametrize("name", ["zarr", "h5", "folder", "online"])
def test_uint8_samples_are_the_codes_of_the_float_ones(data: dict[str, Path], name: str) -> None:
    floats = _datasets(data, crop=None)[name]
    codes = _datasets(data, crop=None, uint8=True)[name]
    for index in (0, 5):
        sample, raw = floats[index], codes[index]
        for key in ("degraded", "clean", "masks"):
            assert raw[key].dtype == torch.uint8 and raw[key].is_contiguous()
        converted = as_float(raw)  # type: ignore[arg-type]
        for key in KEYS:
            assert torch.equal(converted[key], sample[key]), key  # type: ignore[literal-required]
    batch = as_float(next(iter(DataLoader(codes, batch_size=2))))
    assert batch["degraded"].dtype == torch.float32 and batch["presence"].dtype == torch.float32
