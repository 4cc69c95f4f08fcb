"""The Restorer: loading checkpoints, whole and tiled restoration."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from skyclear.restore.checkpoint import CheckpointError, save_checkpoint
from skyclear.restore.config import config_to_dict, method_of, preset
from skyclear.restore.inference import Restorer, _ramp, _starts
from skyclear.restore.nn import Aux, F2DNet, ImageStatistics
from torch import Tensor, nn


class _Constant(nn.Module):
    """A stand-in network whose residual is ``x_t - target`` (0: it changes nothing) and
    whose maps are all ``0.5``."""

    def __init__(self, target: float | None = None) -> None:
        super().__init__()
        self.target = target

    def forward(
        self,
        x_t: Tensor,
        t: Tensor,
        degraded: Tensor,
        return_aux: bool = False,
        statistics: ImageStatistics | None = None,
    ) -> tuple[Tensor, Aux]:
        residual = torch.zeros_like(x_t) if self.target is None else x_t - self.target
        batch, _, height, width = x_t.shape
        maps = torch.full((batch, 4, height, width), 0.5)
        return residual, Aux(maps, torch.full((batch, 4), 0.25), torch.full((batch, 4), 0.2))


def _restorer(model: nn.Module) -> Restorer:
    config = preset("tiny")
    return Restorer(model.eval(), method_of(config), config, torch.device("cpu"))


def _awake_tiny() -> F2DNet:
    """The tiny network, random, with its zero-initialised residual scales nudged so every
    path carries signal."""
    torch.manual_seed(0)
    model = F2DNet(preset("tiny").model)
    for name, parameter in model.named_parameters():
        if name.endswith((".beta", ".gamma")):
            nn.init.constant_(parameter, 0.1)
    return model


@pytest.fixture
def photo() -> Tensor:
    g = torch.Generator().manual_seed(3)
    rows = torch.linspace(0, 1, 72).view(1, 1, -1, 1)
    cols = torch.linspace(0, 1, 107).view(1, 1, 1, -1)
    return (0.2 + 0.25 * (rows + cols) + 0.1 * torch.rand(1, 3, 72, 107, generator=g)).clamp(0, 1)


@pytest.mark.parametrize("length", [1, 15, 16, 17, 40, 100, 257])
@pytest.mark.parametrize(("tile", "overlap"), [(16, 0), (16, 4), (32, 15), (64, 8)])
@pytest.mark.parametrize("multiple", [1, 4, 8])
def test_starts_cover_every_pixel_on_the_grid(
    length: int, tile: int, overlap: int, multiple: int
) -> None:
    starts = _starts(length, tile, overlap, multiple)
    covered = torch.zeros(length, dtype=torch.bool)
    for start in starts:
        covered[start : start + tile] = True
    assert bool(covered.all())
    assert starts[0] == 0 and starts == sorted(set(starts))
    assert all(start % multiple == 0 for start in starts), "tiles start on the network's grid"
    assert length - starts[-1] > min(tile, length) - multiple, "the last tile is nearly whole"
    shared = [a + tile - b for a, b in itertools.pairwise(starts)]
    assert all(amount >= overlap for amount in shared)


def test_blend_ramps_sum_to_one_across_a_shared_band() -> None:
    falling, rising = _ramp(32, 0, 8, False, True), _ramp(32, 0, 8, True, False)
    assert torch.allclose(falling[-8:] + rising[:8], torch.ones(8))
    assert bool((falling > 0).all()) and bool((falling[:-8] == 1).all())
    assert torch.equal(_ramp(5, 2, 8, False, False), torch.ones(5)), "no neighbour, no ramp"
    discarding = _ramp(32, 4, 8, True, True)
    assert bool((discarding[:4] == 0).all()) and bool((discarding[-4:] == 0).all())
    assert torch.allclose(discarding[4:12] + discarding[4:12].flip(0), torch.ones(8))


@pytest.mark.parametrize(("tile", "overlap"), [(16, 4), (24, None), (32, 0), (40, 13)])
def test_tiles_of_a_network_that_changes_nothing_give_the_input(
    photo: Tensor, tile: int, overlap: int | None
) -> None:
    restored, aux = _restorer(_Constant()).tiled(photo, tile, overlap)
    assert restored.shape == photo.shape and restored.dtype == torch.float32
    assert float((restored - photo).abs().max()) < 1e-6
    deep = (photo * 65535).round() / 65535  # a 16-bit photo comes back bit for bit
    assert torch.equal(
        (_restorer(_Constant()).tiled(deep, tile, overlap)[0] * 65535).round(), deep * 65535
    )
    assert float((aux.maps - 0.5).abs().max()) < 1e-6, "the blend weights are normalised"
    assert torch.allclose(aux.weights, torch.full((1, 4), 0.25))


def test_tiles_of_a_constant_output_are_that_constant(photo: Tensor) -> None:
    restored, _ = _restorer(_Constant(0.3)).tiled(photo, 16, 4)
    assert float((restored - 0.3).abs().max()) < 1e-6


def test_thin_photos_tile_along_their_long_side(photo: Tensor) -> None:
    strip = photo[..., :5, :]
    restored, _ = _restorer(_Constant()).tiled(strip, 32, 10)
    assert float((restored - strip).abs().max()) < 1e-6


def test_a_tile_as_large_as_the_photo_is_the_whole_restoration(photo: Tensor) -> None:
    restorer = _restorer(_awake_tiny())
    whole, whole_aux = restorer(photo)
    tiled, tiled_aux = restorer.tiled(photo, 107)
    assert torch.equal(tiled, whole) and torch.equal(tiled_aux.maps, whole_aux.maps)


def _scene(height: int, width: int) -> Tensor:
    """A photo whose halves differ in tone (a dark street under a bright hazy sky): a tile of
    either half alone has statistics far from the photo's."""
    g = torch.Generator().manual_seed(1)
    rows = torch.linspace(0, 1, height).view(1, 1, -1, 1)
    cols = torch.linspace(0, 1, width).view(1, 1, 1, -1)
    tint = torch.tensor([1.0, 0.8, 0.5]).view(1, 3, 1, 1)
    noise = 0.1 * torch.rand(1, 3, height, width, generator=g)
    return (0.1 + 0.6 * rows * tint + 0.2 * cols + noise).clamp(0, 1)


def _awake(scale: float) -> F2DNet:
    model = _awake_tiny()
    for name, parameter in model.named_parameters():
        if name.endswith((".beta", ".gamma")):
            nn.init.constant_(parameter, scale)
    return model


def _grey_levels(a: Tensor, b: Tensor) -> tuple[float, float]:
    """Mean and 99.9th percentile of ``|a - b|`` in 8-bit grey levels."""
    difference = (a - b).abs().flatten() * 255
    return float(difference.mean()), float(difference.quantile(0.999))


@pytest.mark.parametrize("context_side", [512, 96])
def test_tiles_restore_as_the_whole_photo_does(context_side: int) -> None:
    """Within a fraction of a grey level (the target: < 1/255 mean, < 8/255 at the 99.9th
    percentile), because every tile replays the photo's image-level statistics and the
    margins it computes without their surroundings are discarded. Tiles pooling over
    themselves miss this by a grey level or more on this photo. ``context_side`` 96: the
    statistics come from a downscaled copy, for whole and tiled restoration alike."""
    restorer = _restorer(_awake(0.5))
    restorer.context_side = context_side
    photo = _scene(192, 288)
    whole, whole_aux = restorer(photo)
    assert _grey_levels(whole, photo)[0] > 20, "the network changes the photo a lot"
    tiled, tiled_aux = restorer.tiled(photo, 64)
    mean, tail = _grey_levels(tiled, whole)
    assert mean < 1 and tail < 8
    assert mean < 0.02 and tail < 0.5, f"tiled differs from whole: {mean:.3f}, {tail:.3f}"
    assert torch.allclose(tiled_aux.weights, whole_aux.weights, atol=1e-5)
    assert float((tiled_aux.maps - whole_aux.maps).abs().max()) < 1e-3


def test_tiles_without_margins_leave_seams() -> None:
    """The margin is what removes the seams: without it the tiles' borders show."""
    restorer = _restorer(_awake(0.5))
    photo = _scene(192, 288)
    whole, _ = restorer(photo)
    assert _grey_levels(restorer.tiled(photo, 64, margin=0)[0], whole)[1] > 1
    assert _grey_levels(restorer.tiled(photo, 64)[0], whole)[1] < 0.5


def test_multi_step_tiles_draw_the_whole_photos_noise() -> None:
    restorer = _restorer(_awake(0.5))
    photo = _scene(96, 160)
    whole, _ = restorer(photo, 3, torch.Generator().manual_seed(7))
    tiled, _ = restorer.tiled(photo, 64, None, 3, torch.Generator().manual_seed(7))
    mean, tail = _grey_levels(tiled, whole)
    assert mean < 0.05 and tail < 1


def test_tiled_checks_its_arguments(photo: Tensor) -> None:
    restorer = _restorer(_Constant())
    with pytest.raises(ValueError, match="tile must be"):
        restorer.tiled(photo, 4)
    with pytest.raises(ValueError, match="overlap"):
        restorer.tiled(photo, 32, 11)
    with pytest.raises(ValueError, match="margin"):
        restorer.tiled(photo, 32, 4, margin=11)
    with pytest.raises(ValueError, match="one image"):
        restorer.tiled(photo.expand(2, -1, -1, -1), 32)


def test_multi_step_restoration_replays_from_its_seed(photo: Tensor) -> None:
    restorer = _restorer(_awake_tiny())
    small = photo[..., :24, :40]
    first, _ = restorer(small, 3, torch.Generator().manual_seed(7))
    again, _ = restorer(small, 3, torch.Generator().manual_seed(7))
    other, _ = restorer(small, 3, torch.Generator().manual_seed(8))
    assert torch.equal(first, again) and not torch.equal(first, other)
    tiled, _ = restorer.tiled(small, 16, 4, 3, torch.Generator().manual_seed(7))
    assert torch.equal(tiled, restorer.tiled(small, 16, 4, 3, torch.Generator().manual_seed(7))[0])


def test_from_checkpoint_loads_the_chosen_weights(tmp_path: Path) -> None:
    config = preset("tiny")
    model, ema = F2DNet(config.model), F2DNet(config.model)
    payload = {"config": config_to_dict(config), "step": 3}
    save_checkpoint(
        {**payload, "model": model.state_dict(), "ema": ema.state_dict()}, tmp_path / "a.pt"
    )
    for weights, source in (("ema", ema), ("model", model)):
        restorer = Restorer.from_checkpoint(tmp_path / "a.pt", device="cpu", weights=weights)
        loaded = restorer.model.state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in source.state_dict().items())
        assert not restorer.model.training
    with pytest.raises(ValueError, match="weights"):
        Restorer.from_checkpoint(tmp_path / "a.pt", weights="best")
    wrong = {**payload, "model": {"x": torch.zeros(1)}, "ema": {"x": torch.zeros(1)}}
    save_checkpoint(wrong, tmp_path / "b.pt")
    with pytest.raises(CheckpointError, match="do not fit"):
        Restorer.from_checkpoint(tmp_path / "b.pt", device="cpu")
