"""Closed-form oracles for low light: mean gain, noise statistics, quantisation."""

from __future__ import annotations

import pytest
import torch
from skyclear.degrade import LowLight, srgb_to_linear
from skyclear.degrade.functional import illumination_gain, sensor_noise


@pytest.mark.parametrize("spread", [0.0, 0.3, 1.0])
def test_mean_gain_matches_exposure(spread: float) -> None:
    exposure = torch.tensor([0.02, 0.05, 0.1])
    seeds = torch.tensor([1, 2, 3])
    gain = illumination_gain(exposure, torch.full((3,), spread), seeds, (60, 80), torch.float64)
    torch.testing.assert_close(gain.mean(dim=(1, 2, 3)), exposure.double(), rtol=1e-6, atol=0)
    if spread > 0:
        assert gain.std(dim=(1, 2, 3)).min() > 0.01 * exposure.min()


def test_operator_mean_gain_and_mask(image: torch.Tensor) -> None:
    op = LowLight(exposure=(0.1, 0.1), spread=(0.4, 0.4), shot=(0, 0), read=(0, 0), bits=(0, 0))
    out = op(image, generator=torch.Generator().manual_seed(0))
    gain = 1 - out.mask
    torch.testing.assert_close(gain.mean(dim=(1, 2, 3)), torch.full((2,), 0.1), atol=1e-5, rtol=0)
    ratio = srgb_to_linear(out.image) / srgb_to_linear(image)
    torch.testing.assert_close(ratio, gain.expand_as(ratio), atol=1e-4, rtol=1e-4)


def test_noise_variance_is_linear_in_signal_with_shot_slope() -> None:
    shot, read = 0.01, 2e-4
    levels = torch.linspace(0.05, 0.6, 12, dtype=torch.float64)
    x = levels.view(1, 1, -1, 1).expand(1, 3, 12, 20000).contiguous()
    noisy = sensor_noise(
        x,
        torch.tensor([shot]),
        torch.tensor([read]),
        torch.tensor([0]),
        torch.tensor([99]),
    )
    variance = (noisy - x).var(dim=(0, 1, 3))
    slope, intercept = torch.linalg.lstsq(
        torch.stack([levels, torch.ones_like(levels)], dim=1), variance.unsqueeze(1)
    ).solution.flatten()
    assert abs(float(slope) / shot - 1) < 0.1
    assert abs(float(intercept) / read - 1) < 0.25
    mean_error = (noisy - x).mean(dim=(0, 1, 3))
    assert mean_error.abs().max() < 3e-3, "noise must be zero-mean away from the clip"


def test_noise_is_gaussian_shaped() -> None:
    x = torch.full((1, 3, 200, 200), 0.5)
    noisy = sensor_noise(
        x, torch.tensor([0.0]), torch.tensor([1e-4]), torch.tensor([0]), torch.tensor([5])
    )
    z = ((noisy - x) / 1e-2).flatten()
    assert abs(float(z.mean())) < 0.02
    assert abs(float(z.std()) - 1) < 0.02
    assert abs(float((z.abs() < 1).float().mean()) - 0.6827) < 0.01


def test_quantisation_levels() -> None:
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    out = sensor_noise(x, torch.zeros(1), torch.zeros(1), torch.tensor([4]), torch.tensor([0]))
    codes = out * 15
    torch.testing.assert_close(codes, codes.round(), atol=1e-5, rtol=0)


def test_brooks_read_noise_coupling() -> None:
    op = LowLight(read=(0.0, 1.0))
    params = op.sample(4000, torch.Generator().manual_seed(0))
    log_shot, log_read = params["shot"].log().double(), params["read"].log().double()
    residual = log_read - (2.18 * log_shot + 1.20)
    assert abs(float(residual.mean())) < 0.02
    assert abs(float(residual.std()) - 0.26) < 0.02
    assert params["shot"].min() >= 1e-4 * (1 - 1e-6) and params["shot"].max() <= 1.2e-2 * (1 + 1e-6)


def test_read_bounds_clip_the_coupling() -> None:
    params = LowLight(read=(1e-5, 2e-5)).sample(500, torch.Generator().manual_seed(1))
    assert params["read"].min() >= 1e-5 * (1 - 1e-6) and params["read"].max() <= 2e-5 * (1 + 1e-6)


def test_bits_are_integers_in_range() -> None:
    params = LowLight(bits=(8, 10)).sample(300, torch.Generator().manual_seed(2))
    assert params["bits"].dtype == torch.int64
    assert set(params["bits"].tolist()) == {8, 9, 10}


def test_sensor_values_do_not_depend_on_gradient_tracking() -> None:
    """In place without gradients, straight through with them: the same values, and a
    batch mixing quantised and continuous samples treats each as if alone."""
    x = torch.rand(3, 3, 24, 24) * 0.2
    args = (
        torch.tensor([1e-3, 5e-3, 2e-3]),
        torch.tensor([1e-5, 0.0, 3e-5]),
        torch.tensor([10, 0, 12]),
        torch.tensor([7, 8, 9]),
    )
    plain = sensor_noise(x, *args)
    tracked = x.clone().requires_grad_(True)
    noisy = sensor_noise(tracked, *args)
    assert torch.equal(noisy.detach(), plain)
    noisy.sum().backward()
    inside = (plain > 0) & (plain < 1)
    assert tracked.grad is not None and bool((tracked.grad[inside] == 1).all())
    for b in range(3):
        alone = sensor_noise(x[b : b + 1], *(value[b : b + 1] for value in args))
        assert torch.equal(alone, plain[b : b + 1])
    assert len(torch.unique(plain[0] * 1023)) < len(torch.unique(plain[1] * 1023))
