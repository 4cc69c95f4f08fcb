"""Partial targets: the clean photo degraded by what a sample keeps, replayed exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from skyclear.datasets import CDD11Zarr
from skyclear.datasets.partial import (
    Removal,
    keep_tier,
    parse_removal,
    partial_target,
    record_params,
)
from skyclear.degrade.compose import parse_tier
from skyclear.degrade.io import from_numpy
from skyclear.degrade.presets import preset
from skyclear.degrade.store.format import open_store
from skyclear.degrade.store.writer import to_uint8
from skyclear.restore.data import open_dataset

from ..photos import write_photos


def _codes(image: torch.Tensor) -> np.ndarray:
    return (image * 255).round().byte().permute(1, 2, 0).numpy()


def test_the_stored_parameters_replay_the_stored_sample(store: Path) -> None:
    group = open_store(store)
    composite = preset("physical", "flat")
    for m in range(0, group["degraded"].shape[0], 5):
        tier, params, _ = record_params(group["params"][m])
        clean = from_numpy(group["clean"][int(group["source"][m])])
        whole = partial_target(composite, clean, parse_tier(tier), frozenset(), params, None)
        assert np.array_equal(whole, group["degraded"][m])


def test_a_target_keeps_exactly_what_is_not_removed(store: Path) -> None:
    group = open_store(store)
    dataset = CDD11Zarr(store, split=None, crop=None, tiers=("low_haze_rain",),
                        removal=Removal(remove=frozenset({"haze"})))  # fmt: skip
    composite = preset("physical", "flat")
    for item in range(len(dataset)):
        sample = dataset[item]
        m = int(dataset.indices[item])
        _, params, _ = record_params(group["params"][m])
        clean = from_numpy(group["clean"][int(group["source"][m])])
        kept = {name: params[name] for name in ("low", "rain")}
        with torch.no_grad():
            expected = composite.apply(clean, "low_rain", kept, None).image[0]
        assert np.array_equal(_codes(sample["target"]), to_uint8(expected.permute(1, 2, 0)))
        assert torch.equal(sample["remove"], torch.tensor([0.0, 1.0, 0.0, 0.0]))
        assert not torch.equal(sample["target"], sample["degraded"])
        assert not torch.equal(sample["target"], sample["clean"])


def test_removing_nothing_or_everything_gives_the_degraded_or_the_clean_image(
    store: Path,
) -> None:
    for remove, field in ((frozenset(), "degraded"), (frozenset({"low", "haze", "rain", "snow"}),
                                                      "clean")):  # fmt: skip
        dataset = CDD11Zarr(store, "test", 16, False, removal=Removal(remove=remove), uint8=True)
        for item in range(len(dataset)):
            sample = dataset[item]
            assert sample["target"].dtype == torch.uint8
            assert torch.equal(sample["target"], sample[field])


def test_training_draws_proper_subsets_and_random_bits_for_what_is_absent(store: Path) -> None:
    torch.manual_seed(0)
    always = Removal(probability=1.0)
    present = ("low", "haze", "rain")
    seen, absent_bits = set(), set()
    for _ in range(200):
        removed, vector = always.choose(present)
        assert removed and removed < set(present)
        assert [bool(vector[i]) for i in range(3)] == [name in removed for name in present]
        seen.add(removed)
        absent_bits.add(float(vector[3]))
    assert len(seen) == 6 and absent_bits == {0.0, 1.0}
    never = Removal(probability=0.0)
    assert all(never.choose(present)[0] == set(present) for _ in range(20))
    assert Removal(probability=1.0).choose(("rain",))[0] == {"rain"}  # one: all of it


def test_names_are_checked_and_data_without_parameters_refused(tmp_path: Path) -> None:
    assert parse_removal(" rain,snow ") == {"rain", "snow"}
    with pytest.raises(ValueError, match="low, haze, rain, snow"):
        parse_removal("rain,fog")
    assert keep_tier(("low", "haze", "rain"), frozenset({"haze"})) == "low_rain"
    assert keep_tier(("rain",), frozenset({"rain"})) is None
    write_photos(tmp_path / "photos", count=2)
    with pytest.raises(ValueError, match="recorded parameters"):
        open_dataset(tmp_path / "photos", "train", 16, True, removal=Removal(0.5))


def test_a_store_from_before_the_distance_parameter_still_replays() -> None:
    text = json.dumps({"tier": "haze", "params": {"haze": {"airlight": [0.9, 0.9, 0.9],
                       "beta": 0.1, "far": 100.0, "horizon": 0.4, "near": 2.0,
                       "nonuniformity": 0.0, "seed": 3}}})  # fmt: skip
    _, params, source = record_params(text)
    assert "distance" in params["haze"] and source == "prior"


def test_a_partial_target_reads_the_clean_photo_once(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the clean cache (its budget spent), a sample with a partial target reads
    its clean photo's chunk once, as a sample without one does."""
    dataset = CDD11Zarr(store, split=None, crop=16, tiers=("low_haze_rain",), clean_cache_mb=0,
                        removal=Removal(remove=frozenset({"haze"})))  # fmt: skip
    reads: list[str] = []
    read = dataset._read

    def counted(name: str, index: int, window: tuple[slice, ...]) -> np.ndarray:
        reads.append(name)
        return read(name, index, window)

    monkeypatch.setattr(dataset, "_read", counted)
    sample = dataset[0]
    assert reads.count("clean") == 1 and "target" in sample
