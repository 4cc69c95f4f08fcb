"""The kornia adapters keep kornia's contracts and the core's results."""

from __future__ import annotations

import pytest
import torch

K = pytest.importorskip("kornia.augmentation")

from skyclear.degrade import DEGRADATIONS, Rain  # noqa: E402
from skyclear.degrade.augment import kornia as sk  # noqa: E402

AUGMENTATIONS = {
    "low": lambda **kw: sk.RandomLowLight(**kw),
    "haze": lambda **kw: sk.RandomHaze(**kw),
    "rain": lambda **kw: sk.RandomRain(density=(3000, 4000), **kw),
    "snow": lambda **kw: sk.RandomSnow(density=(3000, 4000), **kw),
    "tier": lambda **kw: sk.RandomTier(**kw),
}


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_shape_dtype_masks_and_input_untouched(name: str, image: torch.Tensor) -> None:
    before = image.clone()
    aug = AUGMENTATIONS[name](p=1.0)
    out = aug(image)
    assert out.shape == image.shape and out.dtype == image.dtype
    assert torch.equal(image, before)
    assert aug.masks is not None and aug.masks.shape == (2, len(DEGRADATIONS), 48, 64)
    assert aug.masks.max() > 0 and not torch.equal(out, image)


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_p0_is_identity(name: str, image: torch.Tensor) -> None:
    aug = AUGMENTATIONS[name](p=0.0)
    out = aug(image)
    assert torch.equal(out, image)
    assert aug.masks is None or not aug.masks.any()


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_replay_and_seed(name: str, image: torch.Tensor) -> None:
    aug = AUGMENTATIONS[name](p=0.7)
    torch.manual_seed(3)
    first = aug(image)
    replay = aug(image, params=aug._params)
    assert torch.equal(first, replay)
    torch.manual_seed(3)
    assert torch.equal(AUGMENTATIONS[name](p=0.7)(image), first)


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_same_on_batch(name: str, image: torch.Tensor) -> None:
    aug = AUGMENTATIONS[name](p=1.0, same_on_batch=True)
    aug(torch.cat([image[:1], image[:1]]))
    for key, value in aug._params.items():
        if key not in ("batch_prob", "forward_input_shape"):
            assert torch.equal(value[0], value[1]), key


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_gradients_flow(name: str, image: torch.Tensor) -> None:
    x = image.clone().requires_grad_(True)
    AUGMENTATIONS[name](p=1.0)(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_inside_augmentation_sequential_masks_follow_the_flip(
    name: str, image: torch.Tensor
) -> None:
    mask = torch.rand(2, 1, 48, 64)
    weather = AUGMENTATIONS[name](p=1.0)
    sequence = K.AugmentationSequential(
        K.RandomHorizontalFlip(p=1.0), weather, data_keys=["input", "mask"]
    )
    out, out_mask = sequence(image, mask)
    assert torch.equal(out_mask, mask.flip(-1)), "intensity augmentations leave masks to kornia"
    replay = weather(image.flip(-1), params=weather._params)
    torch.testing.assert_close(out, replay)


def test_adapter_equals_the_core_operator(image: torch.Tensor) -> None:
    aug = sk.RandomRain(p=1.0, density=(500, 900))
    out = aug(image)
    params = {key: aug._params[key] for key in Rain().param_names}
    core = Rain(density=(500, 900)).apply(image, params)
    assert torch.equal(out, core.image)
    assert aug.masks is not None and torch.equal(aug.masks[:, 2:3], core.mask)


def test_haze_takes_depth(image: torch.Tensor) -> None:
    aug = sk.RandomHaze(beta=(0.1, 0.1), p=1.0)
    aug(image, depth=torch.full((1, 1, 48, 64), 10.0))
    assert aug.masks is not None
    torch.testing.assert_close(aug.masks[:, 1], torch.full((2, 48, 64), 0.6321), atol=1e-4, rtol=0)


def test_tier_weights_and_errors(image: torch.Tensor) -> None:
    aug = sk.RandomTier(tiers=("rain", "snow"), weights=(0.0, 1.0), p=1.0)
    aug(image)
    assert aug.masks is not None and not aug.masks[:, 2].any() and aug.masks[:, 3].any()
    with pytest.raises(ValueError, match="weights"):
        sk.RandomTier(tiers=("rain",), weights=(1.0, 1.0))
    with pytest.raises(ValueError, match="low <= high"):
        sk.RandomSnow(radius=(5.0, 1.0))


@pytest.mark.cuda
def test_cuda_batch(image: torch.Tensor) -> None:
    aug = sk.RandomTier(p=1.0)
    out = aug(image.cuda())
    assert out.is_cuda and aug.masks is not None and aug.masks.is_cuda
