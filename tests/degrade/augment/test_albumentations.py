"""The albumentations adapters keep albumentations' contracts and the core's results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

A = pytest.importorskip("albumentations")

from skyclear.degrade import Composite  # noqa: E402
from skyclear.degrade import Haze as CoreHaze  # noqa: E402
from skyclear.degrade.augment import albumentations as sa  # noqa: E402
from skyclear.degrade.io import from_numpy  # noqa: E402

from ...photos import photo  # noqa: E402

TRANSFORMS = {
    "low": lambda p: sa.LowLight(p=p),
    "haze": lambda p: sa.Haze(p=p),
    "rain": lambda p: sa.Rain(density=(3000, 4000), p=p),
    "snow": lambda p: sa.Snow(density=(3000, 4000), p=p),
    "tier": lambda p: sa.RandomTier(p=p),
}
TARGETS = {"weather_masks": "mask", "clean": "image"}


def _pipeline(transform: object, *extra: object, seed: int = 0) -> A.Compose:
    return A.Compose([transform, *extra], additional_targets=TARGETS, seed=seed)


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_shape_dtype_and_input_untouched(name: str) -> None:
    image = photo(1)
    before = image.copy()
    for array in (image, image.astype(np.float32) / 255):
        out = _pipeline(TRANSFORMS[name](1.0))(image=array, clean=array.copy())
        assert out["image"].shape == array.shape and out["image"].dtype == array.dtype
        assert out["weather_masks"].shape == (*array.shape[:2], 4)
        assert out["weather_masks"].dtype == np.float32
        assert np.array_equal(out["clean"], array), "the paired clean image is never degraded"
        assert not np.array_equal(out["image"], array)
    assert np.array_equal(image, before)


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_uint8_and_float32_agree(name: str) -> None:
    image = photo(2)
    as_uint8 = _pipeline(TRANSFORMS[name](1.0), seed=3)(image=image)["image"]
    as_float = _pipeline(TRANSFORMS[name](1.0), seed=3)(image=image.astype(np.float32) / 255)
    gap = np.abs(as_uint8.astype(np.float32) / 255 - as_float["image"])
    assert gap.max() <= 2 / 255


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_p0_is_identity_with_zero_masks(name: str) -> None:
    image = photo(3)
    out = _pipeline(TRANSFORMS[name](0.0))(image=image)
    assert np.array_equal(out["image"], image)
    assert not out["weather_masks"].any()


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_seed_reproducibility(name: str) -> None:
    image = photo(4)
    first = _pipeline(TRANSFORMS[name](1.0), seed=7)(image=image)
    again = _pipeline(TRANSFORMS[name](1.0), seed=7)(image=image)
    other = _pipeline(TRANSFORMS[name](1.0), seed=8)(image=image)
    assert np.array_equal(first["image"], again["image"])
    assert np.array_equal(first["weather_masks"], again["weather_masks"])
    assert not np.array_equal(first["image"], other["image"])


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_serialization_round_trip(name: str, tmp_path: Path) -> None:
    pipeline = _pipeline(TRANSFORMS[name](0.9), A.HorizontalFlip(p=0.5), seed=5)
    for restored in (
        A.from_dict(A.to_dict(pipeline)),
        _save_load(pipeline, tmp_path / "pipeline.yaml"),
    ):
        restored.set_random_seed(5)
        pipeline.set_random_seed(5)
        image = photo(5)
        mine, theirs = pipeline(image=image), restored(image=image)
        assert np.array_equal(mine["image"], theirs["image"])
        assert A.to_dict(restored) == A.to_dict(pipeline)


def _save_load(pipeline: A.Compose, path: Path) -> A.Compose:
    A.save(pipeline, str(path), data_format="yaml")
    return A.load(str(path), data_format="yaml")


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_masks_follow_a_flip(name: str) -> None:
    image = photo(6)
    plain = _pipeline(TRANSFORMS[name](1.0), seed=9)(image=image)
    flipped = _pipeline(TRANSFORMS[name](1.0), A.HorizontalFlip(p=1.0), seed=9)(image=image)
    assert np.array_equal(flipped["weather_masks"], plain["weather_masks"][:, ::-1])
    assert np.array_equal(flipped["image"], plain["image"][:, ::-1])


def test_adapter_equals_the_core_operator() -> None:
    image = photo(7).astype(np.float32) / 255
    transform = sa.Haze(beta=(0.05, 0.2), p=1.0)
    depth = np.full(image.shape[:2], 15.0, np.float32)
    out = A.Compose([transform], seed=1)(image=image, depth=depth)
    generator_seed = transform.params["generator_seed"]  # the seed this call drew
    core = CoreHaze(beta=(0.05, 0.2))(
        from_numpy(image),
        generator=torch.Generator().manual_seed(generator_seed),
        depth=torch.from_numpy(depth).view(1, 1, *depth.shape),
    )
    np.testing.assert_array_equal(out["image"], core.image[0].permute(1, 2, 0).numpy())
    np.testing.assert_array_equal(out["weather_masks"][..., 1], core.mask[0, 0].numpy())


def test_tier_weights_and_errors() -> None:
    only = sa.RandomTier(tiers=["rain", "snow"], weights=[1.0, 0.0], p=1.0)
    out = A.Compose([only], seed=0)(image=photo(8))
    masks = out["weather_masks"]
    assert masks[..., 2].max() > 0 and not masks[..., 3].any()
    with pytest.raises(ValueError, match="weights"):
        sa.RandomTier(tiers=["rain"], weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="low <= high"):
        sa.Rain(density=(5.0, 1.0))
    with pytest.raises(ValueError, match="tiers"):
        sa.RandomTier(tiers=["fog"])
    assert isinstance(only.composite, Composite)


class _Images(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self) -> None:
        self.pipeline = A.Compose([sa.Rain(p=1.0)], additional_targets=TARGETS, seed=0)
        self.image = photo(9)

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> np.ndarray:
        return self.pipeline(image=self.image)["image"]


def test_dataloader_workers_differ_and_reproduce() -> None:
    def run() -> list[np.ndarray]:
        torch.manual_seed(0)
        loader = torch.utils.data.DataLoader(_Images(), batch_size=1, num_workers=2)
        return [batch[0].numpy() for batch in loader]

    first, again = run(), run()
    # Items 0 and 1 are each the first draw of a different forked worker.
    assert not np.array_equal(first[0], first[1]), "workers must not repeat each other"
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
