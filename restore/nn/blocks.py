"""NAFNet-style building blocks, conditioned on time (Chen et al., "Simple Baselines for
Image Restoration", ECCV 2022).

A block is layer norm, a 1x1 expansion, a 3x3 depthwise convolution, a simple gate (the
product of two channel halves), simplified channel attention and a 1x1 projection, then
the same with a feed-forward; both branches are added with learned residual scales that
start at zero, so a fresh network is the identity. Time enters each block as a per-channel
scale and shift of its normalised input (FiLM).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .statistics import ImageStatistics, spatial_mean

__all__ = ["LayerNorm2d", "NAFBlock", "TimeEmbedding", "pad_to_multiple"]


class LayerNorm2d(nn.Module):
    """Layer norm over the channels of each pixel."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(dim=1, keepdim=True)
        var = (x - mean).pow(2).mean(dim=1, keepdim=True)
        x = (x - mean) * torch.rsqrt(var + self.eps)
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class SimpleGate(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class TimeEmbedding(nn.Module):
    """Sinusoidal features of ``t`` in [0, 1] followed by a small MLP."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 2), nn.SiLU(), nn.Linear(dim * 2, dim))

    def forward(self, t: Tensor) -> Tensor:
        half = self.dim // 2
        frequencies = torch.exp(
            -math.log(1000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half
        )
        angles = t.float().view(-1, 1) * 1000.0 * frequencies.view(1, -1)
        features = torch.cat([angles.sin(), angles.cos()], dim=1)
        # The first layer's dtype, read as TorchScript can (it has no ``next``).
        dtype: torch.dtype = self.mlp[0].weight.dtype  # type: ignore[assignment]
        return self.mlp(features.to(dtype))


class NAFBlock(nn.Module):
    """One NAFNet block with FiLM time conditioning (``time_dim = 0``: unconditioned)."""

    def __init__(self, channels: int, time_dim: int = 0, expand: int = 2) -> None:
        super().__init__()
        hidden = channels * expand
        self.norm1 = LayerNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, hidden, 1)
        self.conv2 = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.gate = SimpleGate()
        # The pooling stays a module of ``attention`` so checkpoints keep their keys; the
        # forward pass takes the mean through ``spatial_mean`` (see ``ImageStatistics``).
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(hidden // 2, hidden // 2, 1)
        )
        self.conv3 = nn.Conv2d(hidden // 2, channels, 1)
        self.norm2 = LayerNorm2d(channels)
        self.conv4 = nn.Conv2d(channels, hidden, 1)
        self.conv5 = nn.Conv2d(hidden // 2, channels, 1)
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.film = nn.Linear(time_dim, channels * 2) if time_dim else None

    def forward(
        self, x: Tensor, time: Tensor | None = None, statistics: ImageStatistics | None = None
    ) -> Tensor:
        """``statistics``: where the channel attention's image mean comes from (its own
        input's when ``None``)."""
        y = self.norm1(x)
        if self.film is not None and time is not None:
            scale, shift = self.film(time).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
            y = y * (1 + scale) + shift
        y = self.gate(self.conv2(self.conv1(y)))
        y = self.conv3(y * self.attention[1](spatial_mean(y, statistics)))
        x = x + y * self.beta
        y = self.conv5(self.gate(self.conv4(self.norm2(x))))
        return x + y * self.gamma


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Reflect-pad ``x`` on the bottom and right to a multiple of ``multiple``; return the
    padded tensor and the original ``(H, W)`` to crop back to."""
    height, width = x.shape[-2:]
    pad_h = (multiple - height % multiple) % multiple
    pad_w = (multiple - width % multiple) % multiple
    if pad_h or pad_w:
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        x = nn.functional.pad(x, (0, pad_w, 0, pad_h), mode=mode)
    return x, (height, width)
