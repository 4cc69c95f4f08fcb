"""Tier composition: names, masks, order, replay."""

from __future__ import annotations

import math

import pytest
import torch
from skyclear.degrade import (
    DEGRADATIONS,
    TIERS,
    Composite,
    Haze,
    LowLight,
    Rain,
    Snow,
    degrade_tier,
    linear_to_srgb,
    parse_tier,
    srgb_to_linear,
)
from skyclear.degrade.functional import RAIN_LAYERS, SNOW_LAYERS
from skyclear.degrade.functional.rain import streak_opacity


def test_tiers_are_cdd11s_in_order() -> None:
    assert TIERS == (
        "low", "haze", "rain", "snow", "low_haze", "low_rain", "low_snow",
        "haze_rain", "haze_snow", "low_haze_rain", "low_haze_snow",
    )  # fmt: skip
    assert DEGRADATIONS == ("low", "haze", "rain", "snow")
    assert parse_tier("low_haze_snow") == ("low", "haze", "snow")
    with pytest.raises(ValueError, match="unknown tier"):
        parse_tier("fog")


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("order", ["physical", "cdd11"])
def test_masks_follow_the_tier(image: torch.Tensor, tier: str, order: str) -> None:
    out = degrade_tier(image, tier, torch.Generator().manual_seed(0), order=order)  # type: ignore[arg-type]
    assert out.image.shape == image.shape and out.masks.shape == (2, 4, *image.shape[-2:])
    assert out.image.min() >= 0 and out.image.max() <= 1
    present = parse_tier(tier)
    assert set(out.params) == set(present)
    for channel, name in enumerate(DEGRADATIONS):
        if name in present:
            assert out.masks[:, channel].max() > 0, name
        else:
            assert torch.count_nonzero(out.masks[:, channel]) == 0, name


@pytest.mark.parametrize("tier", ["low_haze_rain", "low_haze_snow"])
def test_replay_and_masks_independent_of_order(image: torch.Tensor, tier: str) -> None:
    physical = Composite()
    out = physical(image, tier, torch.Generator().manual_seed(3))
    assert torch.equal(physical.apply(image, tier, out.params).image, out.image)
    cdd = Composite(order="cdd11").apply(image, tier, out.params)
    torch.testing.assert_close(cdd.masks, out.masks, atol=1e-6, rtol=0)
    assert not torch.allclose(cdd.image, out.image)


@pytest.mark.parametrize("order", ["physical", "cdd11"])
def test_apply_linear_is_apply_without_the_srgb_curve(image: torch.Tensor, order: str) -> None:
    composite = Composite(order=order)  # type: ignore[arg-type]
    linear = srgb_to_linear(image)
    before = linear.clone()
    for tier in ("low_haze_rain", "low_snow", "haze"):
        params = composite.sample(tier, image.shape[0], torch.Generator().manual_seed(5))
        expected = composite.apply(image, tier, params)
        degraded, masks = composite.apply_linear(linear, tier, params)
        assert torch.equal(linear_to_srgb(degraded).clamp(0.0, 1.0), expected.image)
        assert torch.equal(masks, expected.masks)
    assert torch.equal(linear, before)
    with pytest.raises(ValueError, match="must hold"):
        composite.apply_linear(linear, "low_rain", {"low": params["haze"]})


def test_physical_order_dims_the_airlight_too(image: torch.Tensor) -> None:
    """Illumination lights the atmosphere as well: a dark hazy scene stays dark."""
    composite = Composite(
        low=LowLight(exposure=(0.1, 0.1), spread=(0, 0), shot=(0, 0), read=(0, 0), bits=(0, 0)),
        haze=Haze(beta=(0.2, 0.2), nonuniformity=(0, 0)),
    )
    depth = torch.full((1, 1, *image.shape[-2:]), 10.0)
    params = composite.sample("low_haze", 2, torch.Generator().manual_seed(0))
    physical = composite.apply(image, "low_haze", params, depth=depth)
    hazy = composite.haze.apply(image, params["haze"], depth=depth).image
    expected = srgb_to_linear(hazy) * 0.1
    torch.testing.assert_close(srgb_to_linear(physical.image), expected, atol=1e-5, rtol=0)
    cdd = Composite(low=composite.low, haze=composite.haze, order="cdd11")
    assert cdd.apply(image, "low_haze", params, depth=depth).image.mean() > physical.image.mean()


@pytest.mark.parametrize(("name", "layers"), [("rain", RAIN_LAYERS), ("snow", SNOW_LAYERS)])
def test_particles_are_hazed_by_their_distance(
    image: torch.Tensor, name: str, layers: tuple[tuple[float, float], ...]
) -> None:
    """The same particles over the same hazy scene, seen through the haze or in clear air.

    Over-compositing gives each layer (and the veil) a weight ``w_l >= 0`` with ``sum w_l =
    m``, the mask. In clear air a layer has the particles' colour ``C``; ``d_l`` metres into
    the haze it has ``A + (C - A) t_l``, ``t_l = exp(-beta d_l)``. So in linear light

        ``clear - hazed = (C - A) sum_l w_l (1 - t_l)``,

    between ``m (C - A) (1 - t_near)`` (every layer at least as far as the nearest) and
    ``m (C - A)`` (none seen through more than all of the haze).
    """
    beta, white, grey = 0.3, 1.0, 0.5
    composite = Composite(
        haze=Haze(beta=(beta, beta), airlight=(grey, grey), tint=(0, 0)),
        rain=Rain(brightness=(white, white)),
        snow=Snow(brightness=(white, white), opacity=(0.9, 0.95)),
    )
    tier = f"haze_{name}"
    params = composite.sample(tier, 2, torch.Generator().manual_seed(0))
    depth = torch.full((1, 1, *image.shape[-2:]), 50.0)
    linear = srgb_to_linear(image)
    hazed, masks = composite.apply_linear(linear, tier, params, depth=depth)
    scene, _ = composite.haze.apply_linear(linear, params["haze"], depth=depth)
    clear, mask = composite.operator(name).apply_linear(scene, params[name])
    channel = DEGRADATIONS.index(name)
    torch.testing.assert_close(masks[:, channel : channel + 1], mask, atol=1e-6, rtol=0)

    contrast = float(srgb_to_linear(torch.tensor(white)) - srgb_to_linear(torch.tensor(grey)))
    nearest = layers[0][1]
    lower = mask * contrast * (1.0 - math.exp(-beta * nearest))
    upper = mask * contrast
    gap = clear - hazed
    assert mask.max() > 0.5, "the particles must be dense enough to see"
    short = float((lower - gap).max())
    assert short <= 1e-5, f"particles seen through less haze than their distance: {short:.3g}"
    excess = float((gap - upper).max())
    assert excess <= 1e-5, f"particles hazed past the airlight: {excess:.3g}"
    # Where the particles are opaque, the haze takes a clear share of their brightness.
    opaque = (mask > 0.3).expand_as(gap)
    assert gap[opaque].mean() > 0.1, float(gap[opaque].mean())


def test_bad_params_and_order_are_refused(image: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="order"):
        Composite(order="backwards")  # type: ignore[arg-type]
    params = Composite().sample("low_rain", 2)
    with pytest.raises(ValueError, match="must hold"):
        Composite().apply(image, "low_snow", params)
    params["rain"].pop("seed")
    with pytest.raises(ValueError, match="missing"):
        Composite().apply(image, "low_rain", params)


def test_composite_gradients(image: torch.Tensor) -> None:
    x = image.clone().requires_grad_(True)
    degrade_tier(x, "low_haze_rain", torch.Generator().manual_seed(0)).image.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def _wall(image: torch.Tensor, near: float = 0.5, far: float = 1000.0) -> torch.Tensor:
    """A scene ``near`` metres away on the left half, ``far`` on the right."""
    depth = torch.full((1, 1, *image.shape[-2:]), far)
    depth[..., : image.shape[-1] // 2] = near
    return depth


@pytest.mark.parametrize("name", ["rain", "snow"])
def test_particles_hide_behind_a_scene_nearer_than_them(image: torch.Tensor, name: str) -> None:
    """Every layer (1.5 m and beyond) and the veil pass behind a wall half a metre away and
    show in front of a scene a kilometre away as they do without depth; the mask follows."""
    op = Rain(opacity=(0.45, 0.5)) if name == "rain" else Snow(opacity=(0.9, 0.95))
    params = op.sample(2, torch.Generator().manual_seed(0))
    free = op.apply(image, params)
    far = op.apply(image, params, depth=torch.full((1, 1, *image.shape[-2:]), 1000.0))
    torch.testing.assert_close(far.mask, free.mask, atol=1e-5, rtol=0)
    torch.testing.assert_close(far.image, free.image, atol=1e-5, rtol=0)
    walled = op.apply(image, params, depth=_wall(image))
    half = image.shape[-1] // 2
    assert free.mask[..., :half].max() > 0.3, "the particles are there without the wall"
    assert walled.mask[..., :half].max() < 0.01, "behind the wall they are hidden"
    torch.testing.assert_close(walled.image[..., :half], image[..., :half], atol=1 / 255, rtol=0)
    torch.testing.assert_close(walled.mask[..., half:], free.mask[..., half:], atol=1e-5, rtol=0)


def test_a_layer_between_near_and_far_scene_shows_only_where_the_scene_is_farther() -> None:
    """A scene at 3 m: the nearest rain layer (2 m) shows, the 4 and 8 m ones do not, so
    the mask is the nearest layer's alone; soft, not cut, when the scene is at the layer."""
    x = torch.full((1, 3, 64, 96), 0.2)
    op = Rain(opacity=(0.45, 0.45), veil=(0.0, 0.0))
    params = op.sample(1, torch.Generator().manual_seed(3))
    at_three = op.apply(x, params, depth=torch.full((1, 1, 64, 96), 3.0)).mask
    nearest = streak_opacity(params["seed"], *(params[k] for k in (
        "density", "length", "width", "angle", "opacity")), (64, 96), 0, torch.float32)  # fmt: skip
    torch.testing.assert_close(at_three, nearest, atol=0.05, rtol=0)
    free = op.apply(x, params).mask
    assert float(free.sum()) > 1.3 * float(at_three.sum()), "the far layers are gone"
    at_layer = op.apply(x, params, depth=torch.full((1, 1, 64, 96), 2.0)).mask
    assert 0.3 < float(at_layer.sum() / nearest.sum()) < 0.7, "half seen at its own depth"


def test_a_composite_hides_particles_behind_known_depth_only(image: torch.Tensor) -> None:
    """With the scene's depth given, the rain of ``haze_rain`` is hidden behind the wall
    and its mask says so; with the haze's prior (no depth given) nothing hides it."""
    composite = Composite()
    params = composite.sample("haze_rain", 2, torch.Generator().manual_seed(1))
    half = image.shape[-1] // 2
    given = composite.apply(image, "haze_rain", params, depth=_wall(image)).masks
    guessed = composite.apply(image, "haze_rain", params).masks
    assert given[:, 2, :, :half].max() < 0.01 and given[:, 2, :, half:].max() > 0.3
    assert guessed[:, 2, :, :half].max() > 0.3
    cdd = Composite(order="cdd11").apply(image, "haze_rain", params, depth=_wall(image)).masks
    assert cdd[:, 2, :, :half].max() > 0.3, "CDD-11's order composites rain in clear air"


def test_a_hole_in_the_depth_map_hides_nothing(image: torch.Tensor) -> None:
    """Depth 0 marks a hole in many depth maps: particles there are seen, not hidden."""
    op = Rain(opacity=(0.45, 0.5))
    params = op.sample(2, torch.Generator().manual_seed(0))
    free = op.apply(image, params).mask
    holes = op.apply(image, params, depth=torch.zeros(1, 1, *image.shape[-2:])).mask
    torch.testing.assert_close(holes, free, atol=1e-5, rtol=0)


@pytest.mark.parametrize("order", ["physical", "cdd11"])
@pytest.mark.parametrize("with_depth", [False, True])
def test_a_mixed_batch_degrades_each_sample_as_alone(order: str, with_depth: bool) -> None:
    """One call over samples of every tier: each sample as ``apply`` on it alone gives,
    through haze where its tier has haze (rain and snow with and without it in one
    batch), behind its own scene depth where one is given."""
    composite = Composite(order=order)  # type: ignore[arg-type]
    g = torch.Generator().manual_seed(7)
    x = 0.1 + 0.8 * torch.rand(len(TIERS) + 3, 3, 40, 48, generator=g)
    tiers = [TIERS[(5 * i) % len(TIERS)] for i in range(x.shape[0])]  # shuffled, repeats
    depth = 1.0 + 60.0 * torch.rand(x.shape[0], 1, 40, 48, generator=g) if with_depth else None
    params = composite.sample_each(tiers, [1000 + i for i in range(x.shape[0])])
    mixed = composite.apply_mixed(x, tiers, params, depth)
    assert mixed.tiers == tuple(tiers) and mixed.image.shape == x.shape
    for i, tier in enumerate(tiers):
        alone = composite.apply(
            x[i : i + 1], tier, params[i], None if depth is None else depth[i : i + 1]
        )
        torch.testing.assert_close(mixed.image[i : i + 1], alone.image, atol=1e-3, rtol=0, msg=tier)
        torch.testing.assert_close(mixed.masks[i : i + 1], alone.masks, atol=1e-5, rtol=0, msg=tier)
        # all within rounding but the odd value (a rounding moving a noise draw)
        assert (mixed.image[i : i + 1] - alone.image).abs().mean() < 1e-6, tier


def test_sample_each_draws_what_a_batch_of_one_draws() -> None:
    composite = Composite()
    params = composite.sample_each(["low_haze", "snow"], [3, 4])
    for own, tier, seed in zip(params, ["low_haze", "snow"], [3, 4], strict=True):
        alone = composite.sample(tier, 1, torch.Generator().manual_seed(seed))
        assert own.keys() == alone.keys()
        for name in own:
            assert all(torch.equal(own[name][k], alone[name][k]) for k in own[name])
    with pytest.raises(ValueError, match="2 tiers but 1 seeds"):
        composite.sample_each(["low", "haze"], [1])


def test_a_mixed_batch_refuses_params_of_another_tier(image: torch.Tensor) -> None:
    composite = Composite()
    params = composite.sample_each(["low", "haze"], [1, 2])
    with pytest.raises(ValueError, match="must hold"):
        composite.apply_mixed(image, ["low", "rain"], params)
    with pytest.raises(ValueError, match="as many tiers and params"):
        composite.apply_mixed(image, ["low"], params[:1])
    params[1]["haze"]["beta"] = torch.tensor([-1.0])
    with pytest.raises(ValueError):
        composite.apply_mixed(image, ["low", "haze"], params)
    del params[1]["haze"]["beta"]
    with pytest.raises(ValueError, match="sample 1: Haze params: missing"):
        composite.apply_mixed(image, ["low", "haze"], params)
