"""A trained restorer: loaded from a checkpoint, applied in one step, whole or in tiles."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .checkpoint import CheckpointError, load_checkpoint, train_config_of
from .config import TrainConfig, method_of
from .nn import Aux, F2DNet, ImageStatistics
from .runtime import autocast, resolve_device, use_bf16, use_channels_last
from .transport.methods import Method

__all__ = ["Restorer"]


class _FirstEvaluationDoneError(Exception):
    """Stops a sampler after its first network evaluation (``Restorer.inspect``)."""


@dataclass
class Restorer:
    """A network, its method (how it was trained to be sampled) and how to run it.

    ``context_side``: the image-level statistics of a photo (the parser's global weights,
    the channel attentions' means) are taken from the photo itself up to this many pixels
    a side, and from a copy downscaled to it beyond, whole or in tiles alike.

    Example:
        >>> restorer = Restorer.from_checkpoint("runs/demo/best.pt")
        >>> restored, aux = restorer(degraded)          # (B, 3, H, W) in [0, 1]
        >>> big, aux = restorer.tiled(photo, tile=512)  # any size, bounded memory
    """

    model: F2DNet
    method: Method
    config: TrainConfig
    device: torch.device
    bf16: bool = False
    channels_last: bool = False
    context_side: int = 512

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str = "auto", weights: str = "ema"
    ) -> Restorer:
        """Load ``weights`` (``ema`` or ``model``) of a checkpoint, read without pickle."""
        return cls.from_payload(load_checkpoint(path), path, device, weights)

    @classmethod
    def from_payload(
        cls,
        payload: dict[str, Any],
        path: str | Path = "checkpoint",
        device: str = "auto",
        weights: str = "ema",
    ) -> Restorer:
        """``from_checkpoint`` of a checkpoint already read (``load_checkpoint``) from
        ``path`` (named in errors)."""
        if weights not in ("ema", "model"):
            raise ValueError(f"weights must be 'ema' or 'model', got {weights!r}")
        config = train_config_of(payload, path)
        model = F2DNet(config.model)
        try:
            model.load_state_dict(payload[weights])
        except (RuntimeError, TypeError) as error:
            raise CheckpointError(f"{path}: its weights do not fit its config ({error})") from error
        resolved = resolve_device(device)
        restorer = cls(
            model=model,
            method=method_of(config),
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
        self,
        degraded: Tensor,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        remove: Tensor | None = None,
    ) -> tuple[Tensor, Aux]:
        """Restore ``(B, 3, H, W)`` images in ``steps`` network evaluations (``None``: the
        method's own, one step at ``t = 0`` for ``f2d``). Returns the restored images in
        [0, 1] and the routing (parser maps, weights and gates) of the first evaluation,
        float32 and on the input's device. ``remove``: ``(4,)`` or ``(B, 4)``, which of
        low, haze, rain, snow to remove (1) and keep (0), for a network trained with
        remove-sets (``removal``); ``None`` removes everything.

        Image-level statistics are the images' own up to ``context_side`` pixels a side;
        a larger image takes them from a copy downscaled to that side, as tiles do."""
        _check_images(degraded)
        x0 = self._prepare(degraded)
        removal = self.removal(remove)

        def evaluate(x_t: Tensor, t: Tensor, aux: Tensor | None) -> tuple[Tensor, Aux]:
            big = max(x0.shape[-2:]) > self.context_side
            statistics = self._statistics(x_t, t, x0, aux, removal).replay() if big else None
            return self._network(x_t, t, x0, statistics, aux, removal)

        return self._sample(evaluate, x0, degraded.device, steps, generator)

    @torch.no_grad()
    def tiled(
        self,
        degraded: Tensor,
        tile: int,
        overlap: int | None = None,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        margin: int | None = None,
        remove: Tensor | None = None,
    ) -> tuple[Tensor, Aux]:
        """Restore ``(1, 3, H, W)`` tile by tile, so memory is bounded by the tile, with
        the result of whole restoration up to a fraction of a grey level.

        The network sees windows of ``tile`` x ``tile`` pixels that start on its grid of
        strided convolutions (multiples of ``2 ** levels``). Of each window, the outer
        ``margin`` pixels (default ``tile // 8``) on a side shared with a neighbour are
        computed without their true surroundings and discarded; across the next
        ``overlap`` pixels (default ``tile // 8``) one window's weight ramps down as the
        next one's ramps up, and the weights are normalised: a network that changed
        nothing would give back the input. Every window replays the image-level statistics
        of one pass over the whole photo (downscaled to ``context_side``), so the parser's
        global weights and every channel attention are the photo's, not the tile's. With
        ``steps > 1`` the sampler's noise is drawn for the whole photo, as without tiles.
        Maps are blended like the image."""
        if degraded.ndim != 4 or degraded.shape[0] != 1:
            raise ValueError(
                f"tiled restoration takes one image (1, 3, H, W), got {tuple(degraded.shape)}"
            )
        height, width = degraded.shape[-2:]
        if tile >= max(height, width):
            return self(degraded, steps, generator, remove)
        removal = self.removal(remove)
        multiple = self.config.model.multiple
        if tile < 2 * multiple:
            raise ValueError(f"tile must be >= {2 * multiple}, got {tile}")
        overlap = tile // 8 if overlap is None else overlap
        margin = tile // 8 if margin is None else margin
        if overlap < 0 or margin < 0 or 2 * (margin + overlap) > tile - multiple:
            raise ValueError(
                f"overlap ({overlap}) plus margin ({margin}) must be at most "
                f"{(tile - multiple) // 2} for a {tile}-pixel tile"
            )
        _check_images(degraded)
        x0 = self._prepare(degraded)
        windows = _windows(height, width, tile, margin, overlap, multiple)
        total = x0.new_zeros(1, 1, height, width)
        for region, weight in windows:
            total[region] += weight
        if not bool((total > 0).all()):  # guarded by the checks above; never silently
            raise RuntimeError("tiles leave pixels uncovered")

        def evaluate(x_t: Tensor, t: Tensor, extra: Tensor | None) -> tuple[Tensor, Aux]:
            statistics = self._statistics(x_t, t, x0, extra, removal)
            residual = torch.zeros_like(x_t)
            maps = x_t.new_zeros(x_t.shape[0], 4, height, width)
            aux = None
            for region, weight in windows:
                part, aux = self._network(
                    x_t[region], t, x0[region], statistics.replay(),
                    None if extra is None else extra[region], removal,
                )  # fmt: skip
                residual[region] += part * weight
                maps[region] += aux.maps * weight
            assert aux is not None  # at least one window
            return residual / total, Aux(maps / total, aux.weights, aux.alpha, aux.spatial)

        return self._sample(evaluate, x0, degraded.device, steps, generator)

    @torch.no_grad()
    def inspect(self, degraded: Tensor) -> tuple[Aux, Tensor]:
        """One network evaluation, the first of the method's sampler (its noise, where it
        draws any, from seed 0), on ``(B, 3, H, W)`` images seen at most ``context_side``
        pixels a side (area-downscaled): the routing (``Aux``, maps at that size) and
        every image-level mean the pass takes, as ``(B, D)`` features
        (``restore.analysis``)."""
        _check_images(degraded)
        size = self._context_size(degraded)
        if size is not None:
            degraded = nn.functional.interpolate(degraded.float(), size=size, mode="area")
        x0 = self._prepare(degraded)
        seen: list[tuple[Aux, ImageStatistics]] = []

        def predict(x_t: Tensor, t: Tensor, extra: Tensor | None) -> Tensor:
            statistics = ImageStatistics()
            _, aux = self._network(x_t, t, x0, statistics, extra)
            seen.append((aux, statistics))
            raise _FirstEvaluationDoneError

        with contextlib.suppress(_FirstEvaluationDoneError):
            self.method.sample(predict, x0, None, torch.Generator().manual_seed(0))
        aux, statistics = seen[0]
        features = torch.cat([mean.float().flatten(1) for mean in statistics.means], dim=1)
        batch = x0.shape[0]
        features = features.expand(batch, -1) if features.shape[0] == 1 else features
        return _aux_on(aux, degraded.device), features.to(degraded.device)

    def check_method(self, name: str | None, path: str | Path = "checkpoint") -> None:
        """Raise ``ValueError`` naming both methods unless ``name`` (``None``: any) is the
        method this network was trained as: one method's network is never run by another's
        sampler."""
        if name is not None and name != self.config.method:
            raise ValueError(
                f"{path} was trained as {self.config.method}; it cannot be sampled as {name} "
                f"(each method's network predicts its own quantity)"
            )

    def _prepare(self, degraded: Tensor) -> Tensor:
        x0 = degraded.to(self.device, torch.float32)
        if self.channels_last:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        return x0

    def check_removal(self) -> None:
        """``ValueError`` unless the network was trained with remove-sets."""
        if not self.config.model.removal:
            raise ValueError(
                "this checkpoint was trained without remove-sets (model.removal); it removes "
                "every degradation it finds. Train with --set data.partial=0.3 --set "
                "model.removal=true to choose"
            )

    def removal(self, remove: Tensor | None) -> Tensor | None:
        """``remove`` on the device (``check_removal`` first), or ``None``."""
        if remove is None:
            return None
        self.check_removal()
        return remove.to(self.device, torch.float32)

    def _network(
        self,
        x_t: Tensor,
        t: Tensor,
        x0: Tensor,
        statistics: ImageStatistics | None,
        extra: Tensor | None = None,
        remove: Tensor | None = None,
    ) -> tuple[Tensor, Aux]:
        kwargs: dict[str, Tensor] = {} if extra is None else {"aux": extra}
        if remove is not None:
            kwargs["remove"] = remove
        with autocast(self.device, self.bf16):
            residual, aux = self.model(x_t, t, x0, return_aux=True, statistics=statistics, **kwargs)
        maps, weights, alpha = (value.float() for value in (aux.maps, aux.weights, aux.alpha))
        return residual.float(), Aux(maps, weights, alpha, aux.spatial)

    def _context_size(self, image: Tensor) -> tuple[int, int] | None:
        """The size ``image`` is seen at for its image-level statistics: at most
        ``context_side`` pixels a side, aspect kept; ``None`` where it is small enough."""
        height, width = image.shape[-2:]
        scale = min(1.0, self.context_side / max(height, width))
        if scale >= 1.0:
            return None
        return max(1, round(height * scale)), max(1, round(width * scale))

    def _statistics(
        self,
        x_t: Tensor,
        t: Tensor,
        x0: Tensor,
        extra: Tensor | None = None,
        remove: Tensor | None = None,
    ) -> ImageStatistics:
        """The image-level statistics of one pass over the whole of ``(x_t, x0)`` (and the
        method's auxiliary input), seen at most ``context_side`` pixels a side
        (area-downscaled, aspect kept)."""
        size = self._context_size(x0)
        if size is not None:

            def small(x: Tensor) -> Tensor:
                return nn.functional.interpolate(x, size=size, mode="area")

            x_t, x0 = small(x_t), small(x0)
            extra = None if extra is None else small(extra)
        statistics = ImageStatistics()
        self._network(x_t, t, x0, statistics, extra, remove)
        return statistics

    def _sample(
        self,
        evaluate: Callable[[Tensor, Tensor, Tensor | None], tuple[Tensor, Aux]],
        x0: Tensor,
        out_device: torch.device,
        steps: int | None,
        generator: torch.Generator | None,
    ) -> tuple[Tensor, Aux]:
        first: list[Aux] = []

        def predict(x_t: Tensor, t: Tensor, extra: Tensor | None) -> Tensor:
            residual, aux = evaluate(x_t, t, extra)
            if not first:
                first.append(aux)
            return residual

        restored = self.method.sample(predict, x0, steps, generator)
        return restored.clamp(0.0, 1.0).to(out_device), _aux_on(first[0], out_device)


def _aux_on(aux: Aux, device: torch.device) -> Aux:
    """``aux`` with its maps, weights and gate on ``device``."""
    return Aux(aux.maps.to(device), aux.weights.to(device), aux.alpha.to(device), aux.spatial)


def _check_images(degraded: Tensor) -> None:
    if degraded.ndim != 4 or degraded.shape[1] != 3:
        raise ValueError(f"degraded must be (B, 3, H, W), got {tuple(degraded.shape)}")
    if not degraded.is_floating_point():
        raise TypeError(
            f"degraded must be floating point in [0, 1], got {degraded.dtype} "
            "(scale uint8 codes with skyclear.datasets.as_float)"
        )


Region = tuple[Any, slice, slice]


def _windows(
    height: int, width: int, tile: int, margin: int, overlap: int, multiple: int
) -> list[tuple[Region, Tensor]]:
    """Each tile's region and its ``(h, w)`` blend weight (see ``Restorer.tiled``)."""
    shared = 2 * margin + overlap
    rows, cols = (_starts(side, tile, shared, multiple) for side in (height, width))
    vertical = {
        top: _ramp(min(tile, height - top), margin, overlap, top > 0, top < rows[-1])
        for top in rows
    }
    horizontal = {
        left: _ramp(min(tile, width - left), margin, overlap, left > 0, left < cols[-1])
        for left in cols
    }
    return [
        (
            (..., slice(top, top + tile), slice(left, left + tile)),
            vertical[top].view(-1, 1) * horizontal[left].view(1, -1),
        )
        for top in rows
        for left in cols
    ]


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


def _ramp(length: int, margin: int, overlap: int, rises: bool, falls: bool) -> Tensor:
    """Weights along one side of a tile. Where a tile lies before it: 0 over the first
    ``margin`` pixels, then rising over ``overlap``; where one lies after, the mirror image;
    1 elsewhere."""
    weight = torch.ones(length)
    edge = torch.cat([torch.zeros(margin), (torch.arange(overlap) + 0.5) / overlap])
    if len(edge):
        if rises:
            weight[: len(edge)] = edge
        if falls:
            weight[length - len(edge) :] = edge.flip(0)
    return weight
