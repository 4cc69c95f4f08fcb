"""Transport oracles: closed-form law, SDE simulation, contraction, exact one-step inference."""

from __future__ import annotations

import math

import pytest
import torch
from skyclear.restore.transport import ConstantSchedule, PowerSchedule, Transport


def _pair(
    seed: int = 0, shape: tuple[int, ...] = (2, 3, 8, 8)
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=torch.float64), torch.rand(
        shape, generator=g, dtype=torch.float64
    )


@pytest.mark.parametrize(
    "schedule", [PowerSchedule(1.0, 0.5), PowerSchedule(2.0, 1.5), ConstantSchedule(8.0, 1.0)]
)
@pytest.mark.parametrize("t", [0.25, 0.6, 0.9])
def test_log_residual_is_normal_with_the_closed_form_moments(schedule: object, t: float) -> None:
    transport = Transport(schedule)  # type: ignore[arg-type]
    r0 = torch.tensor([0.3, -0.7], dtype=torch.float64).view(2, 1, 1, 1)
    noise = torch.randn(
        2, 1, 400, 500, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    r_t = r0 * transport.scale(0.0, t, noise)
    log_r = torch.log(r_t.abs())
    time = torch.tensor(t, dtype=torch.float64)
    drift = schedule.integral_theta(time)  # type: ignore[attr-defined]
    spread = schedule.integral_sigma2(time)  # type: ignore[attr-defined]
    expected_mean = torch.log(r0.abs()).flatten() - drift - spread / 2
    torch.testing.assert_close(log_r.mean(dim=(1, 2, 3)), expected_mean, atol=0.01, rtol=0)
    torch.testing.assert_close(
        log_r.var(dim=(1, 2, 3)), spread.expand(2), atol=0.02 * max(1.0, float(spread)), rtol=0.02
    )
    assert torch.all(torch.sign(r_t) == torch.sign(r0)), "the residual never changes sign"


@pytest.mark.parametrize(
    "schedule", [PowerSchedule(1.0, 0.6), ConstantSchedule(6.0, 0.8, tolerance=5e-3)]
)
def test_euler_maruyama_matches_the_closed_form_marginal(schedule: object) -> None:
    """Simulate dr = -theta r dt + sigma r dW with small steps; compare E[r_t], E[r_t^2]."""
    g = torch.Generator().manual_seed(2)
    paths, steps, t_end = 100_000, 800, 0.8
    r = torch.full((paths,), 0.5, dtype=torch.float64)
    dt = t_end / steps
    for k in range(steps):
        t = torch.tensor(k * dt, dtype=torch.float64)
        theta = schedule.theta(t)  # type: ignore[attr-defined]
        sigma = schedule.sigma(t)  # type: ignore[attr-defined]
        r = (
            r
            - theta * r * dt
            + sigma * r * math.sqrt(dt) * torch.randn(paths, generator=g, dtype=torch.float64)
        )
    time = torch.tensor(t_end, dtype=torch.float64)
    drift = float(schedule.integral_theta(time))  # type: ignore[attr-defined]
    spread = float(schedule.integral_sigma2(time))  # type: ignore[attr-defined]
    mean, second = 0.5 * math.exp(-drift), 0.25 * math.exp(-2 * drift + spread)
    assert abs(float(r.mean()) / mean - 1) < 0.02
    assert abs(float((r**2).mean()) / second - 1) < 0.05
    closed = (
        Transport(schedule).scale(
            0.0, t_end, torch.randn(paths, generator=g, dtype=torch.float64).view(-1, 1)
        )
        * 0.5
    )  # type: ignore[arg-type]
    assert abs(float(closed.mean()) / mean - 1) < 0.02


def test_contraction_at_t1() -> None:
    x0, mu = _pair()
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    exact = Transport(PowerSchedule(1.0, 0.5)).marginal(x0, mu, 1.0, noise)
    assert torch.equal(exact, mu), "a PowerSchedule arrives exactly"
    approx = Transport(ConstantSchedule(8.0, 1.0)).marginal(x0, mu, 1.0, noise)
    assert float((approx - mu).abs().mean()) <= 1e-3 * float((x0 - mu).abs().mean())


def test_schedules_that_do_not_contract_are_refused() -> None:
    with pytest.raises(ValueError, match="2a > b"):
        PowerSchedule(a=1.0, b=2.5)
    with pytest.raises(ValueError, match="does not contract"):
        ConstantSchedule(theta_value=2.0, sigma_value=1.0)
    with pytest.raises(ValueError, match="a must"):
        PowerSchedule(a=0.0, b=0.0)


def test_transition_composes_like_the_marginal() -> None:
    """x_s -> x_t with the same Brownian increments equals x_0 -> x_t."""
    x0, mu = _pair(4)
    g = torch.Generator().manual_seed(5)
    transport = Transport(PowerSchedule(1.5, 1.0))
    schedule = transport.schedule
    s, t = 0.3, 0.7
    w_s = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    w_st = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    big_s = lambda u: float(schedule.integral_sigma2(torch.tensor(u, dtype=torch.float64)))  # noqa: E731
    x_s = transport.marginal(x0, mu, s, w_s)
    x_t = transport.transition(x_s, mu, s, t, w_st)
    combined = (math.sqrt(big_s(s)) * w_s + math.sqrt(big_s(t) - big_s(s)) * w_st) / math.sqrt(
        big_s(t)
    )
    torch.testing.assert_close(x_t, transport.marginal(x0, mu, t, combined))


def test_sigma_zero_is_deterministic_flow_matching() -> None:
    x0, mu = _pair(6)
    transport = Transport(PowerSchedule(1.0, 0.0))
    a = transport.marginal(x0, mu, 0.4, torch.randn(x0.shape, dtype=torch.float64))
    b = transport.marginal(x0, mu, 0.4, torch.randn(x0.shape, dtype=torch.float64))
    assert torch.equal(a, b)
    torch.testing.assert_close(
        a, 0.6 * x0 + 0.4 * mu, msg=lambda detail: f"a = 1, b = 0 is the straight path\n{detail}"
    )


@pytest.mark.parametrize(
    "schedule", [PowerSchedule(1.0, 0.5), PowerSchedule(1.0, 0.0), ConstantSchedule(8.0, 1.0)]
)
@pytest.mark.parametrize("steps", [1, 4])
def test_oracle_network_restores_mu_exactly(schedule: object, steps: int) -> None:
    x0, mu = _pair(7)
    transport = Transport(schedule)  # type: ignore[arg-type]
    calls: list[float] = []

    def oracle(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        calls.append(float(t[0]))
        return transport.target(x_t, mu)

    restored = transport.sample(oracle, x0, steps, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(restored, mu, atol=1e-12, rtol=0)
    assert calls[0] == 0.0, "the first (and one-step) call is at t = 0, where x_t is x0"
    assert len(calls) == steps
    calls.clear()
    torch.testing.assert_close(transport.one_step(oracle, x0), mu, atol=1e-12, rtol=0)
    assert calls == [0.0]


def test_bad_times() -> None:
    x0, mu = _pair()
    transport = Transport()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        transport.marginal(x0, mu, 1.5, torch.zeros_like(x0))
    with pytest.raises(ValueError, match="s <= t"):
        transport.transition(x0, mu, 0.8, 0.2, torch.zeros_like(x0))
    with pytest.raises(ValueError, match="steps"):
        transport.sample(lambda x, t: x, x0, 0)
