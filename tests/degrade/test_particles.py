"""Rain and snow specifics: layers, veil, mask meaning, splatting."""

from __future__ import annotations

import torch
from skyclear.degrade import Rain, Snow
from skyclear.degrade.functional import splat
from skyclear.degrade.functional.particles import Medium


def test_splat_conserves_mass_inside_and_drops_outside() -> None:
    x = torch.tensor([[10.3, 20.7, -5.0, 100.0]])
    y = torch.tensor([[5.5, 30.2, 4.0, 10.0]])
    mass = torch.tensor([[1.0, 2.0, 7.0, 9.0]])
    density = splat(x, y, mass, (40, 32), torch.float64)
    assert density.shape == (1, 1, 40, 32)
    torch.testing.assert_close(density.sum(), torch.tensor(3.0, dtype=torch.float64))
    assert density[0, 0, 5, 10] > 0.5  # the first point lands at its pixel


def test_splat_levels_keep_mass_per_pixel() -> None:
    x = torch.tensor([[16.0, 48.0]])
    y = torch.tensor([[16.0, 16.0]])
    mass = torch.tensor([[4.0, 4.0]])
    fine = splat(x, y, mass, (32, 64), torch.float64)
    coarse = splat(x, y, mass, (32, 64), torch.float64, level=torch.tensor([[0, 2]]))
    torch.testing.assert_close(fine.sum(), coarse.sum(), rtol=1e-6, atol=0)
    left, right = coarse[..., :32], coarse[..., 32:]
    assert right.max() < left.max(), "the coarse point is spread over a 4x4 cell"


def test_rain_streaks_are_elongated_along_the_angle() -> None:
    x = torch.full((1, 3, 96, 96), 0.3)
    op = Rain(density=(300, 300), length=(30, 30), angle=(0, 0), veil=(0, 0), width=(1, 1))
    mask = op(x, generator=torch.Generator().manual_seed(0)).mask[0, 0]
    vertical = (mask[1:] * mask[:-1]).sum()
    horizontal = (mask[:, 1:] * mask[:, :-1]).sum()
    assert vertical > 3 * horizontal


def test_veil_sets_a_floor_on_the_mask() -> None:
    x = torch.full((2, 3, 32, 32), 0.3)
    out = Snow(density=(0, 0), veil=(0.2, 0.2))(x)
    torch.testing.assert_close(out.mask, torch.full_like(out.mask, 0.2))
    rain = Rain(veil=(0.1, 0.1))(x, generator=torch.Generator().manual_seed(1))
    assert rain.mask.min() >= 0.1 - 1e-6


def test_mask_is_the_compositing_weight() -> None:
    """I = x (1 - m) + m C with one colour C for streaks and veil in clear air."""
    x = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    op = Rain(brightness=(0.9, 0.9), veil=(0.05, 0.05))
    out = op(x, generator=torch.Generator().manual_seed(2))
    from skyclear.degrade import srgb_to_linear

    colour = srgb_to_linear(torch.tensor(0.9))
    expected = srgb_to_linear(x) * (1 - out.mask) + out.mask * colour
    torch.testing.assert_close(srgb_to_linear(out.image), expected, atol=1e-5, rtol=0)


def _blob_width(opacity: torch.Tensor, shift: int = 2) -> torch.Tensor:
    """The Gaussian sigma, in pixels, of the blobs of each ``(B, 1, H, W)`` opacity map.

    For sparse Gaussian blobs of sigma ``s``, the autocorrelation at a shift of ``k``
    pixels, over its value at 0, is ``r = exp(-k^2 / (4 s^2))``: ``s = k / (2 sqrt(-ln r))``,
    whatever the number of blobs.
    """
    m = opacity[:, 0]
    across = (m[:, :, shift:] * m[:, :, :-shift]).sum(dim=(1, 2))
    down = (m[:, shift:] * m[:, :-shift]).sum(dim=(1, 2))
    r = (across + down) / (2 * (m * m).sum(dim=(1, 2)))
    return shift / (2 * torch.sqrt(-torch.log(r)))


def test_snow_near_flakes_are_larger_than_far() -> None:
    """Each layer rendered alone from the same seeds: at relative scale z, blobs z times as wide."""
    from skyclear.degrade.functional import SNOW_LAYERS, flake_opacity

    seeds = torch.arange(4)
    # density 200 / MP, radius 6 px, opacity 0.8, no motion blur (round blobs), angle 0
    shape = [torch.full((4,), value, dtype=torch.float64) for value in (200, 6, 0.8, 0, 0)]
    widths = [
        float(_blob_width(flake_opacity(seeds, *shape, (128, 128), layer, torch.float64)).mean())
        for layer in range(len(SNOW_LAYERS))
    ]
    for near in range(len(SNOW_LAYERS) - 1):
        ratio = widths[near] / widths[near + 1]
        expected = SNOW_LAYERS[near][0] / SNOW_LAYERS[near + 1][0]
        assert 0.75 * expected < ratio < 1.35 * expected, (near, widths, expected)


def test_density_scales_coverage() -> None:
    x = torch.full((1, 3, 96, 96), 0.3)
    g = torch.Generator
    sparse = Rain(density=(200, 200), veil=(0, 0))(x, generator=g().manual_seed(0)).mask.mean()
    dense = Rain(density=(2000, 2000), veil=(0, 0))(x, generator=g().manual_seed(0)).mask.mean()
    assert dense > 3 * sparse


def test_particles_do_not_depend_on_their_batch() -> None:
    """Samples of very different sizes in one batch render as they would alone."""
    x = torch.full((2, 3, 64, 80), 0.4)
    for op, key, values in (
        (Snow(veil=(0, 0)), "radius", (1.0, 30.0)),
        (Rain(veil=(0, 0)), "length", (5.0, 60.0)),
        (Rain(veil=(0, 0)), "width", (1.0, 4.0)),
    ):
        params = op.sample(2, torch.Generator().manual_seed(0))
        params[key] = torch.tensor(values)
        both = op.apply(x, params)
        for b in range(2):
            alone = op.apply(x[b : b + 1], {k: v[b : b + 1] for k, v in params.items()})
            torch.testing.assert_close(alone.mask, both.mask[b : b + 1], atol=1e-6, rtol=0)


def test_wide_streaks_are_filled() -> None:
    from skyclear.degrade.functional import streak_opacity

    def profile(width: float) -> torch.Tensor:
        alpha = streak_opacity(
            torch.tensor([3]), torch.tensor([400.0]), torch.tensor([40.0]),
            torch.tensor([width]), torch.tensor([0.0]), torch.tensor([0.5]),
            (64, 64), 0, torch.float64,
        )  # fmt: skip
        return alpha[0, 0].max(dim=0).values  # the brightest pixel of each column

    thin, wide = profile(1.0), profile(5.0)
    # A 5-pixel streak covers about five times the columns of a 1-pixel one, with no gap
    # in its middle, and its core is as opaque.
    assert (wide > 0.2).sum() >= 3 * (thin > 0.2).sum()
    runs = "".join("1" if v > 0.3 else "0" for v in wide.tolist()).split("0")
    assert max(len(run) for run in runs) >= 4, "no gap across a 5-pixel streak"
    assert wide.max() > 0.8 * thin.max()


def test_half_precision_computes_in_float32(image: torch.Tensor) -> None:
    from skyclear.degrade.functional import counter_rng

    u = counter_rng.uniform(torch.tensor([1]), (1000,), 0, torch.float16)
    assert torch.isfinite(u).all() and u.dtype == torch.float16
    z = counter_rng.normal(torch.tensor([1]), (1000,), 0, torch.bfloat16)
    assert torch.isfinite(z.float()).all()


def test_apply_checks_parameter_values(image: torch.Tensor) -> None:
    import pytest

    params = Snow().sample(2)
    params["opacity"] = torch.tensor([0.5, 1.5])
    with pytest.raises(ValueError, match="opacity"):
        Snow().apply(image, params)


def test_composite_layers_equals_over_from_far_to_near() -> None:
    """The closed form equals applying I <- I (1 - a) + a C from the veil to the nearest."""
    from skyclear.degrade.functional import composite_layers

    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 6, 7, generator=g, dtype=torch.float64)
    tau = torch.rand(2, 3, 6, 7, generator=g, dtype=torch.float64) * 2
    colours = torch.rand(2, 3, 3, generator=g, dtype=torch.float64)
    veil = torch.tensor([0.0, 0.3], dtype=torch.float64)
    veil_colour = torch.rand(2, 3, generator=g, dtype=torch.float64)
    image, mask = composite_layers(x, tau.clone(), colours, veil, veil_colour)

    v = veil.view(-1, 1, 1, 1)
    expected = x * (1 - v) + v * veil_colour.view(2, 3, 1, 1)
    clear = (1 - v).expand(2, 1, 6, 7)
    for layer in reversed(range(3)):  # the farthest streak layer first
        alpha = 1 - torch.exp(-tau[:, layer : layer + 1])
        expected = expected * (1 - alpha) + alpha * colours[:, layer].view(2, 3, 1, 1)
        clear = clear * (1 - alpha)
    torch.testing.assert_close(image, expected)
    torch.testing.assert_close(mask, 1 - clear)


def test_layers_of_one_colour_render_as_their_summed_depth() -> None:
    """Clear air draws all layers into one map; apart, their sum is that map."""
    from skyclear.degrade.functional import (
        RAIN_LAYERS,
        SNOW_LAYERS,
        composite_layers,
        flake_depth,
        streak_depth,
    )

    seed, size = torch.tensor([4, 9]), (48, 56)
    rain = (torch.tensor([900.0, 1500.0]), torch.tensor([20.0, 35.0]), torch.tensor([1.5, 2.0]),
            torch.tensor([10.0, -15.0]), torch.tensor([0.4, 0.3]))  # fmt: skip
    snow = (torch.tensor([400.0, 600.0]), torch.tensor([3.0, 6.0]), torch.tensor([0.8, 0.9]),
            torch.tensor([0.0, 5.0]), torch.tensor([10.0, -20.0]))  # fmt: skip
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for depth, params, layers in (
        (streak_depth, rain, RAIN_LAYERS),
        (flake_depth, snow, SNOW_LAYERS),
    ):
        every = tuple(range(len(layers)))
        apart = depth(seed, *params, size, every, True, torch.float64)
        summed = depth(seed, *params, size, every, False, torch.float64)
        assert apart.shape == (2, 3, *size) and summed.shape == (2, 1, *size)
        assert (apart.sum(dim=(0, 2, 3)) > 0).all(), "every layer is drawn"
        torch.testing.assert_close(apart.sum(dim=1, keepdim=True), summed)
        grey = torch.full((2, 3, 3), 0.8, dtype=torch.float64)
        veil = torch.tensor([0.0, 0.1], dtype=torch.float64)
        one = composite_layers(x, summed, grey[:, :1], veil, grey[:, 0])
        three = composite_layers(x, apart, grey, veil, grey[:, 0])
        torch.testing.assert_close(one, three)


def test_splat_planes_keeps_planes_apart() -> None:
    from skyclear.degrade.functional import splat_planes

    x = torch.tensor([3.2, 10.5, 3.2, 20.0])
    y = torch.tensor([4.7, 8.0, 4.7, 2.5])
    mass = torch.tensor([1.0, 2.0, 3.0, 4.0])
    plane = torch.tensor([0, 1, 1, 0])
    both = splat_planes(
        plane, x, y, mass, 2, (16, 24), torch.float64, level=torch.tensor([0, 1, 0, 2])
    )
    for p in range(2):
        alone = splat_planes(
            torch.zeros(2, dtype=torch.long), x[plane == p], y[plane == p], mass[plane == p], 1,
            (16, 24), torch.float64, level=torch.tensor([0, 1, 0, 2])[plane == p],
        )  # fmt: skip
        torch.testing.assert_close(both[p], alone[0])
        torch.testing.assert_close(both[p].sum(), mass[plane == p].sum().double())


def test_gradients_reach_the_particle_parameters() -> None:
    """Positions and masses depend smoothly on sizes, angles and opacities: their
    gradients flow through the splat (nothing the backward pass needs is overwritten)."""
    from skyclear.degrade.functional import rain, snow

    x = torch.rand(2, 3, 40, 48, generator=torch.Generator().manual_seed(0))
    seed = torch.tensor([1, 2])
    for model, values in (
        (rain, [900.0, 25.0, 1.5, 10.0, 0.4, 0.8, 0.05]),
        (snow, [400.0, 4.0, 0.8, 3.0, 10.0, 0.9, 0.05]),
    ):
        for k in range(1, 5):  # every continuous shape parameter (the density is a count)
            params = [torch.tensor([v, v]) for v in values]
            params[k].requires_grad_()
            image, mask = model(x, *params, seed)
            (image.sum() + mask.sum()).backward()
            assert params[k].grad is not None and params[k].grad.abs().sum() > 0
        # Through haze and behind a scene (the layers apart, the veil hidden in part):
        # the veil and the colour too.
        scene = torch.linspace(1.0, 30.0, 48).expand(2, 1, 40, 48)
        medium = Medium(torch.tensor([0.05, 0.1]), torch.full((2, 3), 0.8))
        for k in (2, 4, 5, 6):
            params = [torch.tensor([v, v]) for v in values]
            params[k].requires_grad_()
            image, mask = model(x, *params, seed, medium=medium, scene=scene)
            (image.sum() + mask.sum()).backward()
            assert params[k].grad is not None and params[k].grad.abs().sum() > 0


def test_a_hole_in_the_depth_map_hides_no_particle() -> None:
    """Depth 0 marks a hole in a depth map, not a wall at the lens: there the layers are
    seen as in front of a far scene; elsewhere a wall 10 cm away hides them (all but the
    soft edge's sigmoid(-9.5) of the nearest layer)."""
    from skyclear.degrade.functional import rain

    x = torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(1))
    params = [torch.tensor([v]) for v in (3000.0, 20.0, 1.5, 10.0, 0.6, 0.8, 0.1)]
    wall = torch.full((1, 1, 40, 48), 0.1)
    wall[..., 10:30, 12:36] = 0.0
    far = torch.full((1, 1, 40, 48), 1e6)
    holed, _ = rain(x, *params, torch.tensor([4]), scene=wall)
    seen, _ = rain(x, *params, torch.tensor([4]), scene=far)
    torch.testing.assert_close(holed[..., 10:30, 12:36], seen[..., 10:30, 12:36])
    torch.testing.assert_close(holed[..., :8, :], x[..., :8, :], atol=1e-3, rtol=0)
    assert (seen - x).abs().amax() > 0.1
