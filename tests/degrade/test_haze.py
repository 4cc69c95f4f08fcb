"""Closed-form oracles for haze: the scattering relation, its mask, depth handling."""

from __future__ import annotations

import pytest
import torch
from skyclear.degrade import Composite, Haze, linear_to_srgb, srgb_to_linear
from skyclear.degrade.functional import geometric_depth
from skyclear.degrade.functional.haze import openness
from skyclear.degrade.io import from_numpy
from skyclear.degrade.samples import load_samples


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
    out = Haze(beta=(0.1, 0.1), prior="flat")(image, generator=torch.Generator().manual_seed(0))
    assert out.mask[:, :, 0].mean() > out.mask[:, :, -1].mean()


def _open_scene(edge: float | None = None, height: int = 128, width: int = 160) -> torch.Tensor:
    """A linear image of an open scene: a smooth sky at the top whose texture grows toward
    the bottom; with ``edge``, a sharp sky/ground boundary at that fraction of the height
    instead (smooth sky above, textured ground below)."""
    g = torch.Generator().manual_seed(0)
    rows = torch.linspace(0, 1, height).view(1, 1, -1, 1)
    sky = (0.6 + 0.1 * rows).expand(1, 3, height, width)
    texture = torch.rand(1, 3, height, width, generator=g)
    if edge is None:
        return sky * (1 - 0.8 * rows**2 * texture)
    return torch.where(rows < edge, sky, 0.1 + 0.3 * texture)


def _prior(
    prior: str, x: torch.Tensor, seed: int = 0, **ranges: tuple
) -> tuple[torch.Tensor, dict]:
    op = Haze(beta=(0.05, 0.05), prior=prior, **ranges)
    params = op.sample(x.shape[0], torch.Generator().manual_seed(seed))
    return op.depth_for(x, params, None), params


def test_the_ground_prior_draws_no_band_where_the_photo_has_none() -> None:
    """On an open scene without a horizon line, the flat prior's haze rises steeply into
    its horizon row and stops there (everything above it at ``far``); the ground prior's
    rises at most half as steeply (a softplus corner in inverse depth), still toward the
    top."""
    scene = _open_scene()
    assert float(openness(scene)) == 1.0, "a smooth sky over texture is an open scene"
    steepest = {}
    for prior in ("flat", "ground"):
        depth, _ = _prior(prior, scene)
        profile = (1 - torch.exp(-0.05 * depth))[0, 0].mean(1)
        steepest[prior] = float(profile.diff().abs().max())
        assert profile[0] > profile[-1] + 0.8, "haze thickens toward the top"
    assert steepest["ground"] < 0.5 * steepest["flat"], steepest


def test_the_ground_prior_puts_its_depth_edge_on_the_photos_edge() -> None:
    """A sky meeting textured ground at row 57, the prior's horizon drawn at row 51: the
    guided filter moves the depth's steepest step onto the photo's edge, and makes it sharp
    (the soft profile alone changes by 0.05 in log depth at most between rows)."""
    scene = _open_scene(edge=0.45)
    edge = int((torch.linspace(0, 1, 128) < 0.45).sum())
    fixed = {"horizon": (0.4, 0.4), "near": (3.0, 3.0), "far": (100.0, 100.0)}
    depth, _ = _prior("ground", scene, distance=(6.0, 6.0), **fixed)
    steps = (depth.log()[0, 0].mean(1).diff()).abs()
    assert abs(int(steps.argmax()) + 1 - edge) <= 1, (int(steps.argmax()), edge)
    assert float(steps.max()) > 0.3


def test_a_close_up_gets_uniform_haze_at_the_declared_distance() -> None:
    """A photo detailed to its top is closed: the ground prior gives it the ``distance``
    of the uniform prior, not a sky."""
    g = torch.Generator().manual_seed(1)
    close_up = 0.2 + 0.6 * torch.rand(2, 3, 96, 128, generator=g)
    assert torch.all(openness(close_up) == 0)
    ground, params = _prior("ground", close_up, seed=3)
    uniform, _ = _prior("uniform", close_up, seed=3)
    expected = params["distance"].view(-1, 1, 1, 1).expand_as(uniform)
    torch.testing.assert_close(uniform, expected)
    torch.testing.assert_close(ground, expected, rtol=1e-4, atol=0)


def test_openness_tells_the_sample_landscape_from_the_close_ups() -> None:
    """The sample photos: the rocket at dusk under its sky is open, the close-ups and the
    garage are closed."""
    samples = load_samples()
    found = {
        name: float(openness(srgb_to_linear(from_numpy(photo))))
        for name, (photo, _) in samples.items()
    }
    assert found["rocket"] == 1.0, found
    assert all(found[name] == 0.0 for name in ("astronaut", "chelsea", "coffee", "motorcycle"))


def test_a_composite_reads_the_prior_from_the_clean_photo() -> None:
    """In CDD-11's order haze comes last, over a dark, noisy image; its depth is still the
    clean photo's (the same haze mask as haze alone on the clean photo)."""
    scene = linear_to_srgb(_open_scene()).clamp(0, 1)
    composite = Composite(order="cdd11")
    params = composite.sample("low_haze", 1, torch.Generator().manual_seed(2))
    masks = composite.apply(scene, "low_haze", params).masks
    alone = composite.haze.apply(scene, params["haze"]).mask
    torch.testing.assert_close(masks[:, 1:2], alone, atol=1e-6, rtol=0)


def test_an_unknown_prior_is_refused() -> None:
    with pytest.raises(ValueError, match="prior must be one of"):
        Haze(prior="sky")


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


def test_the_ground_prior_of_a_single_pixel_is_finite() -> None:
    out = Haze()(torch.full((1, 3, 1, 1), 0.5), generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out.image).all() and torch.isfinite(out.mask).all()
