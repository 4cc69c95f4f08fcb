"""Schedules of the residual-scaled transport: ``theta_t``, ``sigma_t`` and their integrals.

Time runs from ``t = 0`` (the degraded image) to ``t = 1`` (the clean one). A schedule gives
the drift rate ``theta_t`` and the noise scale ``sigma_t`` of

    dx = theta_t (mu - x) dt + sigma_t (x - mu) dW,

and, in closed form, ``Th(t) = int_0^t theta`` and ``S(t) = int_0^t sigma^2``, which are all
the transport needs. The residual ``r = x - mu`` then contracts to zero when
``Th(1) = inf`` and ``2 Th - S`` grows without bound (mean and variance of ``r_1`` vanish);
a schedule that stops short of that is checked on construction against a tolerance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["ConstantSchedule", "PowerSchedule", "Schedule"]


class Schedule:
    """Base of the schedules; subclasses give ``theta``, ``sigma``, ``Th`` and ``S``."""

    def theta(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def sigma(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def integral_theta(self, t: Tensor) -> Tensor:
        """``Th(t)``; ``inf`` at ``t = 1`` for schedules that reach ``mu`` exactly."""
        raise NotImplementedError

    def integral_sigma2(self, t: Tensor) -> Tensor:
        """``S(t)``."""
        raise NotImplementedError

    @property
    def deterministic(self) -> bool:
        """True when ``sigma = 0``: the transport is a deterministic flow."""
        raise NotImplementedError


@dataclass(frozen=True)
class PowerSchedule(Schedule):
    """``theta_t = a / (1 - t)``, ``sigma_t^2 = b / (1 - t)``: exact arrival at ``t = 1``.

    ``Th(t) = -a log(1 - t)`` and ``S(t) = -b log(1 - t)``, so the residual is

        r_t = r_0 (1 - t)^(a - b/2) exp(sqrt(-b log(1 - t)) eps),

    log-normal with ``log|r_t| ~ N(log|r_0| + (a - b/2) log(1 - t), -b log(1 - t))``. Its
    mean ``r_0 (1 - t)^a`` and second moment ``r_0^2 (1 - t)^(2a - b)`` vanish at ``t = 1``
    iff ``2a > b`` (checked), where ``r_1 = 0`` exactly. ``a = 1, b = 0`` is the straight
    path ``x_t = (1 - t) x_0 + t mu`` of (rectified) flow matching; ``b`` is the noise knob.

    Args:
        a: drift strength (> 0).
        b: noise strength (>= 0, < 2a).
    """

    a: float = 1.0
    b: float = 0.5

    def __post_init__(self) -> None:
        if not (math.isfinite(self.a) and self.a > 0):
            raise ValueError(f"PowerSchedule.a must be a finite number > 0, got {self.a}")
        if not (math.isfinite(self.b) and self.b >= 0):
            raise ValueError(f"PowerSchedule.b must be a finite number >= 0, got {self.b}")
        if not 2 * self.a > self.b:
            raise ValueError(
                f"PowerSchedule(a={self.a}, b={self.b}) does not contract: the variance of the "
                f"residual vanishes at t = 1 only if 2a > b (2a - b = {2 * self.a - self.b})"
            )

    def theta(self, t: Tensor) -> Tensor:
        return self.a / (1.0 - t)

    def sigma(self, t: Tensor) -> Tensor:
        return torch.sqrt(self.b / (1.0 - t))

    def integral_theta(self, t: Tensor) -> Tensor:
        return -self.a * torch.log1p(-t)

    def integral_sigma2(self, t: Tensor) -> Tensor:
        return -self.b * torch.log1p(-t)

    @property
    def deterministic(self) -> bool:
        return self.b == 0


@dataclass(frozen=True)
class ConstantSchedule(Schedule):
    """``theta_t = theta``, ``sigma_t = sigma``: the mean-reverting (Ornstein-Uhlenbeck-like)
    schedule, which arrives only approximately.

    ``Th(t) = theta t`` and ``S(t) = sigma^2 t``. On construction the residual's mean factor
    ``exp(-theta)`` and root second-moment factor ``exp(-(2 theta - sigma^2) / 2)`` at
    ``t = 1`` must both be at most ``tolerance``.
    """

    theta_value: float = 8.0
    sigma_value: float = 1.0
    tolerance: float = 1e-3

    def __post_init__(self) -> None:
        if not (self.theta_value > 0 and self.sigma_value >= 0 and 0 < self.tolerance < 1):
            raise ValueError(
                "ConstantSchedule needs theta > 0, sigma >= 0 and 0 < tolerance < 1, got "
                f"{self.theta_value}, {self.sigma_value}, {self.tolerance}"
            )
        mean = math.exp(-self.theta_value)
        spread = math.exp(-(2 * self.theta_value - self.sigma_value**2) / 2)
        if max(mean, spread) > self.tolerance:
            raise ValueError(
                f"ConstantSchedule(theta={self.theta_value}, sigma={self.sigma_value}) does not "
                f"contract to {self.tolerance}: at t = 1 the residual keeps a mean factor "
                f"{mean:.3g} and an r.m.s. factor {spread:.3g}; raise theta or lower sigma"
            )

    def theta(self, t: Tensor) -> Tensor:
        return torch.full_like(t, self.theta_value)

    def sigma(self, t: Tensor) -> Tensor:
        return torch.full_like(t, self.sigma_value)

    def integral_theta(self, t: Tensor) -> Tensor:
        return self.theta_value * t

    def integral_sigma2(self, t: Tensor) -> Tensor:
        return self.sigma_value**2 * t

    @property
    def deterministic(self) -> bool:
        return self.sigma_value == 0
