"""Closed-form oracles for haze: the scattering relation, its mask, depth handling."""

from __future__ import annotations

import pytest
import torch
from skyclear.degrade import Haze, srgb_to_linear
from skyclear.degrade.functional import geometric_depth


def _depth_ramp(height: int, width: int, near: float = 1.0, far: float = 40.0) -> torch.Tensor:
    return torch.linspace(near, far, width).view(1, 1, 1, width).expand(2, 1, height, width)


def test_scattering_relation_in_linear_light(image: torch.Tensor) -> None:
    x = image.double()
    depth = _depth_ramp(*x.shape[-2:]).double()
    op = Haze(beta=(0.05, 0.2), airlight=(0.7, 1.0), tint=(-0.05, 0.05))
    out = op(x, generator=torch.Generator().manual_seed(0), depth=depth)
    beta = out.params["beta"].double().view(-1, 1, 1, 1)
    airlight = srgb_to_linear(out.params["airlight"].double()).view(-1, 3, 1, 1)
    t = torch.exp(-beta * depth)
    expected = srgb_to_linear(x) * t + airlight * (1 - t)
    torch.testing.assert_close(srgb_to_linear(out.image), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.mask, 1 - t, atol=1e-6, rtol=0)


def test_float32_scattering_relation(image: torch.Tensor) -> None:
    depth = _depth_ramp(*image.shape[-2:])
    out = Haze()(image, generator=torch.Generator().manual_seed(1), depth=depth)
    t = 1 - out.mask
    airlight = srgb_to_linear(out.params["airlight"]).view(-1, 3, 1, 1)
    expected = (srgb_to_linear(image) * t + airlight * (1 - t)).clamp(0, 1)
    torch.testing.assert_close(srgb_to_linear(out.image), expected, atol=1e-5, rtol=0)


def test_mask_is_monotone_in_depth(image: torch.Tensor) -> None:
    depth = _depth_ramp(*image.shape[-2:])
    out = Haze(beta=(0.1, 0.1))(image, depth=depth)
    steps = out.mask[..., 1:] - out.mask[..., :-1]
    assert (steps > 0).all()


def test_visibility_meaning_of_beta() -> None:
    """At the meteorological visibility 3.912 / beta, transmission is 2 %."""
    beta = 0.2
    depth = torch.full((1, 1, 4, 4), 3.912 / beta)
    out = Haze(beta=(beta, beta))(torch.full((1, 3, 4, 4), 0.5), depth=depth)
    torch.testing.assert_close(out.mask, torch.full_like(out.mask, 0.98), atol=1e-4, rtol=0)


def test_nonuniform_haze_keeps_mean_extinction(image: torch.Tensor) -> None:
    depth = torch.full((1, 1, *image.shape[-2:]), 1.0)
    op = Haze(beta=(0.3, 0.3), nonuniformity=(0.8, 0.8))
    out = op(image, generator=torch.Generator().manual_seed(0), depth=depth)
    extinction = -torch.log(1 - out.mask)  # beta(p) * 1 m
    assert extinction.std() > 0.05, "non-uniform haze must vary"
    torch.testing.assert_close(
        extinction.mean(dim=(-2, -1)).flatten(), torch.full((2,), 0.3), atol=0.01, rtol=0
    )


def test_geometric_prior_is_flat_ground() -> None:
    horizon, near, far = torch.tensor([0.4]), torch.tensor([2.0]), torch.tensor([80.0])
    depth = geometric_depth(horizon, near, far, (100, 10), torch.float64, torch.device("cpu"))
    column = depth[0, 0, :, 0]
    assert torch.all(column[:40] == 80.0), "the horizon and above sit at the far depth"
    rows = (torch.arange(100, dtype=torch.float64) + 0.5) / 100
    ground = (2.0 * 0.6 / (rows - 0.4)).clamp(2.0, 80.0)
    torch.testing.assert_close(column[41:], ground[41:], rtol=1e-6, atol=0)
    assert torch.all(column[1:] <= column[:-1]), "depth falls towards the bottom"


def test_prior_used_without_depth(image: torch.Tensor) -> None:
    out = Haze(beta=(0.1, 0.1))(image, generator=torch.Generator().manual_seed(0))
    assert out.mask[:, :, 0].mean() > out.mask[:, :, -1].mean()


@pytest.mark.parametrize(
    ("depth", "message"),
    [
        (torch.ones(2, 1, 10, 10), "spatial size"),
        (torch.ones(3, 1, 48, 64), "shape"),
        (torch.full((1, 1, 48, 64), float("nan")), "NaN"),
        (torch.full((1, 1, 48, 64), float("inf")), "inf"),
        (-torch.ones(1, 1, 48, 64), ">= 0"),
        (torch.ones(1, 1, 48, 64, dtype=torch.int64), "floating"),
    ],
)
def test_bad_depth_is_refused(image: torch.Tensor, depth: torch.Tensor, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        Haze()(image, depth=depth)


def test_airlight_is_srgb_grey_at_infinity() -> None:
    x = torch.zeros(1, 3, 4, 4)
    out = Haze(beta=(1.0, 1.0), airlight=(0.8, 0.8), tint=(0, 0))(
        x, depth=torch.full((1, 1, 4, 4), 1e3)
    )
    torch.testing.assert_close(out.image, torch.full_like(out.image, 0.8), atol=1e-5, rtol=0)
