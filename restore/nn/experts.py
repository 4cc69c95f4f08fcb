"""The four degradation experts and the gate that allocates them.

An expert is a convolutional branch of its own: on the backbone's full-resolution features
a 1x1 reduction, a dilated 3x3 convolution (dilation 1 to 4 by expert: low light, haze,
rain, snow), layer norm with a time-conditioned scale and shift, GELU, a 3x3 convolution,
channel attention and a 1x1 projection to the three colour channels, initialised at zero so
that a fresh expert adds nothing. Beside it a context branch works on the backbone's
bottleneck (a sixteenth of the resolution in ``paper``): there, where a pixel costs
``4 ** levels`` times less, the expert holds most of its parameters, so the four of them
are a real share of the network (about 7 % in ``paper``) while one-step inference costs
little more than the backbone.

The gate (F2D-Net's "softmax weighted allocation across the active experts
conditioned jointly on the transport time and the degradation profile") reads the time
embedding and the profile: the parser's global weights ``w`` and its maps' means.

* ``softmax``: ``alpha = max_j w_j * softmax(g(t, profile) + log w)``: the experts of the
  degradations present share one budget, the strongest presence, and the time decides
  which of them acts when;
* ``sigmoid``: ``alpha_i = w_i * sigmoid(g_i(t, profile))``: each expert on its own,
  unnormalised (their sum lies anywhere in [0, 4]).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .blocks import LayerNorm2d
from .statistics import ImageStatistics, spatial_mean

__all__ = ["EXPERTS", "Expert", "Gate"]

EXPERTS = 4  # low, haze, rain, snow
_FLOOR = 1e-6  # presence below which an expert is out of the softmax's reach


class Expert(nn.Module):
    """One degradation's increment ``Δf_i`` (see the module docstring).

    Args:
        width: channels of the backbone's full-resolution features.
        bottleneck: channels of its bottleneck features.
        hidden: channels of the full-resolution branch.
        context: channels of the context branch (0: none).
        time_dim: size of the time embedding.
        dilation: of the branch's first 3x3 convolution (and of the context's).
    """

    def __init__(
        self, width: int, bottleneck: int, hidden: int, context: int, time_dim: int, dilation: int
    ) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(width, hidden, 1)
        self.dilated = nn.Conv2d(hidden, hidden, 3, padding=dilation, dilation=dilation)
        self.norm = LayerNorm2d(hidden)
        self.film = nn.Linear(time_dim, hidden * 2)
        self.context = (
            nn.Sequential(
                nn.Conv2d(bottleneck, context, 1),
                nn.GELU(),
                nn.Conv2d(context, context, 3, padding=dilation, dilation=dilation),
                nn.GELU(),
                nn.Conv2d(context, hidden, 1),
            )
            if context
            else None
        )
        self.refine = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.attention = nn.Conv2d(hidden, hidden, 1)
        self.out = nn.Conv2d(hidden, 3, 1)
        for parameter in self.out.parameters():
            nn.init.zeros_(parameter)

    def forward(
        self,
        features: Tensor,
        deep: Tensor,
        time: Tensor,
        statistics: ImageStatistics | None = None,
    ) -> Tensor:
        """``(B, 3, H, W)`` from full-resolution ``features``, bottleneck ``deep`` and the
        time embedding."""
        hidden = self.norm(self.dilated(self.reduce(features)))
        scale, shift = self.film(time).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
        hidden = nn.functional.gelu(hidden * (1 + scale) + shift)
        if self.context is not None:
            hidden = hidden + nn.functional.interpolate(
                self.context(deep), size=hidden.shape[-2:], mode="bilinear", align_corners=False
            )
        hidden = self.refine(hidden)
        hidden = hidden * torch.sigmoid(self.attention(spatial_mean(hidden, statistics)))
        return self.out(hidden)


class Gate(nn.Module):
    """``alpha(t, w, coverage)``: how strongly each expert acts (see the module docstring).

    Args:
        kind: ``softmax`` or ``sigmoid``.
        time_dim: size of the time embedding.
    """

    def __init__(self, kind: str, time_dim: int) -> None:
        super().__init__()
        if kind not in ("softmax", "sigmoid"):
            raise ValueError(f"gate must be softmax or sigmoid, got {kind!r}")
        self.kind = kind
        self.mlp = nn.Sequential(
            nn.Linear(time_dim + 2 * EXPERTS, time_dim),
            nn.SiLU(),
            nn.Linear(time_dim, EXPERTS),
        )

    def forward(self, time: Tensor, weights: Tensor, coverage: Tensor) -> Tensor:
        """``(B, 4)`` gate from the ``(B, time_dim)`` time embedding, the ``(B, 4)`` global
        weights and the ``(B, 4)`` means of the maps."""
        profile = torch.cat([weights, coverage], 1).to(time.dtype)
        logits = self.mlp(torch.cat([time, profile], 1)).float()
        weights = weights.float()
        if self.kind == "sigmoid":
            return weights * torch.sigmoid(logits)
        share = torch.softmax(logits + weights.clamp_min(_FLOOR).log(), dim=1)
        return weights.amax(dim=1, keepdim=True) * share
