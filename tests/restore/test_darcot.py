"""DA-RCOT's parts: the gradient penalty and the Fourier term worked by hand, the contrastive
term, the two passes at initialisation, and the two players' separate updates."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skyclear.restore.config import override, preset
from skyclear.restore.nn import F2DNet
from skyclear.restore.train.adversary import Adversary
from skyclear.restore.transport.methods import DARCOT
from skyclear.restore.transport.ot import (
    contrastive,
    fourier_residual,
    gradient_penalty,
    interpolate,
)
from torch import nn


def test_gradient_penalty_of_a_linear_and_a_quadratic_critic_by_hand() -> None:
    real = torch.tensor([[1.0, 2.0], [0.0, 4.0]], dtype=torch.float64)
    fake = torch.tensor([[3.0, 0.0], [2.0, 0.0]], dtype=torch.float64)
    mix = torch.tensor([0.5, 0.25], dtype=torch.float64)
    points = interpolate(real, fake, mix)
    # x_hat = m real + (1 - m) fake: (2, 1) and (1.5, 1)
    torch.testing.assert_close(points, torch.tensor([[2.0, 1.0], [1.5, 1.0]], dtype=torch.float64))
    # Linear F(x) = w . x: grad = w everywhere, |w| = 5 -> (5 - 1)^2 = 16.
    w = torch.tensor([3.0, 4.0], dtype=torch.float64, requires_grad=True)
    penalty = gradient_penalty(points @ w, points)
    assert float(penalty.detach()) == pytest.approx(16.0)
    penalty.backward()  # d/dw (|w| - 1)^2 = 2 (|w| - 1) w / |w| = 1.6 w
    assert w.grad is not None
    torch.testing.assert_close(w.grad, 1.6 * w.detach())
    # Quadratic F(x) = |x|^2 / 2: grad = x_hat, norms sqrt(5) and sqrt(3.25).
    points = interpolate(real, fake, mix)
    penalty = gradient_penalty(0.5 * points.square().sum(dim=1), points)
    expected = ((math.sqrt(5) - 1) ** 2 + (math.sqrt(3.25) - 1) ** 2) / 2
    assert float(penalty.detach()) == pytest.approx(expected)


def test_fourier_residual_matches_numpy() -> None:
    residual = torch.randn(2, 3, 8, 6, generator=torch.Generator().manual_seed(0))
    expected = np.abs(np.fft.fft2(residual.numpy(), norm="ortho")).mean()
    assert float(fourier_residual(residual)) == pytest.approx(float(expected), rel=1e-5)
    # Orthonormal: a constant residual c over n pixels is one coefficient c sqrt(n).
    flat = torch.full((1, 1, 4, 4), 0.5)
    assert float(fourier_residual(flat)) == pytest.approx(0.5 * 4 / 16)


def test_contrastive_by_hand_and_lower_when_kinds_separate() -> None:
    embeddings = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    # Anchors 0 and 1 each have one positive (cosine 1) and one negative (cosine 0):
    # -log(e^(1/T) / (e^(1/T) + 1)); anchor 2 has none and is left out.
    temperature = 0.5
    expected = -math.log(math.exp(2.0) / (math.exp(2.0) + 1.0))
    assert float(contrastive(embeddings, labels, temperature)) == pytest.approx(expected)
    mixed = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    assert float(contrastive(mixed, labels, temperature)) > expected
    assert float(contrastive(embeddings, torch.tensor([0, 1, 2]), temperature)) == 0.0


def test_second_pass_equals_the_first_at_initialisation_only() -> None:
    config = override(preset("tiny"), ["method=darcot"]).model
    torch.manual_seed(0)
    model = F2DNet(config)
    degraded = torch.rand(2, 3, 20, 28)
    t = torch.zeros(2)
    first = model(degraded, t, degraded)
    second, aux = model(degraded, t, degraded, return_aux=True, aux=first)
    torch.testing.assert_close(second, first, rtol=0, atol=0)
    assert aux.embedding is not None and aux.embedding.shape[0] == 2
    for head in model.embedder.heads:  # once trained, the residual conditions pass 2
        nn.init.normal_(head.weight, std=0.1)
    assert float((model(degraded, t, degraded, aux=first) - first).detach().abs().max()) > 1e-4
    sampled = DARCOT().sample(lambda x, t, a: model(x, t, x, aux=a), degraded)
    torch.testing.assert_close(sampled, degraded - model(degraded, t, degraded, aux=first))


def test_the_players_update_apart_and_the_map_climbs_the_critic() -> None:
    torch.manual_seed(0)
    adversary = Adversary(DARCOT(), torch.device("cpu"))
    clean = torch.rand(2, 3, 16, 16)
    degraded = 0.5 * clean
    shift = torch.zeros(2, 3, 16, 16, requires_grad=True)  # stands for the map
    restored = degraded + shift
    generator = torch.Generator().manual_seed(1)
    before = [p.detach().clone() for p in adversary.critic.parameters()]
    loss, terms, diverged = adversary.critic_loss(clean, restored, generator)
    assert not diverged and set(terms) == {"critic", "wasserstein", "penalty", "potential"}
    adversary.critic_update(loss, lr=1e-3)
    assert shift.grad is None  # the critic's loss does not reach the map
    after = list(adversary.critic.parameters())
    # Every weight moves (the last bias cancels in F(fake) - F(real) and has no gradient).
    assert all(not torch.equal(a, b) for a, b in zip(before, after, strict=True) if b.ndim > 1)

    adversary.optimizer.zero_grad(set_to_none=True)
    parts = adversary.map_terms(degraded, restored, clean, None, None)
    assert parts["paired"] > 0 and parts["contrastive"] == 0
    potential = float(adversary.potential(restored).mean().detach())
    parts["adversarial"].backward()
    assert all(p.grad is None for p in adversary.critic.parameters())
    assert shift.grad is not None
    with torch.no_grad():  # one step down -F(T(y)) raises F(T(y))
        stepped = degraded + shift - 0.01 * shift.grad / shift.grad.norm()
    assert float(adversary.potential(stepped).mean()) > potential
    unpaired = adversary.map_terms(degraded, restored.detach(), None, None, None)
    assert float(unpaired["paired"]) == 0.0
    expected = float(unpaired["adversarial"] + unpaired["rms"] + unpaired["fourier"])
    assert float(unpaired["transport"]) == pytest.approx(expected)


def test_a_critic_out_of_bounds_is_called_diverged() -> None:
    adversary = Adversary(DARCOT(critic_limit=1.0), torch.device("cpu"))
    with torch.no_grad():
        for parameter in adversary.critic.parameters():
            parameter.mul_(1e3)
    images = torch.rand(2, 3, 16, 16)
    _, terms, diverged = adversary.critic_loss(images, images, torch.Generator())
    assert diverged and float(terms["potential"]) > 1.0
