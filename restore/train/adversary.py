"""The critic of an adversarially trained method (DA-RCOT) and the map's terms against it.

The critic (``nn.critic.Critic``) has its own optimiser, RMSprop, at ``critic_lr_ratio``
times the map's scheduled learning rate, and steps before the map in every training step
on ``F(T(y)) - F(x) + penalty_weight * GP`` (restorations ``T(y)`` detached). The map's
loss reads the critic with its parameters frozen, so ``-F(T(y))`` moves the map and never
the critic. Several processes average the critic's gradients themselves (one forward per
step, no ``DistributedDataParallel`` wrapper around a double backward).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from ..nn.critic import Critic
from ..transport.methods import DARCOT
from ..transport.ot import (
    contrastive,
    fourier_residual,
    gradient_penalty,
    interpolate,
    residual_rms,
)

__all__ = ["Adversary"]


class Adversary:
    """The critic, its optimiser, and the two players' terms.

    Args:
        method: the adversarial method and its weights.
        device: where the critic lives.
    """

    def __init__(self, method: DARCOT, device: torch.device) -> None:
        self.method = method
        self.critic = Critic().to(device)
        self.optimizer = torch.optim.RMSprop(self.critic.parameters(), lr=1e-4)

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.critic.parameters())

    def critic_loss(
        self, real: Tensor, fake: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, dict[str, Tensor], bool]:
        """The critic's loss between clean images ``real`` and restorations ``fake``
        (detached), its parts, and whether it has diverged (a loss that is not finite, or
        potentials beyond ``critic_limit``: then it must not be stepped on)."""
        method, batch = self.method, real.shape[0]
        mix = torch.rand(batch, generator=generator, device=real.device)
        real, fake = real.float(), fake.detach().float()
        between = interpolate(real, fake, mix)
        values = self.critic(torch.cat([real, fake, between]))  # one forward for all three
        on_real, on_fake, on_between = values.split(batch)
        penalty = gradient_penalty(on_between, between)
        loss = on_fake.mean() - on_real.mean() + method.penalty_weight * penalty
        size = values.detach().abs().max()
        terms = {
            "critic": loss.detach(),
            "wasserstein": (on_real.mean() - on_fake.mean()).detach(),
            "penalty": penalty.detach(),
            "potential": size,
        }
        diverged = not bool(torch.isfinite(loss)) or float(size) > method.critic_limit
        return loss, terms, diverged

    def critic_update(self, loss: Tensor, lr: float) -> None:
        """Step the critic on ``loss`` at ``critic_lr_ratio`` times the map's ``lr``."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr * self.method.critic_lr_ratio
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if dist.is_available() and dist.is_initialized():
            world = dist.get_world_size()
            for parameter in self.critic.parameters():
                if parameter.grad is not None:
                    dist.all_reduce(parameter.grad)
                    parameter.grad.div_(world)
        self.optimizer.step()

    def potential(self, images: Tensor) -> Tensor:
        """``F(images)`` with the critic's parameters frozen: a gradient reaches the images
        (and what made them), never the critic."""
        parameters = list(self.critic.parameters())
        for parameter in parameters:
            parameter.requires_grad_(False)
        try:
            return self.critic(images.float())
        finally:
            for parameter in parameters:
                parameter.requires_grad_(True)

    def map_terms(
        self,
        degraded: Tensor,
        restored: Tensor,
        clean: Tensor | None,
        embedding: Tensor | None,
        labels: Tensor | None,
    ) -> dict[str, Tensor]:
        """The map's loss (``"transport"``) and its parts: ``-F(T(y))``, the residual's RMS
        and Fourier L1, the contrastive term on ``embedding`` grouped by ``labels`` (tiers;
        negative labels, unknown, are left out), and with ``clean`` (pairs) the L1 to it."""
        method = self.method
        residual = degraded.float() - restored.float()
        terms = {
            "adversarial": -self.potential(restored).mean(),
            "rms": residual_rms(residual),
            "fourier": fourier_residual(residual),
        }
        zero = terms["rms"].new_zeros(())
        terms["contrastive"] = zero
        if embedding is not None and labels is not None:
            known = labels >= 0
            if int(known.sum()) > 1:
                terms["contrastive"] = contrastive(
                    embedding[known], labels[known], method.temperature
                )
        terms["paired"] = zero if clean is None else (restored.float() - clean.float()).abs().mean()
        regulariser = (
            terms["rms"] + terms["fourier"] + method.contrastive_weight * terms["contrastive"]
        )
        terms["transport"] = (
            terms["adversarial"]
            + method.sigma * regulariser
            + (0.0 if clean is None else method.paired_weight) * terms["paired"]
        )
        return terms

    def state_dict(self) -> dict[str, Any]:
        return {"critic": self.critic.state_dict(), "critic_optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.critic.load_state_dict(state["critic"])
        self.optimizer.load_state_dict(state["critic_optimizer"])
