"""The 11 CDD-11 tiers: which degradations a tier holds and the order they act in.

Physical order (the default): scene -> atmosphere (haze) -> particles (rain or snow, seen
through the haze between them and the camera, and hidden behind the scene where its depth
is given; with the haze's depth prior they lie in front of everything) -> illumination
and camera (low light:
gain, then sensor noise last). Illumination is applied after haze and particles because
scattering and compositing are linear in the light: dimming the scene, the airlight and
the particles by the same illumination field equals dimming their composite. The sensor
sees the dimmed composite and adds its noise to it.

CDD-11 order (``order="cdd11"``) reproduces the original synthesis for comparability:
low light (with its noise) -> rain -> snow -> haze, each on the previous output, with
particles in clear air and haze over everything.

Mask channels are always ``low, haze, rain, snow``, each that degradation's own intensity
field, whatever the order; a degradation absent from the tier has an all-zero channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from ._validate import check_image, check_params
from .color import decode_transient, encode_image, encode_result, srgb_to_linear
from .functional.particles import Medium
from .names import DEGRADATIONS, ORDERS, TIERS
from .ops.base import Operator, Params
from .ops.haze import Haze
from .ops.lowlight import LowLight
from .ops.rain import Rain
from .ops.snow import Snow

__all__ = [
    "DEGRADATIONS",
    "ORDERS",
    "TIERS",
    "Composite",
    "MixedResult",
    "TierResult",
    "degrade_tier",
    "parse_tier",
]

Order = Literal["physical", "cdd11"]

_PHYSICAL: tuple[str, ...] = ("haze", "rain", "snow", "low")
_CDD11: tuple[str, ...] = ("low", "rain", "snow", "haze")


def parse_tier(tier: str) -> tuple[str, ...]:
    """The degradations of a tier, in the canonical order ``low, haze, rain, snow``."""
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}; the tiers are {', '.join(TIERS)}")
    parts = tier.split("_")
    return tuple(name for name in DEGRADATIONS if name in parts)


@dataclass(frozen=True)
class TierResult:
    """A batch degraded into one tier.

    Attributes:
        image: ``(B, 3, H, W)`` sRGB image in [0, 1].
        masks: ``(B, 4, H, W)`` intensity of low, haze, rain, snow (absent = 0).
        params: ``{degradation: params}`` for the degradations of the tier.
        tier: the tier's name.
    """

    image: Tensor
    masks: Tensor
    params: dict[str, Params]
    tier: str


@dataclass(frozen=True)
class MixedResult:
    """A batch whose samples were each degraded into a tier of their own.

    Attributes:
        image: ``(B, 3, H, W)`` sRGB image in [0, 1].
        masks: ``(B, 4, H, W)`` intensity of low, haze, rain, snow (absent = 0).
        params: each sample's ``{degradation: params}``, a batch of one.
        tiers: each sample's tier.
    """

    image: Tensor
    masks: Tensor
    params: list[dict[str, Params]]
    tiers: tuple[str, ...]


@dataclass(frozen=True)
class Composite:
    """The four operators and an order: degrades batches into any of the 11 tiers.

    Example:
        >>> comp = Composite(haze=Haze(beta=(0.1, 0.1)))
        >>> out = comp(torch.rand(2, 3, 64, 64), "low_haze_rain", torch.Generator().manual_seed(0))
        >>> out.masks.shape
        torch.Size([2, 4, 64, 64])
    """

    low: LowLight = field(default_factory=LowLight)
    haze: Haze = field(default_factory=Haze)
    rain: Rain = field(default_factory=Rain)
    snow: Snow = field(default_factory=Snow)
    order: Order = "physical"

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {self.order!r}")
        for name, cls in zip(DEGRADATIONS, (LowLight, Haze, Rain, Snow), strict=True):
            if not isinstance(getattr(self, name), cls):
                raise TypeError(f"Composite.{name} must be a {cls.__name__}")

    def operator(self, name: str) -> Operator:
        """The operator of degradation ``name``."""
        op: Operator = getattr(self, name)
        return op

    def sample(
        self,
        tier: str,
        batch: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> dict[str, Params]:
        """Draw the parameters of every degradation of ``tier``, in canonical order."""
        return {
            name: self.operator(name).sample(batch, generator, device) for name in parse_tier(tier)
        }

    def __call__(
        self,
        x: Tensor,
        tier: str,
        generator: torch.Generator | None = None,
        depth: Tensor | None = None,
    ) -> TierResult:
        """Degrade sRGB ``x`` ``(B, 3, H, W)`` into ``tier`` with freshly drawn parameters."""
        check_image(x)
        params = self.sample(tier, x.shape[0], generator, x.device)
        return self._srgb(x, tier, params, self._present(tier, params, x.shape[0]), depth)

    def apply(
        self, x: Tensor, tier: str, params: dict[str, Params], depth: Tensor | None = None
    ) -> TierResult:
        """Replay a degradation from ``params`` (deterministic; values are checked)."""
        check_image(x)
        present = self._present(tier, params, x.shape[0], check_values=True)
        return self._srgb(x, tier, params, present, depth)

    def apply_linear(
        self, linear: Tensor, tier: str, params: dict[str, Params], depth: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """``apply`` on a linear-light image, with no sRGB conversion either way.

        For float32 and float64 images, ``apply(x, ...).image`` is, to the bit,
        ``linear_to_srgb(image).clamp(0, 1)`` of this ``image`` for ``linear =
        srgb_to_linear(x)``: a photo degraded into many tiers can be decoded once.
        ``linear`` is not modified.

        Returns:
            ``(image, masks)``: the linear degraded image (not clamped) and the
            ``(B, 4, H, W)`` masks, in ``linear``'s dtype.
        """
        check_image(linear, "linear")
        present = self._present(tier, params, linear.shape[0], check_values=True)
        image, masks = self._degrade_linear(_single_or_double(linear), present, params, depth)
        return image.to(linear.dtype), masks.to(linear.dtype)

    def sample_each(
        self,
        tiers: Sequence[str],
        seeds: Sequence[int],
        device: torch.device | str | None = None,
    ) -> list[dict[str, Params]]:
        """Each sample's parameters from a generator of its own: sample ``i``'s are what
        ``sample(tiers[i], 1, torch.Generator().manual_seed(seeds[i]))`` draws, so it is
        degraded as a batch of one with that generator would be, in whatever batch it is."""
        if len(tiers) != len(seeds):
            raise ValueError(f"{len(tiers)} tiers but {len(seeds)} seeds")
        return [
            self.sample(tier, 1, torch.Generator().manual_seed(int(seed)), device)
            for tier, seed in zip(tiers, seeds, strict=True)
        ]

    def apply_mixed(
        self,
        x: Tensor,
        tiers: Sequence[str],
        params: Sequence[dict[str, Params]],
        depth: Tensor | None = None,
    ) -> MixedResult:
        """Degrade each sample of ``x`` into its own tier, from its own parameters (each a
        batch of one, as ``sample_each`` draws them), in one call: each operator runs once
        on all the samples that hold its degradation (in the physical order, rain and snow
        twice: seen through haze and in clear air), not once per tier.

        Sample ``i`` of the result is ``apply(x[i:i+1], tiers[i], params[i])`` up to float
        rounding: the operators' arithmetic does not depend on the batch, but vectorised
        kernels may round a value one ulp apart in a batch of another size.
        """
        check_image(x)
        batch = x.shape[0]
        if len(tiers) != batch or len(params) != batch:
            raise ValueError(
                f"a batch of {batch} images needs as many tiers and params, got "
                f"{len(tiers)} and {len(params)}"
            )
        presents = [self._present(tier, own, 1) for tier, own in zip(tiers, params, strict=True)]
        linear = srgb_to_linear(_single_or_double(x))
        image, masks = self._degrade_mixed(linear, presents, params, depth)
        result = encode_image(image, owned=True)
        return MixedResult(result.to(x.dtype), masks.to(x.dtype), list(params), tuple(tiers))

    def _present(
        self, tier: str, params: dict[str, Params], batch: int, check_values: bool = False
    ) -> tuple[str, ...]:
        """The degradations of ``tier``, once ``params`` is known to hold exactly them."""
        present = parse_tier(tier)
        if not isinstance(params, dict) or set(params) != set(present):
            got = sorted(params) if isinstance(params, dict) else type(params)
            raise ValueError(f"params for tier {tier!r} must hold {list(present)}, got {got}")
        if check_values:
            for name in present:
                op = self.operator(name)
                values = check_params(params[name], op.param_names, batch, type(op).__name__)
                op.check_values(values)
        return present

    def _srgb(
        self,
        x: Tensor,
        tier: str,
        params: dict[str, Params],
        present: tuple[str, ...],
        depth: Tensor | None,
    ) -> TierResult:
        linear = decode_transient(_single_or_double(x))
        image, masks = self._degrade_linear(linear, present, params, depth)
        image = encode_result(image, linear)  # made here from ``linear``, never ``x``
        return TierResult(image.to(x.dtype), masks.to(x.dtype), params, tier)

    def _degrade_linear(
        self,
        image: Tensor,
        present: tuple[str, ...],
        params: dict[str, Params],
        depth: Tensor | None,
    ) -> tuple[Tensor, Tensor]:
        batch, _, height, width = image.shape
        masks = image.new_zeros(batch, len(DEGRADATIONS), height, width)
        medium: Medium | None = None
        # Particles are hidden behind the scene where its depth is known (physical order);
        # a prior's depth is a guess about the haze, not where a wall stands.
        scene = depth if self.order == "physical" else None
        if "haze" in present and depth is None:  # the prior reads the clean photo
            haze_params = check_params(params["haze"], self.haze.param_names, batch, "Haze")
            depth = self.haze.depth_for(image, haze_params, None)
        for name in _PHYSICAL if self.order == "physical" else _CDD11:
            if name not in present:
                continue
            op = self.operator(name)
            op_params = check_params(params[name], op.param_names, batch, type(op).__name__)
            if name == "haze":
                image, mask = op.apply_linear(image, op_params, depth=depth)
                medium = _medium(op_params["beta"], op_params["airlight"], image)
            elif name in ("rain", "snow") and self.order == "physical":
                image, mask = op.apply_linear(image, op_params, medium=medium, depth=scene)
            else:
                image, mask = op.apply_linear(image, op_params)
            masks[:, DEGRADATIONS.index(name)] = mask[:, 0]
        return image, masks

    def _degrade_mixed(
        self,
        image: Tensor,
        presents: list[tuple[str, ...]],
        params: Sequence[dict[str, Params]],
        depth: Tensor | None,
    ) -> tuple[Tensor, Tensor]:
        """``_degrade_linear`` for samples of different tiers, ``image`` overwritten.

        Rows are chosen and parameters stacked and checked where they were drawn (on the
        CPU); what goes to the image's device goes without waiting for it (a GPU's queue)."""
        batch, _, height, width = image.shape
        masks = image.new_zeros(batch, len(DEGRADATIONS), height, width)
        device = image.device

        def holders(name: str) -> list[int]:
            return [i for i, present in enumerate(presents) if name in present]

        def stacked(name: str, rows: list[int]) -> dict[str, Tensor]:
            """The ``rows``' parameters of ``name`` as one batch, each sample's checked."""
            op = self.operator(name)
            owner = type(op).__name__
            for i in rows:
                check_params(params[i][name], op.param_names, 1, f"sample {i}: {owner}")
            values = {
                key: torch.cat([params[i][name][key] for i in rows]) for key in op.param_names
            }
            op.check_values(values)
            return values

        def moved(values: dict[str, Tensor]) -> dict[str, Tensor]:
            return {key: value.to(device, non_blocking=True) for key, value in values.items()}

        def index(rows: list[int]) -> Tensor:
            return torch.tensor(rows).to(device, non_blocking=True)

        hazy = holders("haze")
        haze_params = stacked("haze", hazy) if hazy else {}
        haze_moved = moved(haze_params)
        haze_depth = None
        if hazy:  # the prior reads the clean photo, before any operator has acted
            rows = index(hazy)
            given = None if depth is None else depth.index_select(0, rows)
            haze_depth = self.haze.depth_for(image.index_select(0, rows), haze_moved, given)
        scene = depth if self.order == "physical" else None
        for name in _PHYSICAL if self.order == "physical" else _CDD11:
            every = holders(name)
            if not every:
                continue
            groups = [every]
            if name in ("rain", "snow") and self.order == "physical":
                # through a medium or in clear air, as the tier of each sample has it
                groups = [[i for i in every if i in hazy], [i for i in every if i not in hazy]]
            for rows_list in groups:
                if not rows_list:
                    continue
                rows = index(rows_list)
                own = haze_params if name == "haze" else stacked(name, rows_list)
                part = image.index_select(0, rows)
                if name == "haze":
                    out, mask = self.haze.apply_linear(part, haze_moved, depth=haze_depth)
                elif name in ("rain", "snow") and self.order == "physical":
                    medium = None
                    if rows_list[0] in hazy:
                        at = torch.tensor([hazy.index(i) for i in rows_list])
                        medium = _medium(haze_params["beta"][at], haze_params["airlight"][at],
                                         image)  # fmt: skip
                    own_scene = None if scene is None else scene.index_select(0, rows)
                    out, mask = self.operator(name).apply_linear(
                        part, moved(own), medium=medium, depth=own_scene
                    )
                else:
                    out, mask = self.operator(name).apply_linear(part, moved(own))
                image.index_copy_(0, rows, out.to(image.dtype))
                masks[:, DEGRADATIONS.index(name)].index_copy_(0, rows, mask[:, 0].to(image.dtype))
        return image, masks


def _medium(beta: Tensor, airlight: Tensor, like: Tensor) -> Medium:
    """The haze that particles are seen through: its ``beta`` and its sRGB ``airlight`` in
    linear light, on ``like``'s device (and dtype, for the airlight)."""
    airlight = airlight.to(like.device, like.dtype, non_blocking=True)
    return Medium(beta.to(like.device, non_blocking=True), srgb_to_linear(airlight))


def _single_or_double(x: Tensor) -> Tensor:
    """Half-precision images are degraded in float32 (and returned in their own dtype)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def degrade_tier(
    x: Tensor,
    tier: str,
    generator: torch.Generator | None = None,
    depth: Tensor | None = None,
    order: Order = "physical",
) -> TierResult:
    """Degrade ``x`` into ``tier`` with the default operators (see ``Composite``)."""
    return Composite(order=order)(x, tier, generator, depth)
