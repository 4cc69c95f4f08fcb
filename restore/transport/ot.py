"""The terms of DA-RCOT's adversarial optimal transport (pure: a critic is passed in).

The map ``T`` restores a degraded image ``y``; the potential (critic) ``F`` is trained as a
WGAN-GP critic between clean images and restorations, and the map is trained on
``-F(T(y))`` plus the transport cost: the residual ``y - T(y)`` is penalised by its root
mean square and by the L1 norm of its Fourier transform (the residuals of haze, rain, snow
and low light are sparse in frequency), a contrastive term on the residual embeddings
groups images of one kind of degradation, and with pairs the L1 distance to the clean
image is added.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["contrastive", "fourier_residual", "gradient_penalty", "interpolate", "residual_rms"]


def interpolate(real: Tensor, fake: Tensor, mix: Tensor) -> Tensor:
    """``m real + (1 - m) fake``, ``m`` one weight per sample ``(B,)``, detached from both
    and requiring a gradient (the points of the gradient penalty)."""
    weight = mix.to(real.dtype).view(-1, *([1] * (real.ndim - 1)))
    return (weight * real.detach() + (1.0 - weight) * fake.detach()).requires_grad_(True)


def gradient_penalty(values: Tensor, points: Tensor) -> Tensor:
    """WGAN-GP's ``mean((|grad F(x_hat)|_2 - 1)^2)``: ``values`` ``(B,)`` the critic at
    ``points`` (from ``interpolate``), the norm per sample; differentiable in the critic's
    parameters (the gradient is built with ``create_graph``)."""
    (gradient,) = torch.autograd.grad(values.sum(), points, create_graph=True)
    return (gradient.flatten(1).norm(dim=1) - 1.0).square().mean()


def residual_rms(residual: Tensor) -> Tensor:
    """The root mean square of the residuals, over the whole batch."""
    return residual.float().square().mean().sqrt()


def fourier_residual(residual: Tensor) -> Tensor:
    """The mean modulus of the residual's 2-D Fourier transform per channel, with the
    orthonormal scaling (Parseval: the transform keeps the residual's energy, so the term
    does not grow with the crop's side)."""
    return torch.fft.fft2(residual.float(), norm="ortho").abs().mean()


def contrastive(embeddings: Tensor, labels: Tensor, temperature: float) -> Tensor:
    """The supervised contrastive loss of ``(B, D)`` embeddings: for each anchor with
    another sample of its label, the mean over those positives of ``-log`` of the softmax
    of cosine similarities over temperature, taken over every other sample; the mean over
    such anchors (0 when none has a positive)."""
    z = F.normalize(embeddings.float(), dim=1)
    logits = z @ z.T / temperature
    self_pairs = torch.eye(len(z), dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_pairs, -torch.inf)
    log_softmax = logits.log_softmax(dim=1)
    positive = (labels.view(-1, 1) == labels.view(1, -1)) & ~self_pairs
    count = positive.sum(dim=1)
    anchors = count > 0
    if not bool(anchors.any()):
        return embeddings.new_zeros((), dtype=torch.float32)
    per_anchor = -log_softmax.masked_fill(~positive, 0.0).sum(dim=1) / count.clamp_min(1)
    return per_anchor[anchors].mean()
