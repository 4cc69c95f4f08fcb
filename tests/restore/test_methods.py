"""The methods as transports: closed forms against simulation, oracles, hand-worked values,
and the time convention (t = 0 degraded, t = 1 clean, whatever the paper's)."""

from __future__ import annotations

import math

import pytest
import torch
from skyclear.restore.transport.methods import (
    F2D,
    IRSDE,
    METHODS,
    Draw,
    FlowMatching,
    IRFlow,
    Method,
    Predictor,
    ResFlow,
    method_named,
)


def _images(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    clean = torch.rand(2, 3, 8, 8, generator=generator, dtype=torch.float64)
    degraded = 0.5 * clean + 0.4 * torch.rand(2, 3, 8, 8, generator=generator, dtype=torch.float64)
    return degraded, clean


def test_every_method_is_named_and_an_unknown_name_lists_them() -> None:
    assert list(METHODS) == ["f2d", "fm", "irsde", "irflow", "resflow", "darcot"]
    assert {name: METHODS[name].nfe for name in METHODS} == {
        "f2d": 1, "fm": 1, "irsde": 100, "irflow": 4, "resflow": 4, "darcot": 2,
    }  # fmt: skip
    with pytest.raises(ValueError, match="f2d, fm, irsde, irflow, resflow, darcot"):
        method_named("ddpm")
    for name in METHODS:  # zero steps is an error, not the method's own count
        assert method_named(name).steps_of(None) == METHODS[name].nfe
        with pytest.raises(ValueError, match=">= 1"):
            method_named(name).steps_of(0)


@pytest.mark.parametrize("method", [F2D(), FlowMatching(), IRFlow()])
@pytest.mark.parametrize("steps", [1, 2, 4])
def test_residual_oracle_restores_exactly(method: Method, steps: int) -> None:
    """A network that knows the remainder ``x - clean`` restores exactly in any number of
    steps (the f2d sampler's noise moves the path, never its end)."""
    degraded, clean = _images()
    seen: list[float] = []

    def oracle(x: torch.Tensor, t: torch.Tensor, aux: torch.Tensor | None) -> torch.Tensor:
        assert aux is None
        seen.append(float(t[0]))
        return x - clean

    restored = method.sample(oracle, degraded, steps, torch.Generator().manual_seed(1))
    torch.testing.assert_close(restored, clean, atol=1e-12, rtol=0)
    assert seen[0] == 0.0 and len(seen) == steps  # starts at the degraded end, t = 0


def test_irflow_path_weights_and_a_consistency_term_with_gradient() -> None:
    degraded, clean = _images()
    method = IRFlow()
    t = torch.tensor([0.0, 0.75], dtype=torch.float64)
    draw = method.draw(degraded, clean, t, torch.zeros_like(degraded), torch.Generator())
    torch.testing.assert_close(draw.x[0], degraded[0])
    torch.testing.assert_close(draw.target[1], 0.25 * (degraded[1] - clean[1]))
    # K Euler steps walk 1/K, 1/(K-1), ..., 1 of the predicted remainder (the public code's
    # w_i = 1/i): with a network that predicts a fixed share c of the remainder, the
    # restoration keeps prod(1 - c / (K - k)) of the initial residual.
    share = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)

    def partial(x: torch.Tensor, t: torch.Tensor, aux: torch.Tensor | None) -> torch.Tensor:
        return share * (x - clean)

    loss = method.consistency(partial, degraded, clean, 3)
    kept = (1 - 0.5 / 3) * (1 - 0.5 / 2) * (1 - 0.5 / 1)
    assert float(loss.detach()) == pytest.approx(kept * float((degraded - clean).abs().mean()))
    loss.backward()
    assert share.grad is not None and float(share.grad) < 0  # more share, less error
    draws = {method.consistency_steps(torch.Generator().manual_seed(s)) for s in range(200)}
    assert draws == set(range(2, 11))


def test_irsde_marginal_matches_a_simulation_of_its_sde() -> None:
    """Euler-Maruyama on ``dx = theta (mu - x) dtau + sigma dW`` from the clean value to
    tau = 0.3 against the closed-form mean and variance."""
    method = IRSDE(spread=0.2)
    generator = torch.Generator().manual_seed(0)
    clean, mu, tau, steps = 0.9, 0.2, 0.3, 600
    x = torch.full((200_000,), clean, dtype=torch.float64)
    sigma = math.sqrt(2 * method.spread**2 * method.theta)
    dt = tau / steps
    for _ in range(steps):
        noise = torch.randn(x.shape, generator=generator, dtype=torch.float64)
        x = x + method.theta * (mu - x) * dt + sigma * math.sqrt(dt) * noise
    at = torch.tensor([tau], dtype=torch.float64)
    mean = mu + (clean - mu) * float(method.mean_factor(at))
    assert float(x.mean()) == pytest.approx(mean, abs=3e-3)
    assert float(x.var()) == pytest.approx(float(method.variance(at)), rel=3e-2)
    # and at tau = 1 the clean image has all but ``end`` of its weight gone
    assert float(method.mean_factor(torch.tensor(1.0))) == pytest.approx(0.005)


def test_irsde_optimal_reverse_state_is_the_gaussian_posterior_mean() -> None:
    """x*_{tau'} against Bayes' rule worked independently: prior x_{tau'} ~ N(m', v'),
    x_tau | x_{tau'} ~ N(mu + (x_{tau'} - mu) e^{-D}, lambda^2 (1 - e^{-2 D}))."""
    method = IRSDE(spread=0.1)
    clean, mu, x = 0.8, 0.3, 0.41
    tau, previous = (
        torch.tensor([0.6], dtype=torch.float64),
        torch.tensor([0.55], dtype=torch.float64),
    )
    gap = method.theta * float(tau - previous)
    prior_mean = (clean - mu) * float(method.mean_factor(previous))
    prior_var = float(method.variance(previous))
    noise_var = method.spread**2 * (1 - math.exp(-2 * gap))
    precision = 1 / prior_var + math.exp(-2 * gap) / noise_var
    posterior = (prior_mean / prior_var + math.exp(-gap) * (x - mu) / noise_var) / precision
    image = lambda value: torch.full((1, 1, 1, 1), value, dtype=torch.float64)  # noqa: E731
    best = method.optimal_reverse(image(x), image(clean), image(mu), tau, previous)
    assert float(best) == pytest.approx(mu + posterior, rel=1e-10)


def test_irsde_noise_oracle_restores_within_tolerance_and_the_loss_prefers_the_truth() -> None:
    """With the noise of the conditional score (the clean image known), 100 reverse
    Euler-Maruyama steps from mu + lambda eps land near the clean image: exact only as the
    steps shrink, so within 0.01 mean absolute error here."""
    method = IRSDE()
    degraded, clean = _images()

    def oracle(x: torch.Tensor, t: torch.Tensor, aux: torch.Tensor | None) -> torch.Tensor:
        tau = 1.0 - t
        mean = degraded + (clean - degraded) * method.mean_factor(tau).view(-1, 1, 1, 1)
        return (x - mean) / method.variance(tau).sqrt().view(-1, 1, 1, 1)

    restored = method.sample(oracle, degraded, generator=torch.Generator().manual_seed(2))
    assert float((restored - clean).abs().mean()) < 0.01
    assert float((degraded - clean).abs().mean()) > 0.1
    noise = torch.randn(
        degraded.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64
    )
    draw = method.draw(degraded, clean, torch.zeros(2), noise, torch.Generator().manual_seed(4))
    assert bool(((draw.t >= 0) & (draw.t < 1)).all())  # skyclear's time: tau = 1 - t
    truth = method.loss(noise, draw, degraded, clean)
    wrong = method.loss(torch.zeros_like(noise), draw, degraded, clean)
    assert float(truth) < 0.5 * float(wrong)


def test_irsde_loss_is_in_units_of_noise_error() -> None:
    """At tau = 1 one reverse step moves sigma^2 dtau / sqrt(v(1)) per unit of noise, and
    v(1) = lambda^2 (1 - end^2): the loss, divided by 2 lambda theta / N, charges one unit of
    loss per unit of mean absolute noise error there (not IR-SDE's bare 0.004)."""
    method = IRSDE()
    assert method.loss_unit == pytest.approx(2 * (10 / 255) * math.log(200) / 100)
    degraded, clean = _images()
    noise = torch.randn(
        degraded.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64
    )
    tau = torch.ones(2, dtype=torch.float64)
    x = method.marginal(clean, degraded, tau, noise)
    draw = Draw(x, 1.0 - tau, noise, torch.ones_like(tau))
    prediction = noise.clone().requires_grad_(True)
    method.loss(prediction, draw, degraded, clean).backward()
    assert prediction.grad is not None
    per_unit = prediction.grad.abs() * prediction.numel()
    expected = 1.0 / math.sqrt(1.0 - method.end**2)
    torch.testing.assert_close(per_unit, torch.full_like(per_unit, expected))


def test_extra_terms_are_irflow_consistency_alone() -> None:
    """The training step adds a method's extra terms; only IR-Flow has one, on the first
    ``consistency_images`` images, conditioned on their own degraded images."""
    (degraded, clean), (more, more_clean) = _images(0), _images(1)
    degraded, clean = torch.cat([degraded, more]), torch.cat([clean, more_clean])
    seen: list[torch.Tensor] = []

    def predict_for(condition: torch.Tensor) -> Predictor:
        seen.append(condition)
        return lambda x, t, aux: x - clean[: x.shape[0]]

    for name in METHODS:
        terms = method_named(name).extra_terms(predict_for, degraded, clean, torch.Generator())
        assert (name == "irflow") == bool(terms), name
    weight, value = method_named("irflow").extra_terms(
        predict_for, degraded, clean, torch.Generator()
    )["consistency"]
    assert weight == 0.1 and float(value) == pytest.approx(0.0, abs=1e-12)  # an oracle
    assert len(seen) == 2 and seen[-1].shape[0] == IRFlow.consistency_images
    torch.testing.assert_close(seen[-1], degraded[: IRFlow.consistency_images])


def test_resflow_schedule_and_weight_by_hand() -> None:
    method = ResFlow()
    scale = method.aux_scale(torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert scale.tolist() == pytest.approx([10 / 11, 1.0])
    weight = method.weight(torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64))
    # cos(-3 pi / 4) + 1 = 1 - 1/sqrt(2) = 0.292893; 0.292893 ** 1.75 = 0.116611
    assert weight.tolist() == pytest.approx([0.0, 0.116611, 1.0], abs=1e-6)


def test_resflow_velocity_oracle_restores_exactly_and_carries_its_auxiliary() -> None:
    method = ResFlow()
    degraded, clean = _images()
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)  # skyclear: degraded end, clean end
    noise = torch.randn(
        degraded.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64
    )
    draw = method.draw(degraded, clean, t, noise, torch.Generator())
    torch.testing.assert_close(draw.x[0], degraded[0])
    torch.testing.assert_close(draw.x[1], clean[1])
    assert draw.aux is not None
    torch.testing.assert_close(draw.aux[0], noise[0])  # y_1 at the degraded end
    assert draw.weight.tolist() == pytest.approx([1.0, 0.0])
    auxes: list[torch.Tensor] = []

    def oracle(x: torch.Tensor, t: torch.Tensor, aux: torch.Tensor | None) -> torch.Tensor:
        assert aux is not None
        auxes.append(aux)
        return degraded - clean

    restored = method.sample(oracle, degraded, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(restored, clean, atol=1e-12, rtol=0)
    assert len(auxes) == 4
    # y shrinks by the schedule's ratio, step by step: sigma(tau = 0.25) / sigma(1)
    torch.testing.assert_close(auxes[-1], auxes[0] * (10 / 10.75), atol=1e-6, rtol=1e-6)
