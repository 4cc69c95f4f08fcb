"""The residual-scaled transport: closed-form marginals, transitions and samplers.

``r = x - mu`` follows ``dr = -theta_t r dt + sigma_t r dW`` (geometric Brownian motion),
so from time ``s`` to ``t``

    r_t = r_s exp(-(Th_t - Th_s) - (S_t - S_s) / 2 + sqrt(S_t - S_s) eps),  eps ~ N(0, 1),

elementwise. Everything here is pure: no state, no model inside; a model is passed to the
samplers as a function ``predict(x_t, t) -> residual``. Training draws ``x_t`` from
``marginal`` and regresses the network's output on ``target``; inference is one call of the
network at ``t = 0``, where ``x_0`` is the degraded image itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .schedules import PowerSchedule, Schedule

__all__ = ["Transport"]

Predictor = Callable[[Tensor, Tensor], Tensor]


def _batch_times(t: Tensor | float, like: Tensor) -> Tensor:
    """Times as ``(B, 1, 1, 1)`` in float64 (``log1p`` near ``t = 1`` needs the bits)."""
    times = torch.as_tensor(t, dtype=torch.float64, device=like.device)
    if times.ndim == 0:
        times = times.expand(like.shape[0])
    if times.shape != (like.shape[0],):
        raise ValueError(
            f"t must be a scalar or shape ({like.shape[0]},), got {tuple(times.shape)}"
        )
    if not bool(((times >= 0) & (times <= 1)).all()):
        raise ValueError("t must lie in [0, 1]")
    return times.view(-1, *([1] * (like.ndim - 1)))


@dataclass(frozen=True)
class Transport:
    """The transport of a schedule (default: ``PowerSchedule(a=1, b=0.5)``).

    Example:
        >>> transport = Transport(PowerSchedule(a=1.0, b=0.5))
        >>> x_t = transport.marginal(degraded, clean, t, noise)   # training input
        >>> loss = ((net(x_t, t) - transport.target(x_t, clean)) ** 2).mean()
        >>> restored = transport.one_step(lambda x, t: net(x, t), degraded)
    """

    schedule: Schedule = field(default_factory=PowerSchedule)

    def scale(self, s: Tensor | float, t: Tensor | float, noise: Tensor) -> Tensor:
        """The factor ``r_t / r_s`` for noise ``eps`` (shape of the images), ``s <= t``.

        Exactly 0 where ``t = 1`` for a schedule with ``Th(1) = inf``.
        """
        s64, t64 = _batch_times(s, noise), _batch_times(t, noise)
        if bool((s64 > t64).any()):
            raise ValueError("the transition runs forward in time: need s <= t")
        sched = self.schedule
        drift = sched.integral_theta(t64) - sched.integral_theta(s64)
        spread = sched.integral_sigma2(t64) - sched.integral_sigma2(s64)
        spread = torch.nan_to_num(spread, nan=0.0)  # inf - inf at s = t = 1
        drift = torch.nan_to_num(drift, nan=0.0)
        log_scale = -drift - spread / 2 + torch.sqrt(spread) * noise.double()
        return torch.exp(torch.nan_to_num(log_scale, nan=float("-inf"))).to(noise.dtype)

    def marginal(self, x0: Tensor, mu: Tensor, t: Tensor | float, noise: Tensor) -> Tensor:
        """``x_t`` given the degraded ``x0``, the clean ``mu`` and ``eps`` (closed form)."""
        return mu + (x0 - mu) * self.scale(0.0, t, noise)

    def transition(
        self, x_s: Tensor, mu: Tensor, s: Tensor | float, t: Tensor | float, noise: Tensor
    ) -> Tensor:
        """``x_t`` given ``x_s`` and ``mu`` (exact for any step size)."""
        return mu + (x_s - mu) * self.scale(s, t, noise)

    @staticmethod
    def target(x_t: Tensor, mu: Tensor) -> Tensor:
        """What the network predicts: the residual ``x_t - mu`` (MSE in pixel space)."""
        return x_t - mu

    @staticmethod
    def one_step(predict: Predictor, x0: Tensor) -> Tensor:
        """Restore in one network evaluation, at ``t = 0`` where ``x_t`` is ``x0`` itself:
        ``mu = x0 - predict(x0, 0)``."""
        t = torch.zeros(x0.shape[0], device=x0.device, dtype=x0.dtype)
        return x0 - predict(x0, t)

    def sample(
        self,
        predict: Predictor,
        x0: Tensor,
        steps: int,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Exact ``steps``-step sampler on a uniform time grid.

        At each ``t_i`` the network's residual gives ``mu_hat = x - predict(x, t_i)``, and
        ``x`` moves to ``t_{i+1}`` by the exact transition towards ``mu_hat``; the last step
        lands on ``mu_hat``. With ``steps = 1`` this is ``one_step``.
        """
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        x = x0
        grid = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
        for i in range(steps):
            t = torch.full((x.shape[0],), float(grid[i]), device=x.device, dtype=x.dtype)
            mu_hat = x - predict(x, t)
            if i == steps - 1:
                return mu_hat
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
            x = self.transition(x, mu_hat, float(grid[i]), float(grid[i + 1]), noise)
        return x
