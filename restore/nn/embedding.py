"""DA-RCOT's residual embeddings: the first pass's transport residual ``y - T(y)`` encoded
at every scale of the backbone, to condition the second pass.

The paper's module (REGM) is built of gated transformer blocks; this one of residual
convolution blocks, small beside the backbone, with the same interface: one condition per
backbone scale, added to that scale's input through a zero-initialised 1x1 convolution
(the second pass starts equal to the first), and a dense embedding (the deepest
features, averaged over the image) for the contrastive term.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["ResidualEmbedder"]


class _Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResidualEmbedder(nn.Module):
    """Residual ``(B, 3, H, W)`` to conditions ``[(B, widths[k], H / 2^k, W / 2^k)]`` and a
    dense embedding ``(B, hidden * 2^(len(widths) - 1))``.

    Args:
        widths: the backbone's channels at each scale, finest first.
        hidden: the module's own channels at the finest scale (doubled at each level).
    """

    def __init__(self, widths: list[int], hidden: int) -> None:
        super().__init__()
        self.intro = nn.Conv2d(3, hidden, 3, padding=1)
        self.blocks = nn.ModuleList()
        self.heads = nn.ModuleList()
        self.downs = nn.ModuleList()
        channels = hidden
        for level, width in enumerate(widths):
            self.blocks.append(_Block(channels))
            head = nn.Conv2d(channels, width, 1)
            nn.init.zeros_(head.weight)
            assert head.bias is not None
            nn.init.zeros_(head.bias)
            self.heads.append(head)
            if level < len(widths) - 1:
                self.downs.append(nn.Conv2d(channels, channels * 2, 2, stride=2))
                channels *= 2
        self.dense_channels = channels

    def forward(self, residual: Tensor) -> tuple[list[Tensor], Tensor]:
        x = self.intro(residual)
        conditions = []
        for level, (block, head) in enumerate(zip(self.blocks, self.heads, strict=True)):
            x = block(x)
            conditions.append(head(x))
            if level < len(self.downs):
                x = self.downs[level](x)
        return conditions, x.mean(dim=(-2, -1))
