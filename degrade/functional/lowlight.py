"""Low light: less light on the scene, then a camera's noise and quantisation.

The scene's linear radiance ``J`` is lit by ``G(p) = exposure * g(p)``, a global linear gain
times a smooth illumination field with spatial mean 1 (``g = exp(spread f) / mean(exp(spread
f))``, ``f`` a unit-variance smooth field), so the mean gain equals ``exposure`` (the gain is
capped at 1, which only bites for exposures near 1 with a wide spread). The
sensor then records ``y = G J + n`` with heteroscedastic Gaussian noise of variance
``shot * G J + read``: the Poisson-Gaussian model of Foi et al. (2008) in the form and with
the calibration ranges of Brooks et al., "Unprocessing Images for Learned Raw Denoising"
(CVPR 2019). ``y`` is clipped to the sensor's range [0, 1] and quantised to ``bits`` bits
(an ADC; ``bits = 0`` keeps it continuous).

The mask is the darkening fraction ``clip(1 - G, 0, 1)``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .._scratch import scratch_like
from . import counter_rng
from .fields import smooth_field

__all__ = ["illumination_gain", "low_light", "sensor_noise"]

_ILLUMINATION_CELLS = 3  # illumination varies over about a third of the frame
_STREAM_FIELD = 11
_STREAM_NOISE = 12


def _per_sample(value: Tensor, like: Tensor) -> Tensor:
    """View a ``(B,)`` parameter as ``(B, 1, 1, 1)`` in ``like``'s dtype and device."""
    return value.to(device=like.device, dtype=like.dtype).view(-1, 1, 1, 1)


def illumination_gain(
    exposure: Tensor, spread: Tensor, seed: Tensor, size: tuple[int, int], dtype: torch.dtype
) -> Tensor:
    """The illumination gain ``G = exposure * g``, shape ``(B, 1, H, W)``.

    Args:
        exposure: ``(B,)`` mean linear gain in (0, 1].
        spread: ``(B,)`` standard deviation of ``log g`` before normalisation (0 = uniform).
        seed: ``(B,)`` seeds of the illumination field.
        size: ``(H, W)``.
        dtype: floating dtype of the result.
    """
    # In place on the fresh field: the gain depends on parameters only, never on an image.
    log_gain = smooth_field(seed, size, _ILLUMINATION_CELLS, _STREAM_FIELD, dtype)
    log_gain.mul_(_per_sample(spread, log_gain))
    # Subtracting the per-sample maximum before exp keeps large spreads finite.
    # exp(v) as exp2(v log2 e): exp2 costs a third of exp on a CPU.
    log_gain.sub_(log_gain.amax(dim=(-2, -1), keepdim=True))
    variation = log_gain.mul_(1.0 / math.log(2.0)).exp2_()
    variation.div_(variation.mean(dim=(-2, -1), keepdim=True))
    # Less light never means more: where exposure * g would pass 1 the gain stops at 1.
    return variation.mul_(_per_sample(exposure, variation)).clamp_max_(1.0)


def _quantise_(x: Tensor, levels: Tensor) -> Tensor:
    """``round(x * levels) / levels``, in place."""
    return x.mul_(levels).round_().div_(levels)


class _Quantise(torch.autograd.Function):
    """``_quantise_`` on a copy, with the gradient passed straight through."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, levels: Tensor) -> Tensor:
        return _quantise_(x.clone(), levels)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None


def sensor_noise(x: Tensor, shot: Tensor, read: Tensor, bits: Tensor, seed: Tensor) -> Tensor:
    """Poisson-Gaussian sensor noise, clipping and quantisation in linear light.

    ``y = quantise(clip(x + sqrt(shot * x + read) * n, 0, 1), bits)``, ``n ~ N(0, 1)``
    drawn from ``seed``. For gradients the noise realisation is a constant added to the
    signal and quantisation passes gradients straight through, so ``dy/dx`` is 1 wherever
    the sensor does not clip. The values do not depend on whether gradients are tracked;
    without them, everything after the noise draw is computed in place.

    Args:
        x: ``(B, 3, H, W)`` linear signal.
        shot: ``(B,)`` shot-noise gain (variance per unit of signal).
        read: ``(B,)`` read-noise variance.
        bits: ``(B,)`` ADC bit depth; 0 keeps values continuous.
        seed: ``(B,)`` noise seeds.
    """
    tracked = x.requires_grad and torch.is_grad_enabled()
    with torch.no_grad():
        noise = counter_rng.normal(seed, tuple(x.shape[1:]), _STREAM_NOISE, x.dtype)
        # mul then add_: addcmul with per-sample broadcast operands takes a slow path.
        # The deviation is consumed at once: a buffer this thread reuses (``_scratch``).
        std = torch.mul(x.detach(), _per_sample(shot, x), out=scratch_like("sensor-std", x))
        std.add_(_per_sample(read, x))
        noise.mul_(std.clamp_min_(0.0).sqrt_())
    noisy = (x + noise).clamp(0.0, 1.0) if tracked else noise.add_(x).clamp_(0.0, 1.0)
    quantised = bits > 0
    if not bool(quantised.any()):
        return noisy
    levels = _per_sample(torch.exp2(bits.double()) - 1.0, x).clamp_min(1.0)
    every = bool(quantised.all())
    if tracked:
        stepped = _Quantise.apply(noisy, levels)
    else:  # in place, unless the continuous samples still need ``noisy``
        stepped = _quantise_(noisy if every else noisy.clone(), levels)
    return stepped if every else torch.where(_per_sample(quantised, x) > 0, stepped, noisy)


def low_light(
    x: Tensor,
    exposure: Tensor,
    spread: Tensor,
    shot: Tensor,
    read: Tensor,
    bits: Tensor,
    seed: Tensor,
) -> tuple[Tensor, Tensor]:
    """Darken ``x`` (linear, ``(B, 3, H, W)``) and add sensor noise.

    Returns:
        ``(image, mask)``: the linear low-light image and the darkening fraction
        ``(B, 1, H, W)``.
    """
    gain = illumination_gain(exposure, spread, seed, (x.shape[-2], x.shape[-1]), x.dtype)
    if torch.is_grad_enabled() and (x.requires_grad or gain.requires_grad):
        # ``x * gain`` saves ``x`` for ``gain``'s gradient: never a caller's reused buffer.
        lit = (x if x.requires_grad else x.clone()) * gain
        image = sensor_noise(lit, shot, read, bits, seed)
        return image, (1.0 - gain).clamp(0.0, 1.0)  # ``x * gain`` saved ``gain``
    # Untracked, the lit image is consumed by the noise: a buffer this thread reuses.
    lit = torch.mul(x, gain, out=scratch_like("low-light-lit", x))
    image = sensor_noise(lit, shot, read, bits, seed)
    return image, gain.neg_().add_(1.0).clamp_(0.0, 1.0)
