"""A trained restorer: loaded from a checkpoint, applied in one step, whole or in tiles."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from .checkpoint import CheckpointError, load_checkpoint, train_config_of
from .config import TrainConfig
from .nn import Aux, F2DNet
from .runtime import autocast, resolve_device, use_bf16, use_channels_last
from .transport import Transport

__all__ = ["Restorer"]


@dataclass
class Restorer:
    """A network, its transport and how to run it.

    Example:
        >>> restorer = Restorer.from_checkpoint("runs/demo/best.pt")
        >>> restored, aux = restorer(degraded)          # (B, 3, H, W) in [0, 1]
        >>> big, aux = restorer.tiled(photo, tile=512)  # any size, bounded memory
    """

    model: F2DNet
    transport: Transport
    config: TrainConfig
    device: torch.device
    bf16: bool = False
    channels_last: bool = False

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str = "auto", weights: str = "ema"
    ) -> Restorer:
        """Load ``weights`` (``ema`` or ``model``) of a checkpoint, read without pickle."""
        if weights not in ("ema", "model"):
            raise ValueError(f"weights must be 'ema' or 'model', got {weights!r}")
        payload = load_checkpoint(path)
        config = train_config_of(payload, path)
        model = F2DNet(config.model)
        try:
            model.load_state_dict(payload[weights])
        except (RuntimeError, TypeError) as error:
            raise CheckpointError(f"{path}: its weights do not fit its config ({error})") from error
        resolved = resolve_device(device)
        restorer = cls(
            model=model,
            transport=Transport(config.transport.schedule()),
            config=config,
            device=resolved,
            bf16=use_bf16(resolved, config.amp),
            channels_last=use_channels_last(resolved, config.channels_last),
        )
        restorer.model.eval().to(resolved)
        if restorer.channels_last:
            restorer.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        return restorer

    @torch.no_grad()
    def __call__(
        self, degraded: Tensor, steps: int = 1, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Aux]:
        """Restore ``(B, 3, H, W)`` images in ``steps`` network evaluations (1: one step at
        ``t = 0``). Returns the restored images in [0, 1] and the routing (parser maps,
        weights and gates) of the first evaluation, float32 and on the input's device."""
        if degraded.ndim != 4 or degraded.shape[1] != 3:
            raise ValueError(f"degraded must be (B, 3, H, W), got {tuple(degraded.shape)}")
        if not degraded.is_floating_point():
            raise TypeError(
                f"degraded must be floating point in [0, 1], got {degraded.dtype} "
                "(scale uint8 codes with skyclear.datasets.as_float)"
            )
        x0 = degraded.to(self.device, torch.float32)
        if self.channels_last:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        first: list[Aux] = []

        def predict(x_t: Tensor, t: Tensor) -> Tensor:
            with autocast(self.device, self.bf16):
                residual, aux = self.model(x_t, t, x0, return_aux=True)
            if not first:
                first.append(aux)
            return residual.float()

        restored = self.transport.sample(predict, x0, steps, generator)
        aux = first[0]
        maps, weights, alpha = (
            value.float().to(degraded.device) for value in (aux.maps, aux.weights, aux.alpha)
        )
        return restored.clamp(0.0, 1.0).to(degraded.device), Aux(maps, weights, alpha)

    @torch.no_grad()
    def tiled(
        self,
        degraded: Tensor,
        tile: int,
        overlap: int | None = None,
        steps: int = 1,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Aux]:
        """Restore ``(1, 3, H, W)`` tile by tile, so memory is bounded by the tile.

        Tiles of ``tile`` x ``tile`` pixels share at least ``overlap`` pixels (default
        ``tile // 8``) with their neighbours and start on the network's grid of strided
        convolutions (multiples of ``2 ** levels``; the last tile of a row or column may be
        a little shorter). Across a shared band one tile's weight ramps down as the next
        one's ramps up, and the weights are normalised: a network that changed nothing
        would give back the input. Maps are blended like the image; weights and gates are
        averaged over the tiles. Each tile is restored on its own, so the parser's global
        weights (and any statistic the network pools over its whole input) are the tile's,
        not the photo's."""
        if degraded.ndim != 4 or degraded.shape[0] != 1:
            raise ValueError(
                f"tiled restoration takes one image (1, 3, H, W), got {tuple(degraded.shape)}"
            )
        height, width = degraded.shape[-2:]
        if tile >= max(height, width):
            return self(degraded, steps, generator)
        if tile < 2 * self.config.model.multiple:
            raise ValueError(f"tile must be >= {2 * self.config.model.multiple}, got {tile}")
        overlap = tile // 8 if overlap is None else overlap
        if not 0 <= overlap < tile // 2:
            raise ValueError(f"overlap must lie in [0, tile / 2), got {overlap}")
        multiple = self.config.model.multiple
        rows, cols = (_starts(side, tile, overlap, multiple) for side in (height, width))
        # A side shared with another tile ramps; the image's own edges keep weight 1.
        vertical = {
            top: _ramp(min(tile, height - top), overlap, top > 0, top < rows[-1]) for top in rows
        }
        horizontal = {
            left: _ramp(min(tile, width - left), overlap, left > 0, left < cols[-1])
            for left in cols
        }
        image = degraded.new_zeros(1, 3, height, width, dtype=torch.float32)
        maps = degraded.new_zeros(1, 4, height, width, dtype=torch.float32)
        total = degraded.new_zeros(1, 1, height, width, dtype=torch.float32)
        weights, alphas = [], []
        for top in rows:
            for left in cols:
                region = (..., slice(top, top + tile), slice(left, left + tile))
                window = (vertical[top].view(-1, 1) * horizontal[left].view(1, -1)).to(image)
                restored, aux = self(degraded[region], steps, generator)
                image[region] += restored * window
                maps[region] += aux.maps * window
                total[region] += window
                weights.append(aux.weights)
                alphas.append(aux.alpha)
        mean = lambda items: torch.stack(items).mean(0)  # noqa: E731
        return image / total, Aux(maps / total, mean(weights), mean(alphas))


def _starts(length: int, tile: int, overlap: int, multiple: int = 1) -> list[int]:
    """Offsets of tiles covering ``length``, each a multiple of ``multiple``.

    Tiles step by ``tile - overlap`` rounded down to a multiple of ``multiple``, so
    neighbours share at least ``overlap`` pixels. Aligned starts keep every tile on the
    whole image's grid of strided convolutions (``multiple`` is ``2 ** levels``), so a
    tile sees its pixels as whole-image inference does; the last tile starts on that grid
    too and reaches the end, shorter than ``tile`` by less than ``multiple``.
    """
    if tile >= length:
        return [0]
    stride = max(multiple, (tile - overlap) // multiple * multiple)
    starts = list(range(0, length - tile, stride))
    last = -(-(length - tile) // multiple) * multiple  # length - tile, rounded up
    return [*starts, last]


def _ramp(length: int, overlap: int, rises: bool, falls: bool) -> Tensor:
    """Weights along one side of a tile: rising over its first ``overlap`` pixels when a
    tile lies before it, falling over its last when one lies after, 1 elsewhere."""
    weight = torch.ones(length)
    if overlap:
        edge = (torch.arange(overlap) + 0.5) / overlap
        if rises:
            weight[:overlap] = edge
        if falls:
            weight[length - overlap :] = edge.flip(0)
    return weight
