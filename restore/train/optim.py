"""The learning-rate schedule and the moving average of the weights."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..config import OptimConfig

__all__ = ["EMA", "learning_rate"]


def learning_rate(step: int, total: int, optim: OptimConfig) -> float:
    """Linear warm-up to ``optim.lr`` over ``warmup_steps``, then cosine decay to
    ``optim.min_lr`` at ``total`` steps. A pure function of the step, so resuming needs
    no scheduler state beyond the step itself."""
    if step < optim.warmup_steps:
        return optim.lr * (step + 1) / optim.warmup_steps
    span = max(total - optim.warmup_steps, 1)
    progress = min((step - optim.warmup_steps) / span, 1.0)
    return optim.min_lr + 0.5 * (optim.lr - optim.min_lr) * (1.0 + math.cos(math.pi * progress))


class EMA:
    """Exponential moving average of a module's parameters and buffers.

    The decay is warmed up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so
    early averages are not dominated by the random initial weights.
    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.shadow = {name: value.detach().clone() for name, value in module.state_dict().items()}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, value in module.state_dict().items():
            shadow = self.shadow[name]
            if shadow.is_floating_point():
                shadow.lerp_(value.detach(), 1.0 - decay)
            else:
                shadow.copy_(value)

    def state_dict(self) -> dict[str, object]:
        return {"updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict[str, object]) -> None:
        shadow = state["shadow"]
        if not isinstance(shadow, dict) or set(shadow) != set(self.shadow):
            raise ValueError("the EMA state does not match the model")
        for name, value in shadow.items():
            self.shadow[name].copy_(value)
        self.updates = int(state["updates"])  # type: ignore[call-overload]
