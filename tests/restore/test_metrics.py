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
    pixel_selectivity,
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


def _pixel_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two 4x4 images. The first has haze (mask everywhere), rain (top half) and snow (left
    column at 0.9, the next at exactly 0.5); low is absent, though its mask and map would
    give a ratio. The second has rain alone, and routing uniform over every pixel."""
    masks = torch.zeros(2, 4, 4, 4)
    masks[:, 0, :, 2:] = 1.0  # absent: must not count
    masks[:, 1] = 1.0  # no pixel outside: does not qualify
    masks[:, 2, :2] = 1.0
    masks[:, 3, :, 0] = 0.9
    masks[:, 3, :, 1] = 0.5  # not above the threshold: outside
    maps = torch.zeros(2, 4, 4, 4)
    maps[0, 0] = torch.where(masks[0, 0] > 0.5, 0.9, 0.3)
    maps[0, 1] = 0.6
    maps[0, 2] = torch.where(masks[0, 2] > 0.5, 1.0, 0.1)  # e = 0.5 inside, 0.05 outside
    maps[0, 3] = torch.where(masks[0, 3] > 0.5, 0.8, 0.2)
    maps[1] = 0.3
    alpha = torch.tensor([[0.9, 0.4, 0.5, 0.25], [0.7, 0.7, 0.7, 0.7]])
    presence = torch.tensor([[0.0, 1.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.0]])
    return alpha, maps, masks, presence


def test_pixel_selectivity_closed_form() -> None:
    alpha, maps, masks, presence = _pixel_case()
    ratios = pixel_selectivity(alpha, maps, masks, presence, threshold=0.5)
    per = ratios["per_degradation"]
    assert per.dtype == torch.float64 and per.shape == (2, 4)
    assert float(per[0, 2]) == pytest.approx(10.0)  # 1 inside over 0.1 outside
    assert float(per[0, 3]) == pytest.approx(4.0)  # 0.8 over 0.2: 0.5 is outside
    assert torch.isnan(per[0, :2]).all()  # low absent, haze everywhere
    assert float(ratios["inside_over_outside"][0]) == pytest.approx((10.0 + 4.0) / 2)
    assert float(per[1, 2]) == pytest.approx(1.0)  # uniform routing
    assert float(ratios["inside_over_outside"][1]) == pytest.approx(1.0)
    assert torch.isnan(per[1, [0, 1, 3]]).all()


def test_pixel_selectivity_undefined_and_guarded() -> None:
    alpha, maps, masks, presence = _pixel_case()
    only_haze = torch.tensor([[0.0, 1.0, 0.0, 0.0]] * 2)
    assert torch.isnan(
        pixel_selectivity(alpha, maps, masks, only_haze)["inside_over_outside"]
    ).all()
    maps[0, 2] = torch.where(masks[0, 2] > 0.5, 1.0, 0.0)  # nothing outside its mask
    guarded = pixel_selectivity(alpha, maps, masks, presence)["per_degradation"][0, 2]
    assert float(guarded) == pytest.approx(0.5 / 1e-12)
    with pytest.raises(ValueError, match="alike"):
        pixel_selectivity(alpha, maps[:, :, :2], masks, presence)


def test_pixel_selectivity_weighs_soft_masks() -> None:
    """Streaks of opacity 0.3 never pass a 0.5 threshold; weighted by the mask they still
    score: inside mean 1, outside (4 x 0.7 x 1 + 12 x 0.1) / (4 x 0.7 + 12) = 4 / 14.8."""
    masks = torch.zeros(1, 4, 4, 4)
    masks[:, 2, 0] = 0.3
    maps = torch.full((1, 4, 4, 4), 0.1)
    maps[:, 2, 0] = 1.0
    alpha, rain = torch.ones(1, 4), torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    soft = pixel_selectivity(alpha, maps, masks, rain)["per_degradation"][0, 2]
    assert float(soft) == pytest.approx(14.8 / 4.0)
    hard = pixel_selectivity(alpha, maps, masks, rain, threshold=0.5)["per_degradation"][0, 2]
    assert math.isnan(float(hard))


def test_pixel_selectivity_is_undefined_for_a_uniform_mask() -> None:
    """Uniform haze (a close-up behind a hazy street) has a mask of one value: weighted by
    it, inside and outside are the same pixels in the same proportion and the ratio is 1
    for any router, so it is left undefined rather than reported as 1."""
    masks = torch.zeros(1, 4, 4, 4)
    masks[:, 1] = 0.6
    maps = torch.full((1, 4, 4, 4), 0.1)
    maps[:, 1, 0] = 1.0
    haze = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    ratios = pixel_selectivity(torch.ones(1, 4), maps, masks, haze)["per_degradation"]
    assert math.isnan(float(ratios[0, 1]))
    masks[:, 1, 0] = 0.7  # a little structure: defined again
    ratios = pixel_selectivity(torch.ones(1, 4), maps, masks, haze)["per_degradation"]
    assert float(ratios[0, 1]) > 1


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
    only_maps = LossWeights(mask_weight=1.0, presence_weight=0.0)
    weighted = restoration_loss(
        residual, target, maps, weights, masks, presence, loss_weights=only_maps
    )
    assert float(weighted["loss"]) == pytest.approx(1.0 + math.log(2))
    with pytest.raises(ValueError, match=">= 0"):
        LossWeights(mask_weight=-1.0)


def test_overlap_term_weighs_a_sparse_mask_as_much_as_a_full_one() -> None:
    """Two streaks' worth of pixels in a 16x16 mask: a flat map at the mask's mean, which
    finds no streak, costs the pixel-mean cross-entropy little more than the right map, and
    the overlap term most of what one channel can cost; and it is worked by hand on a 2x2
    case."""
    from skyclear.restore.losses import soft_overlap

    maps, masks = (
        torch.tensor([[[[0.5, 0.0], [1.0, 0.0]]]]),
        torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]]),
    )
    # 2 * (0.5 + 1) + 1 = 4 over 1.5 + 2 + 1 = 4.5
    assert float(soft_overlap(maps, masks)[0, 0]) == pytest.approx(4 / 4.5)
    assert float(soft_overlap(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))[0, 0]) == 1.0

    sparse = torch.zeros(1, 4, 16, 16)
    sparse[:, 2, :, 3] = 0.9
    sparse[:, 2, :, 11] = 0.9
    found, missed = sparse.clone(), torch.zeros_like(sparse)
    missed[:, 2] = sparse[:, 2].mean()
    residual = torch.zeros(1, 3, 16, 16)
    weights = LossWeights(mask_weight=1.0, presence_weight=0.0, overlap_weight=1.0)

    def terms(maps: torch.Tensor) -> dict[str, torch.Tensor]:
        return restoration_loss(residual, residual, maps, None, sparse, None, loss_weights=weights)

    good, bad = terms(found), terms(missed)
    assert float(bad["maps"] - good["maps"]) < 0.1  # the mean hardly tells them apart
    assert float(bad["overlap"] - good["overlap"]) > 0.15  # one channel of four: at most 0.25
    assert float(bad["loss"] - good["loss"]) > 2 * float(bad["maps"] - good["maps"])
    only_maps = LossWeights(mask_weight=1.0, presence_weight=0.0)
    off = restoration_loss(residual, residual, missed, None, sparse, None, loss_weights=only_maps)
    assert float(off["loss"]) == pytest.approx(float(bad["maps"]))
