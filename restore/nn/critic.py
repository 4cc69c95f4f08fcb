"""The potential (critic) of an adversarially learned transport: an image to one number.

Fully convolutional, so any crop size; no normalisation layers, because the gradient
penalty of WGAN-GP is taken per sample and a batch statistic would couple the samples.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["Critic"]


class Critic(nn.Module):
    """``(B, 3, H, W)`` images in [0, 1] to ``(B,)`` potentials.

    Args:
        width: channels of the first convolution (doubled at each of ``levels`` stride-2
            convolutions).
        levels: stride-2 convolutions; the potential is the mean of the last map.
    """

    def __init__(self, width: int = 16, levels: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1), nn.LeakyReLU(0.2)]
        channels = width
        for _ in range(levels):
            layers += [nn.Conv2d(channels, channels * 2, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            channels *= 2
        layers.append(nn.Conv2d(channels, 1, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, images: Tensor) -> Tensor:
        return self.body(images).mean(dim=(1, 2, 3))
