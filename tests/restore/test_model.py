"""The factorised network: shapes, sizes, gradients, routing values, ablations."""

from __future__ import annotations

import pytest
import torch
from skyclear.restore.nn import CONFIGS, F2DNet, ModelConfig, build_model


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _awake(model: F2DNet) -> F2DNet:
    """Nudge the zero-initialised residual scales and expert outputs so every path carries
    signal."""
    for name, parameter in model.named_parameters():
        if name.endswith((".beta", ".gamma")):
            torch.nn.init.constant_(parameter, 0.1)
        if name.endswith(".out.weight"):
            torch.nn.init.normal_(parameter, std=0.1)
    return model


def test_parameter_counts() -> None:
    with torch.device("meta"):
        tiny, paper = build_model("tiny"), build_model("paper")
    assert _count(tiny) < 1_000_000
    assert abs(_count(paper) / 23.8e6 - 1) <= 0.10, _count(paper)
    assert _count(paper.parser) < 500_000
    assert _count(paper.experts) / _count(paper) >= 0.04, "the experts are real branches"


@pytest.mark.parametrize("size", [(17, 23), (32, 32), (5, 64)])
def test_any_input_size(size: tuple[int, int]) -> None:
    model = build_model("tiny").eval()
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        residual, aux = model(x, torch.tensor([0.0, 0.5]), x, return_aux=True)
    assert residual.shape == x.shape
    assert aux.maps.shape == (2, 4, *size) and aux.weights.shape == aux.alpha.shape == (2, 4)


def test_routing_values_as_documented() -> None:
    model = build_model("tiny")
    x = torch.rand(3, 3, 24, 24)
    _, aux = model(x, torch.rand(3), x, return_aux=True)
    for tensor in (aux.maps, aux.weights, aux.alpha):
        assert tensor.min() >= 0 and tensor.max() <= 1
    assert torch.all(aux.alpha <= aux.weights + 1e-6), "the gate scales the global weights down"
    assert torch.all(aux.alpha.sum(1) <= 4)


def test_gradients_reach_every_expert_and_the_parser() -> None:
    torch.manual_seed(0)
    model = _awake(build_model("tiny"))
    x = torch.rand(2, 3, 16, 16)
    model(x, torch.tensor([0.1, 0.9]), x).pow(2).mean().backward()
    for part in (*model.experts, model.parser, model.gate, model.backbone):
        grads = [p.grad for p in part.parameters() if p.requires_grad]
        assert all(g is not None for g in grads)
        assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0, part


def test_time_conditions_the_output() -> None:
    torch.manual_seed(1)
    model = _awake(build_model("tiny"))
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        early, late = model(x, torch.tensor([0.0]), x), model(x, torch.tensor([0.9]), x)
    assert not torch.allclose(early, late)


@pytest.mark.parametrize(
    "switches",
    [
        {"experts": False},
        {"experts": False, "widen": True},
        {"gate": "none"},
        {"gate": "sigmoid"},
        {"gate": "softmax"},
        {"routing": "image"},
    ],
)
def test_ablations(switches: dict[str, object]) -> None:
    config = CONFIGS["tiny"].ablate(**switches)
    model = F2DNet(config)
    x = torch.rand(1, 3, 20, 20)
    residual, aux = model(x, torch.tensor([0.3]), x, return_aux=True)
    assert residual.shape == x.shape
    full = F2DNet(CONFIGS["tiny"])
    if not config.experts:
        assert not hasattr(model, "experts") and not aux.spatial
        ratio = _count(model) / _count(full)
        assert abs(ratio - 1) < 0.1 if config.widen else ratio < 0.9, ratio
    elif config.gate == "none":
        assert torch.equal(aux.alpha, aux.weights) and not hasattr(model, "gate")
    elif config.gate == "softmax":
        assert torch.allclose(aux.alpha.sum(1), aux.weights.amax(1)), "one shared budget"
    if config.routing == "image":
        assert not aux.spatial and bool((aux.maps == 1).all())


def test_wide_presets_are_the_capacity_controls() -> None:
    with torch.device("meta"):
        for name in ("tiny", "small"):
            full, wide = build_model(name), build_model(f"{name}_wide")
            assert not hasattr(wide, "experts")
            assert abs(_count(wide) / _count(full) - 1) < 0.05, name


@pytest.mark.parametrize("gate", ["softmax", "sigmoid"])
def test_the_gate_depends_on_time(gate: str) -> None:
    """The gate allocates the experts differently early and late in the transport."""
    torch.manual_seed(0)
    model = F2DNet(CONFIGS["tiny"].ablate(gate=gate)).eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        early = model(x, torch.tensor([0.0]), x, return_aux=True)[1].alpha
        late = model(x, torch.tensor([0.9]), x, return_aux=True)[1].alpha
    assert float((early - late).abs().max()) > 1e-3, (early, late)


def _with_maps(model: F2DNet, maps: torch.Tensor) -> F2DNet:
    """``model`` whose parser draws ``maps`` (its global weights as they are)."""
    forward = model.parser.forward

    def parse(degraded: torch.Tensor, statistics: object = None) -> tuple[torch.Tensor, ...]:
        weights = forward(degraded, statistics)[1]  # type: ignore[arg-type]
        return maps.expand(degraded.shape[0], -1, -1, -1), weights

    model.parser.forward = parse  # type: ignore[method-assign]
    return model


@pytest.mark.parametrize("routing", ["pixel", "image"])
def test_an_expert_acts_only_where_its_map_is_on(routing: str) -> None:
    """Per-pixel routing: changing the rain expert changes the output only where the rain
    map is non-zero; image-level routing has no maps, so it changes it everywhere."""
    torch.manual_seed(0)
    model = _awake(F2DNet(CONFIGS["tiny"].ablate(routing=routing))).eval()
    for expert in model.experts:
        torch.nn.init.normal_(expert.out.weight, std=0.5)
    maps = torch.ones(1, 4, 16, 16)
    maps[:, 2, :, :8] = 0.0  # no rain on the left half
    _with_maps(model, maps)
    x, t = torch.rand(1, 3, 16, 16), torch.tensor([0.0])
    with torch.no_grad():
        before = model(x, t, x)
        model.experts[2].out.weight.mul_(3.0)
        after = model(x, t, x)
    change = (after - before).abs().amax(dim=1)[0]
    assert float(change[:, 8:].min()) > 1e-6, "the rain expert acts where its map is on"
    if routing == "pixel":
        assert float(change[:, :8].max()) == 0.0, "and nowhere else"
    else:
        assert float(change[:, :8].min()) > 1e-6, "image routing acts everywhere"


def test_bad_configs_and_inputs() -> None:
    with pytest.raises(ValueError, match="width"):
        ModelConfig(width=3)
    with pytest.raises(ValueError, match="same"):
        ModelConfig(encoder_blocks=(1, 1), decoder_blocks=(1,))
    with pytest.raises(ValueError, match="unknown config"):
        build_model("huge")
    model = build_model("tiny")
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(1, 3, 8, 8), torch.zeros(1), torch.rand(1, 3, 8, 9))


def test_the_parser_sees_particles_whatever_the_exposure() -> None:
    """The parser's normalised, high-pass and band-pass views of a photo keep its
    structure as strong when the photo is darkened (to a quarter: the raw view drops 4x,
    these less than 1.4x) and unchanged under a uniform veil; shading leaves the high- and
    band-pass, a thin speck shows most in the high-pass, a soft flake in the band-pass; a
    tile takes its photo's statistics."""
    from skyclear.restore.nn.model import _views
    from skyclear.restore.nn.statistics import ImageStatistics

    torch.manual_seed(0)
    photo = torch.rand(1, 3, 40, 48) * 0.6 + 0.2
    views = _views(photo, None)
    assert views.shape == (1, 12, 40, 48)
    dark = _views(photo * 0.25, None)
    raw_drop = views[:, :3].std() / dark[:, :3].std()
    assert 3.5 < raw_drop < 4.5
    for channels in (slice(3, 6), slice(6, 9), slice(9, 12)):
        assert views[:, channels].std() / dark[:, channels].std() < 1.4
    veiled = _views(photo + 0.2, None)
    assert torch.allclose(veiled[:, 3:], views[:, 3:], atol=1e-4)
    # shading (a smooth ramp) leaves the high-pass and band-pass views, a speck does not
    ramp = torch.linspace(0.1, 0.9, 48).expand(1, 3, 40, 48).clone()
    shaded = _views(ramp, None)
    assert shaded[:, 3:6].abs().mean() > 0.5
    assert shaded[:, 6:9, 2:-2, 2:-2].abs().max() < 1e-4
    assert shaded[:, 9:, 6:-6, 6:-6].abs().max() < 1e-4
    speck = ramp.clone()
    speck[..., 20, 24] += 0.3
    seen = _views(speck, None)[0, :, 20, 24]
    assert seen[6:9].min() > 1.0 and seen[6:9].min() > 2 * seen[9:].max()
    # a soft flake (a Gaussian blob of sigma 2.5 px) mostly escapes the 5x5 high-pass
    rows, columns = torch.meshgrid(torch.arange(40.0), torch.arange(48.0), indexing="ij")
    flake = 0.3 * torch.exp(-((rows - 20) ** 2 + (columns - 24) ** 2) / (2 * 2.5**2))
    seen = _views(ramp + flake, None)[0, :, 20, 24]
    assert seen[9:].min() > 1.5 and seen[9:].min() > 1.5 * seen[6:9].max()

    recording = ImageStatistics()
    _views(photo, recording)
    tile = photo[..., :20, :24]
    replayed = _views(tile, recording.replay())
    # as it is and normalised: pixel for pixel; the high- and band-pass away from the
    # tile's edges (2 and 6 pixels)
    assert torch.allclose(replayed[:, :6], views[:, :6, :20, :24], atol=1e-5)
    assert torch.allclose(replayed[:, 6:9, :18, :22], views[:, 6:9, :18, :22], atol=1e-5)
    assert torch.allclose(replayed[:, 9:, :14, :18], views[:, 9:, :14, :18], atol=1e-5)
    own = _views(tile, None)  # a tile's own statistics normalise it otherwise
    assert not torch.allclose(own[:, 3:6], views[:, 3:6, :20, :24], atol=1e-2)
