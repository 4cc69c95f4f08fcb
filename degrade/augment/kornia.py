"""kornia augmentations over skyclear's operators: batched, replayable, differentiable.

``RandomLowLight``, ``RandomHaze``, ``RandomRain`` and ``RandomSnow`` take the ranges of
the operators of the same name (``skyclear.degrade``); ``RandomTier`` draws one CDD-11 tier
per sample (weights configurable). They are ``IntensityAugmentationBase2D`` subclasses:
per-sample parameters, ``p``, ``same_on_batch``, exact replay with ``params=``, any device,
gradients to the input, and they work inside ``AugmentationSequential`` (masks given to it
pass through unchanged, as for any intensity augmentation). After a call the degradation
masks of the batch are in ``aug.masks``: ``(B, 4, H, W)``, channels low, haze, rain, snow,
zero for samples that ``p`` left untouched.

Example:
    >>> aug = RandomRain(density=(800, 1600), p=0.8)
    >>> y = aug(x)                       # x: (B, 3, H, W) in [0, 1]
    >>> same = aug(x, params=aug._params)  # exact replay
    >>> aug.masks.shape                  # (B, 4, H, W)
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import Tensor

try:
    from kornia.augmentation import IntensityAugmentationBase2D
except ImportError as error:  # pragma: no cover - kornia is a dependency
    raise ImportError("skyclear's kornia augmentations need kornia: pip install kornia") from error

from ..compose import Composite, parse_tier
from ..names import DEGRADATIONS, ORDERS, TIERS
from ..ops import Haze, LowLight, Operator, Params, Rain, Snow

__all__ = ["RandomHaze", "RandomLowLight", "RandomRain", "RandomSnow", "RandomTier"]


def _global_generator() -> torch.Generator:
    """A generator seeded from torch's global RNG: kornia draws from the global RNG, so
    ``torch.manual_seed`` makes these augmentations reproducible like kornia's own."""
    return torch.Generator().manual_seed(int(torch.randint(0, 2**62, ())))


def _repeat_first(params: Params, batch: int) -> Params:
    """``same_on_batch``: the first sample's parameters for every sample."""
    return {key: value[:1].expand(batch, *value.shape[1:]).clone() for key, value in params.items()}


def _unit_range(x: Tensor) -> Tensor:
    """The input clamped to [0, 1], copied only if something lies outside."""
    low, high = torch.aminmax(x.detach())
    return x if float(low) >= 0.0 and float(high) <= 1.0 else x.clamp(0.0, 1.0)


class _Weather(IntensityAugmentationBase2D):
    """Shared machinery: masks after each call, zeroed where ``p`` skipped a sample."""

    def __init__(self, p: float, same_on_batch: bool, keepdim: bool) -> None:
        super().__init__(p=p, same_on_batch=same_on_batch, keepdim=keepdim)
        self._masks: Tensor | None = None
        self._channel: int | None = None  # set when only one degradation's mask is kept
        self._applied_to: Tensor | None = None

    @property
    def masks(self) -> Tensor | None:
        """``(B, 4, H, W)`` masks (low, haze, rain, snow) of the last call, or ``None``."""
        if self._masks is None:
            return None
        masks = self._masks
        if self._channel is not None:  # built on first access: most callers never look
            full = masks.new_zeros(masks.shape[0], len(DEGRADATIONS), *masks.shape[-2:])
            full[:, self._channel] = masks[:, 0]
            masks = full
        if self._applied_to is not None:
            masks = masks * self._applied_to.to(device=masks.device, dtype=masks.dtype).view(
                -1, 1, 1, 1
            )
        return masks

    def _keep_masks(self, masks: Tensor, params: dict[str, Tensor], channel: int | None) -> None:
        applied = params.get("batch_prob")
        self._applied_to = None if applied is None or bool((applied > 0.5).all()) else applied > 0.5
        self._masks, self._channel = masks, channel


class _OperatorAugmentation(_Weather):
    """One operator as a kornia augmentation; its ranges are the operator's fields."""

    operator_class: ClassVar[type[Operator]]

    def __init__(
        self, p: float = 0.5, same_on_batch: bool = False, keepdim: bool = False, **ranges: Any
    ) -> None:
        super().__init__(p=p, same_on_batch=same_on_batch, keepdim=keepdim)
        self.operator = self.operator_class(**ranges)
        self.flags = {name: getattr(self.operator, name) for name in self._range_names()}
        self._depth: Tensor | None = None

    def _range_names(self) -> list[str]:
        return [field.name for field in dataclasses.fields(self.operator)]

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, Tensor]:
        batch = batch_shape[0]
        drawn = self.operator.sample(1 if self.same_on_batch else batch, _global_generator())
        return _repeat_first(drawn, batch) if self.same_on_batch else drawn

    def apply_transform(
        self,
        input: Tensor,
        params: dict[str, Tensor],
        flags: dict[str, Any],
        transform: Tensor | None = None,
    ) -> Tensor:
        values = {key: params[key].to(input.device) for key in self.operator.param_names}
        context = {"depth": self._depth} if isinstance(self.operator, Haze) else {}
        result = self.operator.apply(_unit_range(input), values, **context)
        self._keep_masks(result.mask, params, DEGRADATIONS.index(self.operator.name))
        return result.image


class RandomLowLight(_OperatorAugmentation):
    """Low light (ranges as ``skyclear.degrade.LowLight``)."""

    operator_class = LowLight


class RandomHaze(_OperatorAugmentation):
    """Haze (ranges as ``skyclear.degrade.Haze``); ``aug(x, depth=d)`` passes depth in metres."""

    operator_class = Haze

    def forward(
        self, input: Tensor, *args: Any, depth: Tensor | None = None, **kwargs: Any
    ) -> Tensor:
        self._depth = depth
        try:
            return super().forward(input, *args, **kwargs)
        finally:
            self._depth = None


class RandomRain(_OperatorAugmentation):
    """Rain (ranges as ``skyclear.degrade.Rain``)."""

    operator_class = Rain


class RandomSnow(_OperatorAugmentation):
    """Snow (ranges as ``skyclear.degrade.Snow``)."""

    operator_class = Snow


class RandomTier(_Weather):
    """One CDD-11 tier per sample, drawn with ``weights``, with its masks.

    Parameters hold every degradation's values for every sample plus the tier index, so
    ``params=`` replays a call exactly; samples are grouped by tier (a loop over at most 11
    tiers, never over the batch).

    Args:
        composite: the operators and order (default ``Composite()``).
        tiers: the tiers to choose from (default all 11).
        weights: relative probability of each tier (default uniform).
    """

    def __init__(
        self,
        composite: Composite | None = None,
        tiers: tuple[str, ...] = TIERS,
        weights: tuple[float, ...] | None = None,
        p: float = 1.0,
        same_on_batch: bool = False,
        keepdim: bool = False,
    ) -> None:
        super().__init__(p=p, same_on_batch=same_on_batch, keepdim=keepdim)
        self.composite = composite or Composite()
        if self.composite.order not in ORDERS:
            raise ValueError(f"unknown order {self.composite.order!r}")
        self.tiers = tuple(tiers)
        if not self.tiers or any(tier not in TIERS for tier in self.tiers):
            raise ValueError(f"tiers must be a non-empty subset of {TIERS}, got {tiers}")
        if weights is None:
            weights = tuple(1.0 for _ in self.tiers)
        if len(weights) != len(self.tiers) or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(
                f"weights must be {len(self.tiers)} non-negative numbers, got {weights}"
            )
        self.weights = torch.tensor(weights, dtype=torch.float64)

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, Tensor]:
        batch = batch_shape[0]
        draws = 1 if self.same_on_batch else batch
        generator = _global_generator()
        tier = torch.multinomial(self.weights, draws, replacement=True, generator=generator)
        params: dict[str, Tensor] = {"tier": tier}
        for name in DEGRADATIONS:
            for key, value in self.composite.operator(name).sample(draws, generator).items():
                params[f"{name}.{key}"] = value
        return _repeat_first(params, batch) if self.same_on_batch else params

    def apply_transform(
        self,
        input: Tensor,
        params: dict[str, Tensor],
        flags: dict[str, Any],
        transform: Tensor | None = None,
    ) -> Tensor:
        x = _unit_range(input)
        output = x.clone()
        masks = x.new_zeros(x.shape[0], len(DEGRADATIONS), *x.shape[-2:])
        tier_of = params["tier"].to(x.device)
        for index, tier in enumerate(self.tiers):
            rows = (tier_of == index).nonzero().flatten()
            if rows.numel() == 0:
                continue
            tier_params = {
                name: {
                    key: params[f"{name}.{key}"].to(x.device)[rows]
                    for key in self.composite.operator(name).param_names
                }
                for name in parse_tier(tier)
            }
            result = self.composite.apply(x[rows], tier, tier_params)
            output = output.index_copy(0, rows, result.image)
            masks = masks.index_copy(0, rows, result.masks)
        self._keep_masks(masks, params, None)
        return output
