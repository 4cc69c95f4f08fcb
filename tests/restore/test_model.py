"""The factorised network: shapes, sizes, gradients, routing values, ablations."""

from __future__ import annotations

import pytest
import torch
from skyclear.restore.nn import CONFIGS, F2DNet, ModelConfig, build_model


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _awake(model: F2DNet) -> F2DNet:
    """Nudge the zero-initialised residual scales so every path carries signal."""
    for name, parameter in model.named_parameters():
        if name.endswith((".beta", ".gamma")):
            torch.nn.init.constant_(parameter, 0.1)
    return model


def test_parameter_counts() -> None:
    with torch.device("meta"):
        tiny, paper = build_model("tiny"), build_model("paper")
    assert _count(tiny) < 1_000_000
    assert abs(_count(paper) / 23.8e6 - 1) <= 0.10, _count(paper)
    assert _count(paper.parser) < 500_000


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
    "switches", [{"factorized": False}, {"time_gate": False}, {"factorized": True}]
)
def test_ablations(switches: dict[str, bool]) -> None:
    config = CONFIGS["tiny"].ablate(**switches)
    model = F2DNet(config)
    x = torch.rand(1, 3, 20, 20)
    residual, aux = model(x, torch.tensor([0.3]), x, return_aux=True)
    assert residual.shape == x.shape
    if not config.factorized:
        assert not hasattr(model, "experts")
        full = F2DNet(CONFIGS["tiny"])
        assert abs(_count(model) / _count(full) - 1) < 0.1, "the same budget, in one backbone"
    elif not config.time_gate:
        assert torch.equal(aux.alpha, aux.weights)


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
