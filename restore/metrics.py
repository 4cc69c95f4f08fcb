"""The evaluation protocol: one implementation for every method.

Images are compared as 8-bit RGB (``round(255 x)``), uncropped, at full resolution.
PSNR and SSIM (Gaussian window, sigma 1.5, 11 taps, K1 = 0.01, K2 = 0.03, as Wang et al.
2004) are computed on RGB by default or on the ITU-R BT.601 luma ``Y`` on request, per
image. The routing is scored by its selectivity (image-level: ``selectivity``; per pixel,
inside each degradation's mask over outside it: ``pixel_selectivity``), the mask error
and overlap, and the presence accuracy (definitions below and in docs/restore.md).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "mask_iou",
    "mask_mae",
    "pixel_selectivity",
    "presence_accuracy",
    "psnr",
    "quantize8",
    "rgb_to_y",
    "selectivity",
    "ssim",
]


def quantize8(x: Tensor) -> Tensor:
    """The image as an 8-bit file would hold it, back in [0, 1] (float64)."""
    return torch.round(x.double().clamp(0.0, 1.0) * 255.0) / 255.0


def rgb_to_y(x: Tensor) -> Tensor:
    """BT.601 luma of an RGB image in [0, 1], in [0, 1] (16-235 range scaled by 255)."""
    weights = torch.tensor([65.481, 128.553, 24.966], dtype=x.dtype, device=x.device)
    return (16.0 + torch.einsum("bchw,c->bhw", x * 255.0, weights / 255.0)).unsqueeze(1) / 255.0


def _prepare(pred: Tensor, target: Tensor, y_channel: bool) -> tuple[Tensor, Tensor]:
    if pred.shape != target.shape or pred.ndim != 4 or pred.shape[1] != 3:
        raise ValueError(
            f"need two (B, 3, H, W) images, got {tuple(pred.shape)}, {tuple(target.shape)}"
        )
    pred, target = quantize8(pred), quantize8(target)
    if y_channel:
        pred, target = rgb_to_y(pred), rgb_to_y(target)
    return pred, target


def psnr(pred: Tensor, target: Tensor, y_channel: bool = False) -> Tensor:
    """Per-image PSNR in dB, ``(B,)``; identical images give ``inf``."""
    pred, target = _prepare(pred, target, y_channel)
    mse = (pred - target).pow(2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(1.0 / mse)


def _gaussian_window(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    window = torch.exp(-(coords**2) / (2 * sigma**2))
    return window / window.sum()


def ssim(pred: Tensor, target: Tensor, y_channel: bool = False) -> Tensor:
    """Per-image SSIM, ``(B,)``: Gaussian window (sigma 1.5, 11 taps), valid region only,
    averaged over channels."""
    pred, target = _prepare(pred, target, y_channel)
    channels = pred.shape[1]
    window = _gaussian_window(11, 1.5, pred.dtype, pred.device)
    kernel_h = window.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    kernel_v = window.view(1, 1, -1, 1).expand(channels, 1, -1, 1)

    def blur(x: Tensor) -> Tensor:
        return F.conv2d(F.conv2d(x, kernel_h, groups=channels), kernel_v, groups=channels)

    c1, c2 = (0.01 * 1.0) ** 2, (0.03 * 1.0) ** 2
    mu_p, mu_t = blur(pred), blur(target)
    var_p = blur(pred * pred) - mu_p**2
    var_t = blur(target * target) - mu_t**2
    covariance = blur(pred * target) - mu_p * mu_t
    index = ((2 * mu_p * mu_t + c1) * (2 * covariance + c2)) / (
        (mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2)
    )
    return index.mean(dim=(1, 2, 3))


def selectivity(alpha: Tensor, maps: Tensor, presence: Tensor | None = None) -> dict[str, Tensor]:
    """How selectively the experts are used.

    The effective activation of expert ``i`` on an image is ``a_i = alpha_i * mean(m_i)``.
    ``most_over_least`` is ``max_i a_i / min_i a_i`` per image; with ``presence``,
    ``present_over_absent`` is the mean ``a_i`` of the present degradations over that of
    the absent ones, on images that have both (NaN elsewhere).
    """
    activation = alpha.double() * maps.double().mean(dim=(2, 3))
    ratios = {"most_over_least": activation.amax(1) / activation.amin(1).clamp_min(1e-12)}
    if presence is not None:
        present = presence.double() > 0.5
        both = present.any(1) & (~present).any(1)
        mean_present = (activation * present).sum(1) / present.sum(1).clamp_min(1)
        mean_absent = (activation * ~present).sum(1) / (~present).sum(1).clamp_min(1)
        ratio = mean_present / mean_absent.clamp_min(1e-12)
        ratios["present_over_absent"] = torch.where(both, ratio, torch.full_like(ratio, math.nan))
    return ratios


#: A mask whose values span less than this is uniform: it says nothing of where a
#: degradation is, so pixel selectivity is undefined for it.
_UNIFORM_SPAN = 0.05


def pixel_selectivity(
    alpha: Tensor,
    maps: Tensor,
    masks: Tensor,
    presence: Tensor,
    threshold: float | None = None,
) -> dict[str, Tensor]:
    """How much more each expert acts inside its degradation's mask than outside it.

    Expert ``i`` acts at pixel ``p`` with the effective weight ``e_i(p) = alpha_i m_i(p)``.
    With the mask ``M_i`` as the weight of "inside" and ``1 - M_i`` as that of "outside"::

        inside_over_outside_i = (sum_p e_i M_i / sum_p M_i)
                                / (sum_p e_i (1 - M_i) / sum_p (1 - M_i))

    For a binary mask this is ``mean(e_i | M_i = 1) / mean(e_i | M_i = 0)``; for the soft
    masks of streaks and flakes, whose opacity is rarely above 0.5, it still has a value
    where a hard threshold would find no pixel inside. With ``threshold`` the pixels are
    split hard instead: inside where ``M_i > threshold``. A degradation qualifies when it is
    present, its mask has weight both inside and outside (at least one pixel's worth of
    each) and varies over the image (by ``_UNIFORM_SPAN`` at least: the weighted ratio of
    a uniform mask, such as uniform haze over a close-up, is 1 whatever the router);
    ``per_degradation`` is the ratio ``(B, 4)``, NaN where it does not qualify, and
    ``inside_over_outside`` its mean over the qualifying degradations of each image,
    ``(B,)``, NaN where none does. Float64, the denominator clamped at 1e-12. A router
    that weighs every pixel alike scores 1.

    Args:
        alpha: the gate, ``(B, 4)``.
        maps: the parser's maps, ``(B, 4, H, W)``.
        masks: the ground-truth masks, ``(B, 4, H, W)`` in [0, 1].
        presence: which degradations the image has, ``(B, 4)`` (present where > 0.5).
        threshold: split inside and outside at this mask value instead of weighting.

    Example:
        >>> maps = torch.full((1, 4, 2, 2), 0.1)
        >>> maps[:, 2, 0] = 1.0  # the rain expert, fully on along the top row
        >>> masks = torch.zeros(1, 4, 2, 2)
        >>> masks[:, 2, 0] = 1.0
        >>> ratios = pixel_selectivity(torch.ones(1, 4), maps, masks, torch.tensor([[0, 0, 1, 0]]))
        >>> round(float(ratios["inside_over_outside"][0]), 6)
        10.0
    """
    if maps.ndim != 4 or maps.shape != masks.shape or alpha.shape != maps.shape[:2]:
        raise ValueError(
            f"need alpha (B, 4) and maps, masks (B, 4, H, W) alike, got {tuple(alpha.shape)}, "
            f"{tuple(maps.shape)}, {tuple(masks.shape)}"
        )
    if presence.shape != alpha.shape:
        raise ValueError(f"presence must be {tuple(alpha.shape)}, got {tuple(presence.shape)}")
    effective = alpha.double()[:, :, None, None] * maps.double()
    truth = masks.double()
    inside = truth if threshold is None else (truth > threshold).double()
    outside = 1.0 - inside
    weight_inside, weight_outside = inside.sum(dim=(2, 3)), outside.sum(dim=(2, 3))
    mean_inside = (effective * inside).sum(dim=(2, 3)) / weight_inside.clamp_min(1e-12)
    mean_outside = (effective * outside).sum(dim=(2, 3)) / weight_outside.clamp_min(1e-12)
    ratio = mean_inside / mean_outside.clamp_min(1e-12)
    present = presence.to(ratio.device).double() > 0.5
    span = truth.amax(dim=(2, 3)) - truth.amin(dim=(2, 3))
    qualifies = present & (weight_inside >= 1) & (weight_outside >= 1) & (span >= _UNIFORM_SPAN)
    per_degradation = torch.where(qualifies, ratio, torch.full_like(ratio, math.nan))
    return {
        "inside_over_outside": per_degradation.nanmean(dim=1),
        "per_degradation": per_degradation,
    }


def mask_mae(maps: Tensor, masks: Tensor) -> Tensor:
    """Mean absolute error between maps and ground-truth masks, per image ``(B,)``."""
    return (maps.double() - masks.double()).abs().mean(dim=(1, 2, 3))


def mask_iou(maps: Tensor, masks: Tensor, threshold: float = 0.5) -> Tensor:
    """IoU of ``maps > threshold`` against ``masks > threshold``, per image ``(B,)``;
    1 where both are empty."""
    predicted, truth = maps > threshold, masks > threshold
    union = (predicted | truth).sum(dim=(1, 2, 3))
    intersection = (predicted & truth).sum(dim=(1, 2, 3))
    return torch.where(
        union > 0, intersection / union.clamp_min(1), torch.ones_like(union, dtype=torch.float64)
    )


def presence_accuracy(weights: Tensor, presence: Tensor, threshold: float = 0.5) -> Tensor:
    """Fraction of the four degradations whose presence ``weights > threshold`` gets right,
    per image ``(B,)``."""
    return ((weights > threshold) == (presence > 0.5)).double().mean(dim=1)
