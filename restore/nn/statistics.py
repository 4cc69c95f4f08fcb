"""Image-level statistics of a forward pass, recorded once and replayed into others.

The network pools over its whole input in a few places: each NAF block's channel
attention averages its features over the image, the parser normalises the image by its
mean and spread and its global weights ``w`` come from such an average, and the gate
reads the mean of each map. Restored in tiles, each tile would pool over itself alone, so
a hazy sky tile and a dark street tile would be told different things about the same
photo, and the result would show blocks of different tone. ``ImageStatistics`` lets one
pass over the whole photo (or a downscaled copy of it) record every pooled mean, in the
order the network takes them, and every tile's pass replay them: each tile then sees the
photo's statistics, not its own.

Example:
    >>> statistics = ImageStatistics()
    >>> model(small_x_t, t, small_degraded, statistics=statistics)   # records
    >>> for region in tiles:
    ...     model(x_t[region], t, degraded[region], statistics=statistics.replay())
"""

from __future__ import annotations

from torch import Tensor

__all__ = ["ImageStatistics", "spatial_mean"]


class ImageStatistics:
    """The spatial means one forward pass takes, recorded, or replayed in the same order.

    A fresh object records; ``replay()`` gives an object that hands the recorded means back
    one by one. Replaying into a network of another shape raises ``ValueError``.
    """

    def __init__(self, means: list[Tensor] | None = None) -> None:
        self.means: list[Tensor] = [] if means is None else means
        self._replaying = means is not None
        self._next = 0

    def replay(self) -> ImageStatistics:
        """A new object that replays these means from the first one."""
        if self._replaying:
            raise ValueError("replay() takes a recording, not a replay")
        return ImageStatistics(self.means)

    def mean(self, features: Tensor) -> Tensor:
        """The ``(B, C, 1, 1)`` spatial mean of ``features`` ``(B, C, H, W)``: computed and
        recorded, or the recorded one (broadcast over the batch, in ``features``' dtype)."""
        if not self._replaying:
            value = features.mean(dim=(-2, -1), keepdim=True)
            self.means.append(value.detach())
            return value
        if self._next >= len(self.means):
            raise ValueError(
                f"the network takes more than the {len(self.means)} recorded means: "
                "statistics recorded by another network"
            )
        value = self.means[self._next]
        self._next += 1
        if value.shape[1] != features.shape[1] or value.shape[0] not in (1, features.shape[0]):
            raise ValueError(
                f"recorded mean {self._next - 1} has shape {tuple(value.shape)}, the features "
                f"{tuple(features.shape)}: statistics recorded by another network or batch"
            )
        return value.to(features.dtype)


def spatial_mean(features: Tensor, statistics: ImageStatistics | None) -> Tensor:
    """``features``' own ``(B, C, 1, 1)`` spatial mean, or the one ``statistics`` gives."""
    if statistics is None:
        return features.mean(dim=(-2, -1), keepdim=True)
    return statistics.mean(features)
