"""Metrics against references; losses' terms and masking."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skyclear.restore.losses import LossWeights, restoration_loss
from skyclear.restore.metrics import (
    mask_iou,
    mask_mae,
    presence_accuracy,
    psnr,
    quantize8,
    rgb_to_y,
    selectivity,
    ssim,
)


def _images() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(2, 3, 40, 48, generator=g)
    noisy = (clean + 0.05 * torch.randn(clean.shape, generator=g)).clamp(0, 1)
    return noisy, clean


def _u8(x: torch.Tensor) -> np.ndarray:
    return (quantize8(x) * 255).round().byte().permute(0, 2, 3, 1).numpy()


def test_psnr_and_ssim_match_scikit_image() -> None:
    noisy, clean = _images()
    ours_psnr, ours_ssim = psnr(noisy, clean), ssim(noisy, clean)
    for b in range(2):
        a, c = _u8(noisy)[b], _u8(clean)[b]
        assert float(ours_psnr[b]) == pytest.approx(
            peak_signal_noise_ratio(c, a, data_range=255), abs=1e-6
        )
        reference = structural_similarity(
            c, a, data_range=255, channel_axis=-1, gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False,
        )  # fmt: skip
        assert float(ours_ssim[b]) == pytest.approx(reference, abs=1e-4)


def test_metrics_are_on_8bit_values_and_y_channel() -> None:
    noisy, clean = _images()
    assert torch.equal(psnr(noisy, clean), psnr(quantize8(noisy).float(), clean))
    assert math.isinf(float(psnr(clean, clean)[0])) and float(
        ssim(clean, clean)[0]
    ) == pytest.approx(1.0)
    white = torch.ones(1, 3, 2, 2)
    assert float(rgb_to_y(white).mean()) == pytest.approx(235 / 255, abs=1e-4)
    assert psnr(noisy, clean, y_channel=True).shape == (2,)


def test_selectivity_definitions() -> None:
    maps = torch.zeros(1, 4, 4, 4)
    maps[:, 0] = 1.0  # only the low-light expert is spatially active...
    maps[:, 1] = 0.1
    alpha = torch.tensor([[1.0, 1.0, 0.5, 0.5]])
    maps[:, 2:] = 0.2
    ratios = selectivity(alpha, maps, torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    assert float(ratios["most_over_least"][0]) == pytest.approx(1.0 / 0.1)
    assert float(ratios["present_over_absent"][0]) == pytest.approx(1.0 / ((0.1 + 0.1 + 0.1) / 3))
    no_absent = selectivity(alpha, maps, torch.ones(1, 4))
    assert math.isnan(float(no_absent["present_over_absent"][0]))


def test_mask_and_presence_scores() -> None:
    masks = torch.zeros(1, 4, 4, 4)
    masks[:, 1, :2] = 1.0
    maps = masks.clone()
    maps[:, 1, 2:3] = 0.8
    assert float(mask_mae(maps, masks)[0]) == pytest.approx(0.8 * 4 / 64)
    assert float(mask_iou(maps, masks)[0]) == pytest.approx(8 / 12)
    weights = torch.tensor([[0.9, 0.2, 0.6, 0.1]])
    assert float(presence_accuracy(weights, torch.tensor([[1.0, 0.0, 0.0, 0.0]]))[0]) == 0.75


def test_loss_terms_and_presence_only_samples() -> None:
    residual, target = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    maps = torch.full((2, 4, 4, 4), 0.5)
    masks = torch.zeros(2, 4, 4, 4)
    weights, presence = torch.full((2, 4), 0.5), torch.zeros(2, 4)
    full = restoration_loss(residual, target, maps, weights, masks, presence)
    assert float(full["residual"]) == 1.0 and float(full["maps"]) == pytest.approx(math.log(2))
    none = restoration_loss(residual, target, maps, weights, masks, presence,
                            has_masks=torch.tensor([False, False]))  # fmt: skip
    assert float(none["maps"]) == 0.0 and float(none["presence"]) == pytest.approx(math.log(2))
    weighted = restoration_loss(residual, target, maps, weights, masks, presence,
                                loss_weights=LossWeights(maps=1.0, presence=0.0))  # fmt: skip
    assert float(weighted["loss"]) == pytest.approx(1.0 + math.log(2))
    with pytest.raises(ValueError, match=">= 0"):
        LossWeights(maps=-1.0)
