"""The factorised restorer: a shared time-conditioned U-Net plus four gated experts.

The network predicts the transport's residual ``x_t - mu`` from ``x_t``, the degraded image
and ``t``:

    f = f_shared + sum_i alpha_i(t, profile) * m_i ⊙ Δf_i,

with ``f_shared`` the backbone's output, ``Δf_i`` the increment of expert ``i`` (low, haze,
rain, snow; ``experts.py``), ``m_i`` the parser's full-resolution sigmoid map of
degradation ``i`` (per-pixel routing; all ones under image-level routing), ``w`` its four
sigmoid global weights (sigmoid, not softmax: degradations co-occur) and ``alpha`` the
gate, which reads the time and the profile ``(w, mean m)``: a softmax allocation across
the active experts, a per-expert sigmoid, or ``w`` alone (``ModelConfig.gate``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .blocks import NAFBlock, TimeEmbedding, pad_to_multiple
from .config import CONFIGS, ModelConfig
from .embedding import ResidualEmbedder
from .experts import EXPERTS, Expert, Gate
from .statistics import ImageStatistics, spatial_mean

__all__ = ["Aux", "F2DNet", "build_model"]


@dataclass(frozen=True)
class Aux:
    """What the model can show of its routing: parser maps ``(B, 4, H, W)``, global weights
    ``(B, 4)`` and the gate ``(B, 4)``. Expert ``i`` acts at a pixel with the effective
    weight ``alpha_i * maps_i``. ``spatial`` is False where the routing has no per-pixel
    maps (image-level routing, or no experts): ``maps`` is then all ones, not a
    prediction of the masks."""

    maps: Tensor
    weights: Tensor
    alpha: Tensor
    spatial: bool = True
    #: the dense residual embedding ``(B, D)`` of a residual-conditioned pass, else None
    embedding: Tensor | None = None


class _Sequence(nn.Module):
    """NAF blocks sharing one time embedding."""

    def __init__(self, channels: int, count: int, time_dim: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(NAFBlock(channels, time_dim) for _ in range(count))

    def forward(self, x: Tensor, time: Tensor, statistics: ImageStatistics | None = None) -> Tensor:
        for block in self.blocks:
            x = block(x, time, statistics)
        return x


class Backbone(nn.Module):
    """Time-conditioned U-Net over ``concat(x_t, degraded)``; returns its full-resolution
    features and its bottleneck's."""

    def __init__(self, config: ModelConfig, width: int) -> None:
        super().__init__()
        dim = config.time_dim
        self.intro = nn.Conv2d(6, width, 3, padding=1)
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        channels = width
        for count in config.encoder_blocks:
            self.encoders.append(_Sequence(channels, count, dim))
            self.downs.append(nn.Conv2d(channels, channels * 2, 2, stride=2))
            channels *= 2
        self.middle = _Sequence(channels, config.middle_blocks, dim)
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for count in config.decoder_blocks:
            self.ups.append(nn.Sequential(nn.Conv2d(channels, channels * 2, 1), nn.PixelShuffle(2)))
            channels //= 2
            self.decoders.append(_Sequence(channels, count, dim))

    def widths(self) -> list[int]:
        """Channels at each scale, finest first: every encoder level and the middle."""
        convolutions = [down for down in self.downs if isinstance(down, nn.Conv2d)]
        return [down.in_channels for down in convolutions] + [convolutions[-1].out_channels]

    def forward(
        self,
        x: Tensor,
        time: Tensor,
        statistics: ImageStatistics | None = None,
        conditions: list[Tensor] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``conditions`` (one per scale, ``widths``) are added to each scale's input."""
        x = self.intro(x)
        skips = []
        for level, (encoder, down) in enumerate(zip(self.encoders, self.downs, strict=True)):
            if conditions is not None:
                x = x + conditions[level]
            x = encoder(x, time, statistics)
            skips.append(x)
            x = down(x)
        if conditions is not None:
            x = x + conditions[-1]
        deep = x = self.middle(x, time, statistics)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips), strict=True):
            x = decoder(up(x) + skip, time, statistics)
        return x, deep


_ADAPTER_WIDTH = 16  # hidden channels of the auxiliary input's adapter
_VIEWS = 4  # the parser's views of the image: as it is, normalised, high-pass, band-pass
_SPREAD_FLOOR = 0.02  # keeps the normalisation of a flat (or black) image finite
_BAND = (3, 13)  # box sides of the band-pass: a snowflake's width (2-8 px) lies between


def _box(image: Tensor, side: int) -> Tensor:
    """The mean over the ``side`` x ``side`` box around each pixel (the part of it inside
    the image), as two one-dimensional passes; ``side`` odd, so the box has a centre."""
    if side % 2 == 0:
        raise ValueError(f"a box mean needs an odd side, got {side}")
    half = side // 2
    rows = nn.functional.avg_pool2d(image, (1, side), 1, (0, half), count_include_pad=False)
    return nn.functional.avg_pool2d(rows, (side, 1), 1, (half, 0), count_include_pad=False)


def _views(image: Tensor, statistics: ImageStatistics | None) -> Tensor:
    """``image`` as it is; normalised per channel by its own mean and spread; that
    normalised image minus its 5x5 local mean, times 3 (that high-pass has between a fifth
    and a half of the normalised image's spread on photos); and its 3x3 local mean minus
    its 13x13 one, times 3 (a band-pass that keeps blobs a few pixels wide, which the
    high-pass mostly removes): ``(B, 12, H, W)``. The mean and spread are the image's
    (through ``statistics``: a tile uses its photo's)."""
    mean = spatial_mean(image, statistics)
    spread = (spatial_mean((image - mean).square(), statistics) + 1e-12).sqrt()
    normal = (image - mean) / (spread + _SPREAD_FLOOR)
    high = normal - _box(normal, 5)
    band = _box(normal, _BAND[0]) - _box(normal, _BAND[1])
    return torch.cat([image, normal, 3 * high, 3 * band], 1)


class Parser(nn.Module):
    """A small CNN on the degraded image: four sigmoid maps and four sigmoid weights.

    It reads the image four ways: as it is (brightness and colour tell low light and
    haze), normalised by the image's own mean and spread per channel (so that a streak or
    a flake in a dark or hazy photo is as strong a signal as in a clear one), the
    normalised image's high-pass (minus its 5x5 local mean: thin streaks without the
    scene's shading) and its band-pass (3x3 mean minus 13x13 mean: soft flakes a few
    pixels wide, which the high-pass mostly removes). Its body runs at a quarter of the
    resolution (two NAF blocks, their residual scales starting at one half so that the
    body is non-linear from the first step); the maps are brought back to full
    resolution by bilinear upsampling and a 3x3 convolution that also sees
    full-resolution detail features (two 3x3 convolutions with GELU), so that thin
    structures such as streaks and flakes, lost at a quarter of the resolution, can shape
    the maps. The global weights read the means of the body's
    features and of the detail features. It costs about ``12.5 width ** 2 + 177 width +
    288`` multiply-adds per pixel (6.3 k in ``tiny``, 18.8 k in ``paper``), most of them
    in the full-resolution detail branch, plus the box means of its views.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.intro = nn.Sequential(
            nn.Conv2d(3 * _VIEWS, width, 3, stride=2, padding=1),
            nn.Conv2d(width, width * 2, 2, stride=2),
        )
        blocks = [NAFBlock(width * 2), NAFBlock(width * 2)]
        for block in blocks:
            nn.init.constant_(block.beta, 0.5)
            nn.init.constant_(block.gamma, 0.5)
        self.body = nn.Sequential(*blocks)
        self.squeeze = nn.Conv2d(width * 2, 8, 1)
        self.detail = nn.Sequential(
            nn.Conv2d(3 * _VIEWS, width, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.GELU(),
        )
        self.maps = nn.Conv2d(8 + width, EXPERTS, 3, padding=1)
        self.weights = nn.Linear(width * 3, EXPERTS)

    def forward(
        self, degraded: Tensor, statistics: ImageStatistics | None = None
    ) -> tuple[Tensor, Tensor]:
        views = _views(degraded, statistics)
        deep = self.intro(views)
        for block in self.body:
            deep = block(deep, None, statistics)
        coarse = nn.functional.interpolate(
            self.squeeze(deep), size=degraded.shape[-2:], mode="bilinear", align_corners=False
        )
        detail = self.detail(views)
        maps = torch.sigmoid(self.maps(torch.cat([coarse, detail], 1)))
        # The detail features' means carry the energy of streaks and flakes, which the
        # body's quarter-resolution features average away.
        pooled = torch.cat([spatial_mean(deep, statistics), spatial_mean(detail, statistics)], 1)
        weights = torch.sigmoid(self.weights(pooled.flatten(1)))
        return maps, weights


class F2DNet(nn.Module):
    """The factorised velocity field (see the module docstring).

    Args:
        config: the shape and the ablation switches.

    ``forward(x_t, t, degraded)`` returns the predicted residual ``(B, 3, H, W)`` for any
    ``H, W`` (inputs are padded to a multiple of ``config.multiple`` and cropped back);
    ``forward(..., return_aux=True)`` also returns ``Aux``. Every image-level statistic
    (the channel attentions' means, the parser's global weights) is the input's own, or,
    with ``statistics=``, recorded into or replayed from an ``ImageStatistics``: tiles of a
    photo then share the photo's.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        width = _matched_width(config) if config.widen else config.width
        self.time = TimeEmbedding(config.time_dim)
        self.backbone = Backbone(config, width)
        self.shared = nn.Conv2d(width, 3, 3, padding=1)
        if config.experts:
            self.parser = Parser(config.parser_width)
            self.experts = nn.ModuleList(
                Expert(width, config.bottleneck, config.expert_width, config.expert_context,
                       config.time_dim, dilation=index + 1)
                for index in range(EXPERTS)
            )  # fmt: skip
            if config.gate != "none":
                self.gate = Gate(config.gate, config.time_dim)
        if config.residual_condition:
            self.embedder = ResidualEmbedder(self.backbone.widths(), max(4, width // 2))
        if config.removal:
            # What to remove enters the time embedding, starting at nothing: the network
            # starts as the full restorer it is asked to be by default.
            self.removal = nn.Linear(EXPERTS, config.time_dim)
            nn.init.zeros_(self.removal.weight)
            nn.init.zeros_(self.removal.bias)
        if config.aux_channels:
            # An auxiliary input (ResFlow's y) enters as an increment of the state, through
            # two 3x3 convolutions, the last zero-initialised: the network starts as if it
            # had none.
            last = nn.Conv2d(_ADAPTER_WIDTH, 3, 3, padding=1)
            nn.init.zeros_(last.weight)
            assert last.bias is not None
            nn.init.zeros_(last.bias)
            self.adapter = nn.Sequential(
                nn.Conv2d(config.aux_channels, _ADAPTER_WIDTH, 3, padding=1), nn.GELU(), last
            )

    def forward(
        self,
        x_t: Tensor,
        t: Tensor,
        degraded: Tensor,
        return_aux: bool = False,
        statistics: ImageStatistics | None = None,
        aux: Tensor | None = None,
        remove: Tensor | None = None,
    ) -> Tensor | tuple[Tensor, Aux]:
        if x_t.shape != degraded.shape or x_t.ndim != 4 or x_t.shape[1] != 3:
            raise ValueError(
                f"x_t and degraded must both be (B, 3, H, W), got {tuple(x_t.shape)} and "
                f"{tuple(degraded.shape)}"
            )
        residual_condition = self.config.residual_condition
        wanted = 3 if residual_condition else self.config.aux_channels
        if (aux is None and wanted and not residual_condition) or (aux is not None and not wanted):
            raise ValueError(
                f"this network takes an auxiliary input of {wanted} channels, got "
                f"{'none' if aux is None else tuple(aux.shape)}"
            )
        conditions, embedding = None, None
        if aux is not None:
            if (
                aux.shape[0] != x_t.shape[0]
                or aux.shape[1] != wanted
                or aux.shape[-2:] != x_t.shape[-2:]
            ):
                raise ValueError(
                    f"aux must be ({x_t.shape[0]}, {wanted}, {x_t.shape[-2]}, {x_t.shape[-1]}), "
                    f"got {tuple(aux.shape)}"
                )
            if residual_condition:
                padded, _ = pad_to_multiple(aux.to(x_t.dtype), self.config.multiple)
                conditions, embedding = self.embedder(padded)
            else:
                x_t = x_t + self.adapter(aux.to(x_t.dtype))
        time = self.time(t.expand(x_t.shape[0]) if t.ndim == 0 else t)
        wanted_removal = self._removal(remove, x_t)
        if wanted_removal is not None:
            time = time + self.removal(wanted_removal.to(time.dtype))
        inputs, (height, width) = pad_to_multiple(
            torch.cat([x_t, degraded], 1), self.config.multiple
        )
        features, deep = self.backbone(inputs, time, statistics, conditions)
        output = self.shared(features)
        batch = x_t.shape[0]
        if not self.config.experts:
            residual = output[..., :height, :width]
            ones = residual.new_ones(batch, EXPERTS)
            maps = residual.new_ones(batch, EXPERTS, height, width)
            made = Aux(maps, ones, ones, spatial=False, embedding=embedding)
            return (residual, made) if return_aux else residual
        maps, weights = self.parser(inputs[:, 3:], statistics)
        if self.config.gate == "none":
            alpha = weights
        else:
            coverage = spatial_mean(maps, statistics).flatten(1)
            alpha = self.gate(time, weights, coverage)
        if wanted_removal is not None:
            alpha = alpha * wanted_removal.to(alpha.dtype)  # a kept degradation's expert rests
        pixel = self.config.routing == "pixel"
        if not pixel:  # one weight per image and expert: the maps play no part
            maps = torch.ones_like(maps)
        increments = torch.stack(
            [expert(features, deep, time, statistics) for expert in self.experts], dim=1
        )
        routing = (alpha.view(batch, EXPERTS, 1, 1, 1) * maps.unsqueeze(2)).to(increments.dtype)
        output = output + (routing * increments).sum(dim=1)
        residual = output[..., :height, :width]
        if not return_aux:
            return residual
        return residual, Aux(maps[..., :height, :width], weights, alpha, pixel, embedding)

    def _removal(self, remove: Tensor | None, x_t: Tensor) -> Tensor | None:
        """The ``(B, 4)`` removal vector (all ones, remove everything, by default), or
        ``None`` for a network without ``removal``; ``ValueError`` for a vector it cannot
        take."""
        if not self.config.removal:
            if remove is not None:
                raise ValueError(
                    "this network was trained without remove-sets (model.removal); it "
                    "removes every degradation it finds"
                )
            return None
        batch = x_t.shape[0]
        if remove is None:
            return x_t.new_ones(batch, EXPERTS)
        if remove.shape not in ((batch, EXPERTS), (EXPERTS,)):
            raise ValueError(f"remove must be ({batch}, {EXPERTS}) or ({EXPERTS},), got "
                             f"{tuple(remove.shape)}")  # fmt: skip
        return remove.to(x_t.device, x_t.dtype).expand(batch, EXPERTS)


def _parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _matched_width(config: ModelConfig) -> int:
    """The even backbone width whose network without experts has about as many parameters
    as the one with them (built on the meta device: no memory, no time)."""
    with torch.device("meta"):
        target = _parameters(F2DNet(config.ablate(experts=True, widen=False)))

        def gap(width: int) -> int:
            plain = config.ablate(width=width, experts=False, widen=False)
            return abs(_parameters(F2DNet(plain)) - target)

        return min(range(config.width, config.width * 3, 2), key=gap)


def build_model(config: str | ModelConfig) -> F2DNet:
    """``F2DNet`` from a preset name (``tiny``, ``small``, ``paper``) or a config."""
    if isinstance(config, str):
        if config not in CONFIGS:
            raise ValueError(f"unknown config {config!r}; the presets are {sorted(CONFIGS)}")
        config = CONFIGS[config]
    return F2DNet(config)
