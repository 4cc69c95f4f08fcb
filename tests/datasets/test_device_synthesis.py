"""Clean crops in the loader, degraded a batch at a time where the batch goes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from skyclear.datasets import CleanCrops, OnlineSynthesis, degrade_batch
from skyclear.degrade import Composite
from skyclear.degrade.names import DEGRADATIONS, TIERS
from torch.utils.data import DataLoader, default_collate

from ..photos import write_photos


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clean-photos")
    write_photos(root, count=3)
    return root


def _batch(crops: CleanCrops, items: list[int]) -> dict[str, torch.Tensor]:
    return default_collate([crops[item] for item in items])


def test_clean_crops_are_online_synthesis_items_left_clean(photos: Path) -> None:
    crops = CleanCrops(photos, size=32, uint8=True)
    online = OnlineSynthesis(photos, size=32, uint8=True)
    assert len(crops) == len(online) == 3 * len(TIERS)
    for item in (0, 5, 17, -1):
        assert torch.equal(crops[item]["clean"], online[item]["clean"])
        assert crops[item]["tier"] == online[item]["tier"]
        assert crops[item]["clean"].dtype == torch.uint8
    seeds = {int(crops[item]["seed"]) for item in range(len(crops))}
    assert len(seeds) == len(crops)  # every item its own degradation
    assert int(CleanCrops(photos, size=32)[4]["seed"]) == int(crops[4]["seed"])
    before = int(crops[4]["seed"])
    crops.set_epoch(1)
    assert int(crops[4]["seed"]) != before  # each epoch draws anew
    with pytest.raises(IndexError):
        crops[len(crops)]


def test_a_degraded_batch_keeps_the_sample_contract(photos: Path) -> None:
    crops = CleanCrops(photos, size=32, crop=24, random_crop=False, uint8=True)
    batch = degrade_batch(_batch(crops, list(range(11))))
    assert batch["degraded"].shape == batch["clean"].shape == (11, 3, 24, 24)
    assert batch["masks"].shape == (11, 4, 24, 24)
    assert batch["degraded"].dtype == batch["masks"].dtype == torch.float32
    assert torch.equal(batch["tier"], torch.arange(11))
    assert bool(batch["has_masks"].all())
    for i, tier in enumerate(TIERS):
        present = torch.tensor([name in tier.split("_") for name in DEGRADATIONS]).float()
        assert torch.equal(batch["presence"][i], present), tier
        peaks = batch["masks"][i].amax(dim=(1, 2))
        assert torch.equal(peaks > 0, present > 0), tier  # a mask for each, none else
    for key in ("degraded", "clean", "masks"):  # 8-bit codes, as a store holds them
        codes = batch[key] * 255
        assert torch.equal(codes, codes.round()), key
    assert not torch.equal(batch["degraded"], batch["clean"])


def test_a_sample_is_the_same_in_any_batch_and_from_its_own_seed(photos: Path) -> None:
    crops = CleanCrops(photos, size=32, crop=24, random_crop=False, uint8=True)
    items = [3, 14, 25, 9, 20, 31, 0, 10]
    whole = degrade_batch(_batch(crops, items))
    halves = [degrade_batch(_batch(crops, part)) for part in (items[4:], items[:4])]
    together = {key: torch.cat([halves[1][key], halves[0][key]]) for key in whole}
    for key in ("degraded", "masks"):  # one code apart at the odd pixel at most
        assert (whole[key] - together[key]).abs().max() <= 1 / 255 + 1e-6, key
        assert (whole[key] != together[key]).float().mean() < 1e-3, key
    composite = Composite()
    for row, item in enumerate(items):  # the composite's draw from the item's seed
        sample = crops[item]
        tier = TIERS[int(sample["tier"])]
        generator = torch.Generator().manual_seed(int(sample["seed"]))
        alone = composite(sample["clean"][None].float() / 255, tier, generator)
        codes = alone.image.mul(255).round().div(255)
        assert (whole["degraded"][row] - codes[0]).abs().max() <= 1 / 255 + 1e-6, tier
    reseeded = degrade_batch({**_batch(crops, items), "seed": torch.arange(8) + 99})
    assert not torch.equal(reseeded["degraded"], whole["degraded"])


def test_a_loader_of_clean_crops_feeds_the_device(photos: Path) -> None:
    crops = CleanCrops(photos, size=32, crop=16, random_crop=False, uint8=True)
    loader = DataLoader(crops, batch_size=6, num_workers=2, shuffle=False)
    first = next(iter(loader))
    assert set(first) == {"clean", "tier", "seed"}
    assert torch.equal(first["seed"], _batch(crops, list(range(6)))["seed"])
    assert degrade_batch(first)["degraded"].shape == (6, 3, 16, 16)


@pytest.mark.cuda
def test_degrade_batch_on_cuda_matches_the_cpu(photos: Path) -> None:
    crops = CleanCrops(photos, size=32, crop=24, random_crop=False, uint8=True)
    batch = _batch(crops, list(range(11)))
    on_cpu = degrade_batch(batch)
    on_gpu = degrade_batch({**batch, "clean": batch["clean"].cuda()})
    assert on_gpu["degraded"].is_cuda and on_gpu["presence"].is_cuda
    for key in ("degraded", "masks"):  # the same draws: counter-based fields, CPU params
        difference = (on_gpu[key].cpu() - on_cpu[key]).abs()
        assert difference.max() <= 2 / 255 and difference.mean() < 1e-3, key
