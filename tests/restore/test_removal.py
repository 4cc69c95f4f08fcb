"""Remove-sets: the network is told what to remove, and a kept degradation's expert rests."""

from __future__ import annotations

import pytest
import torch
from skyclear.restore.config import ConfigError, override, preset
from skyclear.restore.inference import Restorer
from skyclear.restore.nn import F2DNet
from skyclear.restore.runtime import resolve_device
from skyclear.restore.transport.methods import method_named


def _network(removal: bool) -> F2DNet:
    """A tiny network whose zero-initialised layers (the experts' outputs) are drawn too,
    so that every expert acts; the removal embedding stays at its zero start."""
    torch.manual_seed(0)
    config = override(preset("tiny"), [f"model.removal={str(removal).lower()}"]).model
    network = F2DNet(config).eval()
    with torch.no_grad():
        for name, parameter in network.named_parameters():
            if not parameter.any() and not name.startswith("removal"):
                parameter.normal_(0.0, 0.1)
    return network


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand(2, 3, 32, 40, generator=torch.Generator().manual_seed(1))
    return x, torch.zeros(2)


def test_by_default_everything_is_removed_and_a_kept_expert_rests() -> None:
    network = _network(True)
    x, t = _inputs()
    with torch.no_grad():
        plain, aux = network(x, t, x, return_aux=True)
        ones, _ = network(x, t, x, return_aux=True, remove=torch.ones(4))
        keep_rain = torch.tensor([1.0, 1.0, 0.0, 1.0])
        partial, partial_aux = network(x, t, x, return_aux=True, remove=keep_rain)
    torch.testing.assert_close(plain, ones)
    torch.testing.assert_close(partial_aux.alpha, aux.alpha * keep_rain)
    assert float(aux.alpha[:, 2].abs().max()) > 0 and not torch.allclose(plain, partial)


def test_the_remove_set_reaches_the_conditioning() -> None:
    network = _network(True)
    with torch.no_grad():
        network.removal.weight.normal_(0.0, 0.5)
    x, t = _inputs()
    with torch.no_grad():
        a = network(x, t, x, remove=torch.tensor([1.0, 1.0, 1.0, 1.0]))
        b = network(x, t, x, remove=torch.tensor([1.0, 1.0, 1.0, 0.0]))
        network.removal.weight.zero_()
        c = network(x, t, x, remove=torch.tensor([1.0, 1.0, 1.0, 1.0]))
    assert not torch.allclose(a, c)  # the embedding moved the full restoration itself
    assert not torch.allclose(a, b)


def test_a_network_trained_without_remove_sets_refuses_one() -> None:
    network = _network(False)
    x, t = _inputs()
    with pytest.raises(ValueError, match="without remove-sets"):
        network(x, t, x, remove=torch.ones(4))
    config = preset("tiny")
    restorer = Restorer(network, method_named("f2d"), config, resolve_device("cpu"))
    with pytest.raises(ValueError, match="without remove-sets"):
        restorer(x, remove=torch.ones(4))


def test_the_config_ties_partial_targets_to_the_network() -> None:
    with pytest.raises(ConfigError, match=r"model\.removal=true"):
        override(preset("tiny"), ["data.partial=0.3"])
    with pytest.raises(ConfigError, match="darcot"):
        override(preset("tiny"), ["method=darcot", "model.removal=true"])
    config = override(preset("tiny"), ["data.partial=0.3", "model.removal=true"])
    assert config.model.removal and config.data.partial == 0.3
