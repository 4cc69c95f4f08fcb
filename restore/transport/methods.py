"""Restoration methods as transports: what a training step feeds the network, what it
regresses on, and how a restoration is sampled (pure and stateless, no network inside).

One time convention inside skyclear: ``t = 0`` is the degraded image, ``t = 1`` the
clean one. IR-SDE, IR-Flow and ResFlow all run their own time the other way (``0`` clean,
``1`` degraded); each method converts at its edge, ``tau = 1 - t``, and the network is
always told skyclear's ``t``.

* ``f2d``: the residual-scaled stochastic transport (``process.Transport``), the network
  predicting the residual ``x_t - mu``; one evaluation at ``t = 0``.
* ``fm``: the same family with ``b = 0``, deterministic flow matching on the straight path.
* ``irsde``: IR-SDE (Luo et al., ICML 2023), the mean-reverting SDE
  ``dx = theta (mu - x) dtau + sigma dW`` with ``sigma^2 / theta = 2 lambda^2`` from the
  clean image (``tau = 0``) to the degraded one plus noise of spread ``lambda``; the network
  predicts the noise; trained on the maximum-likelihood loss (the L1 distance of one
  reverse step to the optimal reverse state); sampled by 100 reverse Euler-Maruyama steps.
* ``irflow``: IR-Flow (rectified flow between the degraded and the clean image), the
  network predicting the cumulative velocity ``x_t - mu`` (what remains to the clean
  image, the same target as ``fm``) at every level of degradation, plus a multi-step
  consistency term: ``K`` Euler steps from the degraded image, ``K`` drawn in 2..10, must
  land on the clean image. Skyclear takes that term's gradient through the ``K`` steps (the
  public code evaluates it without gradient, so there it only adds a constant to the
  loss); sampled by 1-4 Euler steps.
* ``resflow``: ResFlow (Wang et al., 2025), the augmented state ``(x, y)`` on the straight
  path for ``x`` and the entropy-preserving schedule ``sigma^y = beta / (1 - tau + beta)``,
  ``beta = 10``, for the auxiliary ``y = sigma^y y_1``, ``y_1 ~ N(0, I)``; the network
  (told ``y`` through a zero-initialised adapter) predicts the velocity of ``x``, weighted
  by ``lambda(tau) = (cos(pi / 2 (tau - 2)) + 1)^gamma``, ``gamma = 1.75``; sampled by 4
  Euler steps. ``y``'s own velocity is ``(d sigma^y / d tau) / sigma^y * y``, known from
  ``y`` itself, so it is integrated exactly rather than predicted (the paper's network
  predicts both).

A ``Predictor`` is ``predict(x, t, aux) -> Tensor``: the network's output for state ``x``
at skyclear time ``t`` ``(B,)``, with ``aux`` ResFlow's auxiliary (``None`` elsewhere).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor

from .process import Transport
from .schedules import PowerSchedule

__all__ = [
    "DARCOT",
    "F2D",
    "IRSDE",
    "METHODS",
    "Draw",
    "FlowMatching",
    "IRFlow",
    "Method",
    "Predictor",
    "ResFlow",
    "method_named",
]

Predictor = Callable[[Tensor, Tensor, Tensor | None], Tensor]


@dataclass(frozen=True)
class Draw:
    """One training batch as a method poses it: the network's input state ``x`` at
    skyclear times ``t`` ``(B,)``, with ``aux`` (ResFlow's auxiliary, else ``None``), what
    its output should be (``target``) and each sample's loss ``weight`` ``(B,)``."""

    x: Tensor
    t: Tensor
    target: Tensor
    weight: Tensor
    aux: Tensor | None = None


def _times(value: float | Tensor, like: Tensor) -> Tensor:
    """``(B,)`` times in ``like``'s dtype and device."""
    times = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    return times.expand(like.shape[0]).clone() if times.ndim == 0 else times


def _column(values: Tensor, like: Tensor) -> Tensor:
    """``(B,)`` values as ``(B, 1, 1, 1)`` in ``like``'s dtype."""
    return values.to(like.dtype).view(-1, *([1] * (like.ndim - 1)))


class Method(abc.ABC):
    """A restoration method: its training draw and loss, and its sampler."""

    name: ClassVar[str]
    #: network evaluations of the method's own sampler
    nfe: ClassVar[int]
    #: channels of the auxiliary input the network is given (ResFlow's ``y``)
    aux_channels: ClassVar[int] = 0
    #: whether a share of the training times is put at ``t = 0`` (``transport.t0_fraction``:
    #: the time of one-step inference); the others train on the times they are given
    uses_t0: ClassVar[bool] = False
    #: whether the network's auxiliary input is a transport residual (DA-RCOT's passes)
    residual_condition: ClassVar[bool] = False
    #: trained against a critic (``restore.train.adversary``) rather than on ``loss``
    adversarial: ClassVar[bool] = False

    @abc.abstractmethod
    def draw(
        self, degraded: Tensor, clean: Tensor, t: Tensor, noise: Tensor, generator: torch.Generator
    ) -> Draw:
        """The training inputs and targets for a batch, given uniform times ``t`` in [0, 1)
        ``(B,)`` and standard normal ``noise`` of the images' shape (a method uses what it
        needs; ``generator`` draws anything else)."""

    def draws_noise(self, steps: int) -> bool:
        """Whether ``sample`` with ``steps`` draws random numbers (then its generator's
        seed changes the result)."""
        return False

    def steps_of(self, steps: int | None) -> int:
        """The network evaluations of a sampling: ``steps``, or the method's own for
        ``None``; ``ValueError`` below 1."""
        count = self.nfe if steps is None else steps
        if count < 1:
            raise ValueError(f"steps must be >= 1, got {count}")
        return count

    def loss(self, prediction: Tensor, draw: Draw, degraded: Tensor, clean: Tensor) -> Tensor:
        """The per-sample-weighted mean squared error of the prediction against the
        target (the images are there for methods whose loss needs them)."""
        per_sample = (prediction.float() - draw.target.float()).square().flatten(1).mean(1)
        return (per_sample * draw.weight.float()).mean()

    @abc.abstractmethod
    def sample(
        self,
        predict: Predictor,
        degraded: Tensor,
        steps: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Restore ``degraded`` in ``steps`` network evaluations (``None``: ``nfe``)."""

    def extra_terms(
        self,
        predict_for: Callable[[Tensor], Predictor],
        degraded: Tensor,
        clean: Tensor,
        generator: torch.Generator,
    ) -> dict[str, tuple[float, Tensor]]:
        """Loss terms beyond ``loss`` that need the network at states of the method's own
        choosing, as ``{name: (weight, value)}``; ``predict_for(condition)`` is the network
        conditioned on ``condition`` (the degraded images of the states it is given).
        None by default."""
        return {}


@dataclass(frozen=True)
class F2D(Method):
    """The residual-scaled stochastic transport (see ``process.Transport``)."""

    name: ClassVar[str] = "f2d"
    nfe: ClassVar[int] = 1
    uses_t0: ClassVar[bool] = True
    schedule: PowerSchedule = field(default_factory=PowerSchedule)

    def draw(
        self, degraded: Tensor, clean: Tensor, t: Tensor, noise: Tensor, generator: torch.Generator
    ) -> Draw:
        transport = Transport(self.schedule)
        x_t = transport.marginal(degraded, clean, t, noise)
        return Draw(x_t, t, transport.target(x_t, clean), torch.ones_like(t))

    def draws_noise(self, steps: int) -> bool:
        return steps > 1 and not self.schedule.deterministic

    def sample(
        self,
        predict: Predictor,
        degraded: Tensor,
        steps: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        transport = Transport(self.schedule)
        return transport.sample(
            lambda x, t: predict(x, t, None), degraded, self.steps_of(steps), generator
        )


@dataclass(frozen=True)
class FlowMatching(F2D):
    """Deterministic flow matching: ``f2d`` with ``b = 0``, the straight path."""

    name: ClassVar[str] = "fm"
    schedule: PowerSchedule = field(default_factory=lambda: PowerSchedule(a=1.0, b=0.0))


@dataclass(frozen=True)
class IRFlow(Method):
    """IR-Flow: the straight path ``x_t = (1 - t) degraded + t clean``, every level of
    degradation ``t`` uniform, the cumulative velocity ``x_t - clean`` as the target, and
    the multi-step consistency term (``consistency``) added by the training step."""

    name: ClassVar[str] = "irflow"
    nfe: ClassVar[int] = 4
    consistency_weight: float = 0.1
    max_consistency_steps: int = 10
    #: images of each batch the consistency term restores (its K steps cost K forward and
    #: backward passes each): the first ones, as the public code takes the whole batch
    consistency_images: int = 2

    def draw(
        self, degraded: Tensor, clean: Tensor, t: Tensor, noise: Tensor, generator: torch.Generator
    ) -> Draw:
        x_t = degraded + _column(t, degraded) * (clean - degraded)
        return Draw(x_t, t, x_t - clean, torch.ones_like(t))

    def consistency_steps(self, generator: torch.Generator) -> int:
        """``K``, uniform in 2..``max_consistency_steps``."""
        high = self.max_consistency_steps - 1
        return 2 + int(torch.randint(0, high, (), generator=generator))

    def consistency(
        self, predict: Predictor, degraded: Tensor, clean: Tensor, steps: int
    ) -> Tensor:
        """The mean absolute error of a ``steps``-step restoration against ``clean``,
        differentiable through every step."""
        return (self.sample(predict, degraded, steps) - clean).abs().mean()

    def extra_terms(
        self,
        predict_for: Callable[[Tensor], Predictor],
        degraded: Tensor,
        clean: Tensor,
        generator: torch.Generator,
    ) -> dict[str, tuple[float, Tensor]]:
        """The consistency term of ``K`` steps (``consistency_steps``) on the batch's first
        ``consistency_images`` images."""
        if self.consistency_weight <= 0:
            return {}
        steps = self.consistency_steps(generator)
        few = slice(0, self.consistency_images)
        predict = predict_for(degraded[few])
        value = self.consistency(predict, degraded[few], clean[few], steps)
        return {"consistency": (self.consistency_weight, value)}

    def sample(
        self,
        predict: Predictor,
        degraded: Tensor,
        steps: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Euler steps on a uniform grid: at ``t_k = k / K`` the predicted remainder ``d``
        is walked a ``1 / (K - k)`` share of, so the last step lands on ``x - d``."""
        count = self.steps_of(steps)
        x = degraded
        for k in range(count):
            remainder = predict(x, _times(k / count, x), None)
            x = x - remainder / (count - k)
        return x


@dataclass(frozen=True)
class IRSDE(Method):
    """IR-SDE's mean-reverting SDE in its own time ``tau = 1 - t`` (``0`` clean).

    ``dx = theta (mu - x) dtau + sigma dW`` with ``sigma^2 = 2 lambda^2 theta``, ``mu`` the
    degraded image. With ``Th = theta tau``, from the clean image ``x_c``:

        ``x_tau ~ N(mu + (x_c - mu) exp(-Th), lambda^2 (1 - exp(-2 Th)))``.

    ``theta`` is constant, ``-log(end) `` so that ``exp(-Th(1)) = end`` (the public code
    shapes ``theta`` with a cosine over its 100 steps and scales it to the same end: the
    marginals differ by the time change only). Training draws a step ``i`` of ``steps``,
    ``x_i`` from the marginal, and the network predicts its noise ``eps``; the score is
    ``-eps / sqrt(v_i)``. The loss is the L1 distance between one reverse Euler step (its
    drift only) from ``x_i`` and the optimal reverse state ``x*_{i-1}``, the mean of
    ``x_{i-1}`` given ``x_i`` and the clean image (``optimal_reverse``), divided by the
    constant ``loss_unit``: what one unit of noise error moves that step at ``tau = 1``,
    ``sigma^2 / (N lambda) = 2 lambda theta / N``. The paper's loss is that distance alone;
    its minimiser and its weighting of the steps are unchanged by a constant, but beside
    skyclear's routing terms (of order 0.1-1) the bare distance (of order 0.001) would
    leave the shared backbone to them, so the term is put in units of the noise.
    """

    name: ClassVar[str] = "irsde"
    nfe: ClassVar[int] = 100
    spread: float = 10.0 / 255.0  # lambda: the stationary standard deviation
    end: float = 0.005  # exp(-Th(1)): what is left of the clean image at tau = 1
    steps: int = 100

    def draws_noise(self, steps: int) -> bool:
        return True

    @property
    def theta(self) -> float:
        return -math.log(self.end)

    def mean_factor(self, tau: Tensor) -> Tensor:
        """``exp(-Th(tau))``."""
        return torch.exp(-self.theta * tau)

    def variance(self, tau: Tensor) -> Tensor:
        """``v(tau) = lambda^2 (1 - exp(-2 Th(tau)))``."""
        return self.spread**2 * -torch.expm1(-2.0 * self.theta * tau)

    def marginal(self, clean: Tensor, degraded: Tensor, tau: Tensor, noise: Tensor) -> Tensor:
        """``x_tau`` from the clean image, for noise ``eps``."""
        factor = _column(self.mean_factor(tau), clean)
        spread = _column(self.variance(tau).sqrt(), clean)
        return degraded + (clean - degraded) * factor + spread * noise

    def optimal_reverse(
        self, x: Tensor, clean: Tensor, degraded: Tensor, tau: Tensor, previous: Tensor
    ) -> Tensor:
        """``x*_{tau'} = E[x_{tau'} | x_tau, x_c]`` for ``tau' = previous < tau``:

        ``mu + (1 - e^{-2 Th'}) e^{-D} / (1 - e^{-2 Th}) (x - mu)
        + (1 - e^{-2 D}) e^{-Th'} / (1 - e^{-2 Th}) (x_c - mu)``, ``D = Th - Th'``.
        """
        th, th_prev = self.theta * tau, self.theta * previous
        gap = th - th_prev
        total = -torch.expm1(-2.0 * th)
        to_x = -torch.expm1(-2.0 * th_prev) * torch.exp(-gap) / total
        to_clean = -torch.expm1(-2.0 * gap) * torch.exp(-th_prev) / total
        return (
            degraded + _column(to_x, x) * (x - degraded) + _column(to_clean, x) * (clean - degraded)
        )

    def reverse_drift(self, x: Tensor, degraded: Tensor, noise: Tensor, tau: Tensor) -> Tensor:
        """``dx/dtau`` of the reverse SDE's drift, ``theta (mu - x) - sigma^2 score``, with
        the score ``-eps / sqrt(v)`` of predicted noise ``eps``."""
        sigma2 = 2.0 * self.spread**2 * self.theta
        score = -noise / _column(self.variance(tau).sqrt(), x)
        return self.theta * (degraded - x) - sigma2 * score

    def draw(
        self, degraded: Tensor, clean: Tensor, t: Tensor, noise: Tensor, generator: torch.Generator
    ) -> Draw:
        step = torch.randint(1, self.steps + 1, t.shape, generator=generator, device=t.device)
        tau = step.to(degraded.dtype) / self.steps
        x = self.marginal(clean, degraded, tau, noise)
        return Draw(x, 1.0 - tau, noise, torch.ones_like(tau))

    @property
    def loss_unit(self) -> float:
        """``sigma^2 / (N lambda)``: the move of one reverse step at ``tau = 1`` per unit of
        noise error."""
        return 2.0 * self.spread * self.theta / self.steps

    def loss(self, prediction: Tensor, draw: Draw, degraded: Tensor, clean: Tensor) -> Tensor:
        """The L1 distance of one reverse step with the predicted noise to ``x*_{i-1}``, in
        ``loss_unit``s."""
        tau = 1.0 - draw.t
        previous = (tau - 1.0 / self.steps).clamp_min(0.0)
        step = _column(tau - previous, draw.x)
        moved = (
            draw.x - self.reverse_drift(draw.x, degraded, prediction.to(draw.x.dtype), tau) * step
        )
        best = self.optimal_reverse(draw.x, clean, degraded, tau, previous)
        return (moved - best).abs().mean() / self.loss_unit

    def sample(
        self,
        predict: Predictor,
        degraded: Tensor,
        steps: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """From ``mu + lambda eps`` at ``tau = 1``, ``steps`` reverse Euler-Maruyama steps to
        ``tau = 0`` (no noise is added on the last)."""
        count = self.steps_of(steps)
        sigma = math.sqrt(2.0 * self.spread**2 * self.theta)

        def normal(like: Tensor) -> Tensor:
            return torch.randn(like.shape, generator=generator, dtype=like.dtype).to(like.device)

        x = degraded + self.spread * normal(degraded)
        for k in range(count):
            tau = 1.0 - k / count
            times = _times(tau, x)
            noise = predict(x, 1.0 - times, None)
            x = x - self.reverse_drift(x, degraded, noise, times) / count
            if k < count - 1:
                x = x + sigma * math.sqrt(1.0 / count) * normal(x)
        return x


@dataclass(frozen=True)
class ResFlow(Method):
    """ResFlow's augmented straight path in its own time ``tau = 1 - t`` (``0`` clean):
    ``x_tau = (1 - tau) x_c + tau mu``, ``y_tau = sigma^y(tau) y_1``."""

    name: ClassVar[str] = "resflow"
    nfe: ClassVar[int] = 4
    aux_channels: ClassVar[int] = 3
    beta: float = 10.0
    gamma: float = 1.75

    def draws_noise(self, steps: int) -> bool:
        return True  # the auxiliary's start

    def aux_scale(self, tau: Tensor) -> Tensor:
        """``sigma^y(tau) = beta / (1 - tau + beta)``: ``beta / (1 + beta)`` at ``tau = 0``,
        1 at ``tau = 1``."""
        return self.beta / (1.0 - tau + self.beta)

    def weight(self, tau: Tensor) -> Tensor:
        """``lambda(tau) = (cos(pi / 2 (tau - 2)) + 1)^gamma``: 0 at the clean end, 1 at the
        degraded one."""
        return (torch.cos(0.5 * math.pi * (tau - 2.0)) + 1.0).clamp_min(0.0) ** self.gamma

    def draw(
        self, degraded: Tensor, clean: Tensor, t: Tensor, noise: Tensor, generator: torch.Generator
    ) -> Draw:
        tau = 1.0 - t
        x = clean + _column(tau, clean) * (degraded - clean)
        aux = _column(self.aux_scale(tau), noise) * noise
        return Draw(x, t, degraded - clean, self.weight(tau), aux)

    def sample(
        self,
        predict: Predictor,
        degraded: Tensor,
        steps: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Euler steps from ``(mu, y_1)``, ``y_1 ~ N(0, I)``, at ``tau = 1`` to ``tau = 0``:
        ``x`` by the predicted velocity, ``y`` by its exact scale."""
        count = self.steps_of(steps)
        x = degraded
        y = torch.randn(degraded.shape, generator=generator, dtype=degraded.dtype).to(
            degraded.device
        )
        for k in range(count):
            tau, after = 1.0 - k / count, 1.0 - (k + 1) / count
            velocity = predict(x, _times(1.0 - tau, x), y)
            x = x - velocity / count
            y = y * float(self.aux_scale(torch.tensor(after)) / self.aux_scale(torch.tensor(tau)))
        return x


@dataclass(frozen=True)
class DARCOT(Method):
    """DA-RCOT: a transport map learned adversarially, in two passes. Pass 1 restores
    ``y`` unconditioned; its residual ``y - T_1(y)`` is encoded at every scale of the
    backbone (``nn.embedding``) to condition pass 2 (zero-initialised: pass 2 starts equal
    to pass 1). The network predicts the residual at ``t = 0``, so ``T(y) = y - r``.

    Training (``restore.train.adversary``): the critic ``F`` on
    ``-F(x) + F(T(y)) + penalty_weight * GP``, on RMSprop at ``critic_lr_ratio`` times the
    map's learning rate; the map on ``-F(T(y)) + sigma (rms(r) + |FFT r|_1 +
    contrastive_weight * contrastive) + paired_weight * |T(y) - x|_1``, the last term only
    with pairs. The fields are the public code's values.
    """

    name: ClassVar[str] = "darcot"
    nfe: ClassVar[int] = 2
    residual_condition: ClassVar[bool] = True
    adversarial: ClassVar[bool] = True
    sigma: float = 1.0
    paired_weight: float = 1e4
    contrastive_weight: float = 0.1
    temperature: float = 0.07
    penalty_weight: float = 10.0
    critic_lr_ratio: float = 2.0
    #: a critic whose potentials reach this size has diverged (training stops)
    critic_limit: float = 1e4

    def draw(
        self, degraded: Tensor, clean: Tensor, t: Tensor, noise: Tensor, generator: torch.Generator
    ) -> Draw:
        """The map's one state: the degraded image at ``t = 0``, its residual the target."""
        zero = torch.zeros_like(t)
        return Draw(degraded, zero, degraded - clean, torch.ones_like(t))

    def sample(
        self,
        predict: Predictor,
        degraded: Tensor,
        steps: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Pass 1 unconditioned, then each further pass conditioned on the residual of the
        one before (2 passes: the method's map; 1: its first pass alone)."""
        count = self.steps_of(steps)
        times = _times(0.0, degraded)
        residual = None
        for _ in range(count):
            residual = predict(degraded, times, residual)
        assert residual is not None
        return degraded - residual


METHODS: dict[str, type[Method]] = {
    cls.name: cls for cls in (F2D, FlowMatching, IRSDE, IRFlow, ResFlow, DARCOT)
}


def method_named(name: str) -> Method:
    """The method ``name`` with its default settings; ``ValueError`` listing the methods."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; the methods are {', '.join(METHODS)}")
    return METHODS[name]()
