"""Training losses: the transport's residual MSE plus the supervision of the routing.

* Residual: MSE between the network's output and ``x_t - mu``, in pixel space.
* Maps: binary cross-entropy between the parser's maps ``m_i`` and the store's masks.
  The maps are sigmoid probabilities and the masks intensities in [0, 1]; BCE with soft
  targets is the proper scoring rule for that pair, its minimum sits exactly at the
  target intensity, and, unlike L1, its gradient does not vanish in proportion as a map
  saturates at the wrong end. Samples without masks (the original CDD-11 release) are
  left out of this term.
* Overlap: one minus the soft Dice overlap of each map with its mask, per sample and
  degradation, ``1 - (2 sum(m g) + s) / (sum(m) + sum(g) + s)`` with ``s`` one pixel's
  worth. The cross-entropy is a mean over pixels, so a degradation that covers a few per
  cent of the frame (streaks, flakes) moves it little whether its map finds them or
  not; the overlap is a ratio, as large for a sparse mask as for a full one (Milletari
  et al., V-Net, 3DV 2016). Where the mask is empty it asks the map to be empty too.
* Presence: BCE between the four global weights ``w`` and the tier's presence vector.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["LossWeights", "restoration_loss", "soft_overlap"]

_EPS = 1e-6


@dataclass(frozen=True)
class LossWeights:
    """Weights of the routing terms (the residual term's is 1): ``mask_weight`` of the
    maps' cross-entropy against the masks, ``overlap_weight`` of their soft overlap with
    the masks, ``presence_weight`` of the global weights' against the tier's presence."""

    mask_weight: float = 0.1
    presence_weight: float = 0.05
    overlap_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.mask_weight < 0 or self.presence_weight < 0 or self.overlap_weight < 0:
            raise ValueError(f"loss weights must be >= 0, got {self}")


def restoration_loss(
    residual: Tensor | None = None,
    target: Tensor | None = None,
    maps: Tensor | None = None,
    weights: Tensor | None = None,
    masks: Tensor | None = None,
    presence: Tensor | None = None,
    has_masks: Tensor | None = None,
    loss_weights: LossWeights | None = None,
    transport_loss: Tensor | None = None,
    has_presence: Tensor | None = None,
) -> dict[str, Tensor]:
    """The training loss and its terms.

    Args:
        residual: the network's output ``(B, 3, H, W)`` (not needed with ``transport_loss``).
        target: ``x_t - mu`` (likewise).
        maps: the parser's maps ``(B, 4, H, W)`` (``None``: no routing terms).
        weights: the parser's global weights ``(B, 4)``.
        masks: ground-truth masks ``(B, 4, H, W)``.
        presence: ``(B, 4)`` presence of each degradation.
        has_masks: ``(B,)`` bool, whether ``masks`` is ground truth for each sample.
        loss_weights: the weights of the routing terms.
        transport_loss: the method's own loss (IR-SDE's, ResFlow's weighted one, DA-RCOT's
            against its critic), taken as the first term instead of the MSE of ``residual``
            against ``target``.
        has_presence: ``(B,)`` bool, whether ``presence`` is known for each sample (a real
            degraded photo's is not); ``None``: for all.

    Returns:
        ``{"loss", "residual", "maps", "overlap", "presence"}`` (scalar tensors).
    """
    loss_weights = loss_weights or LossWeights()
    if transport_loss is None:
        if residual is None or target is None:
            raise ValueError("give the residual and its target, or the method's own loss")
        transport_loss = F.mse_loss(residual.float(), target.float())
    terms = {"residual": transport_loss}
    zero = terms["residual"].new_zeros(())
    terms["maps"] = zero
    terms["overlap"] = zero
    terms["presence"] = zero
    if maps is not None and masks is not None:
        probabilities, targets = maps.float().clamp(_EPS, 1 - _EPS), masks.float()
        per_sample = F.binary_cross_entropy(probabilities, targets, reduction="none").mean(
            dim=(1, 2, 3)
        )
        if has_masks is None:
            has_masks = torch.ones(per_sample.shape[0], dtype=torch.bool, device=maps.device)
        kept = has_masks.to(per_sample.dtype)
        terms["maps"] = (per_sample * kept).sum() / kept.sum().clamp_min(1.0)
        overlap = soft_overlap(probabilities, targets).mean(dim=1)
        terms["overlap"] = ((1.0 - overlap) * kept).sum() / kept.sum().clamp_min(1.0)
    if weights is not None and presence is not None:
        per_sample = F.binary_cross_entropy(
            weights.float().clamp(_EPS, 1 - _EPS), presence.float(), reduction="none"
        ).mean(dim=1)
        if has_presence is None:
            terms["presence"] = per_sample.mean()
        else:
            known = has_presence.to(per_sample.dtype)
            terms["presence"] = (per_sample * known).sum() / known.sum().clamp_min(1.0)
    terms["loss"] = (
        terms["residual"]
        + loss_weights.mask_weight * terms["maps"]
        + loss_weights.overlap_weight * terms["overlap"]
        + loss_weights.presence_weight * terms["presence"]
    )
    return terms


def soft_overlap(maps: Tensor, masks: Tensor) -> Tensor:
    """The soft Dice overlap ``(2 sum(m g) + 1) / (sum(m) + sum(g) + 1)`` of each map with
    its mask, summed over pixels: ``(B, C)`` in (0, 1], 1 for a perfect map and for an
    empty map of an empty mask (the 1, one pixel's worth, decides that case)."""
    both = (maps * masks).sum(dim=(-2, -1))
    return (2.0 * both + 1.0) / (maps.sum(dim=(-2, -1)) + masks.sum(dim=(-2, -1)) + 1.0)
