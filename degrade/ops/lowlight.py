"""``LowLight``: the operator class over ``functional.lowlight``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..functional.lowlight import low_light
from .base import Operator, Params, Range, _Draws

__all__ = ["LowLight"]

# Brooks et al. (2019): log(read) = 2.18 log(shot) + 1.20 + N(0, 0.26^2).
_READ_SLOPE = 2.18
_READ_INTERCEPT = 1.20
_READ_SCATTER = 0.26


@dataclass(frozen=True)
class LowLight(Operator):
    """Low light: darker illumination, then Poisson-Gaussian sensor noise and quantisation.

    Args:
        exposure: mean linear gain of the illumination (1 = unchanged).
        spread: standard deviation of the log illumination field (0 = uniform light).
        shot: shot-noise gain, variance per unit linear signal (drawn log-uniformly).
        read: bounds of the read-noise variance; the value is drawn from Brooks et al.'s
            fit to ``shot`` and clipped into these bounds (``(v, v)`` fixes it).
        bits: ADC bit depth, an integer range; 0 turns quantisation off.

    Example:
        >>> op = LowLight(exposure=(0.1, 0.1), shot=(0, 0), read=(0, 0))
        >>> result = op(torch.rand(2, 3, 64, 64), generator=torch.Generator().manual_seed(0))
        >>> result.image.shape, result.mask.shape
        (torch.Size([2, 3, 64, 64]), torch.Size([2, 1, 64, 64]))
    """

    exposure: Range = (0.03, 0.25)
    spread: Range = (0.0, 0.6)
    shot: Range = (1e-4, 1.2e-2)
    read: Range = (0.0, 1e-3)
    bits: Range = (10, 12)

    name: ClassVar[str] = "low"
    param_names: ClassVar[tuple[str, ...]] = ("exposure", "spread", "shot", "read", "bits", "seed")
    _BOUNDS: ClassVar[dict[str, tuple[float, float]]] = {
        "exposure": (1e-4, 1.0),
        "spread": (0.0, 3.0),
        "shot": (0.0, 1.0),
        "read": (0.0, 1.0),
        "bits": (0, 16),
    }
    _INTEGER: ClassVar[frozenset[str]] = frozenset({"bits"})

    def _draw(self, draw: _Draws) -> Params:
        shot = draw.log_uniform(self.shot)
        scatter = draw.normal()
        log_read = _READ_SLOPE * torch.log(shot.clamp_min(1e-30)) + _READ_INTERCEPT
        read = torch.exp(log_read + _READ_SCATTER * scatter).clamp(*self.read)
        return {
            "exposure": draw.log_uniform(self.exposure),
            "spread": draw.uniform(self.spread),
            "shot": shot,
            "read": read,
            "bits": draw.integer(self.bits),
        }

    def apply_linear(self, x: Tensor, params: Params, **context: Any) -> tuple[Tensor, Tensor]:
        _no_context(self, context)
        return low_light(
            x,
            params["exposure"],
            params["spread"],
            params["shot"],
            params["read"],
            params["bits"],
            params["seed"],
        )


def _no_context(op: Operator, context: dict[str, Any]) -> None:
    if context:
        raise TypeError(f"{type(op).__name__} takes no context, got {sorted(context)}")
