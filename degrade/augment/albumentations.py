"""albumentations transforms over skyclear's operators, masks included.

``LowLight``, ``Haze``, ``Rain`` and ``Snow`` take the ranges of the operators of the same
name (``skyclear.degrade``); ``RandomTier`` picks one of the 11 CDD-11 tiers per image
(weights configurable) and applies it. Each writes the degraded image to ``image`` and
the ``(H, W, 4)`` float32 masks (low, haze, rain, snow) to ``mask_key``. Register that key
as a mask target of the pipeline so later geometric transforms move it with the image::

    pipeline = A.Compose(
        [RandomTier(), A.HorizontalFlip(), A.RandomCrop(256, 256)],
        additional_targets={"weather_masks": "mask", "clean": "image"},
        seed=0,
    )
    out = pipeline(image=degraded_source, clean=clean_copy)

Any other image target (``clean`` above) is never degraded: these transforms act on
``image`` alone. Haze reads an optional ``depth`` target (``(H, W)`` metres). uint8 and
float32 ``(H, W, 3)`` images are accepted and returned in their own dtype.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch

try:
    from albumentations.core.transforms_interface import ImageOnlyTransform
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "skyclear's albumentations transforms need albumentations: "
        "pip install 'skyclear[albumentations]'"
    ) from error

from .. import compose
from ..names import DEGRADATIONS, ORDERS, TIERS
from ..ops import Haze as _Haze
from ..ops import LowLight as _LowLight
from ..ops import Operator
from ..ops import Rain as _Rain
from ..ops import Snow as _Snow
from . import seed_from

__all__ = ["MASK_KEY", "Haze", "LowLight", "Rain", "RandomTier", "Snow"]

MASK_KEY = "weather_masks"


def _to_tensor(image: np.ndarray) -> tuple[torch.Tensor, np.dtype]:
    """``(H, W, 3)`` array to a contiguous ``(1, 3, H, W)`` float tensor in [0, 1].

    Contiguous channels-first on purpose: broadcasting a channels-last image against
    ``(B, 1, H, W)`` maps takes torch's slow strided paths, which cost more than the copy.
    The transpose happens on the uint8 array where there is one (a quarter of the bytes).
    """
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"image must be an (H, W, 3) RGB array, got shape {array.shape}")
    if array.dtype == np.uint8:
        chw = torch.from_numpy(array).permute(2, 0, 1).contiguous().float().div_(255.0)
    elif array.dtype == np.float32:
        chw = torch.from_numpy(array).permute(2, 0, 1).contiguous()
    else:
        raise TypeError(f"image dtype must be uint8 or float32, got {array.dtype}")
    return chw.unsqueeze(0), array.dtype


def _to_array(image: torch.Tensor, dtype: np.dtype) -> np.ndarray:
    """``(1, 3, H, W)`` float tensor back to an ``(H, W, 3)`` array of ``dtype``."""
    if dtype == np.uint8:
        codes = image[0].mul(255.0).round_().to(torch.uint8)
        return codes.permute(1, 2, 0).contiguous().numpy()
    return image[0].permute(1, 2, 0).contiguous().numpy()


def _depth_of(data: dict[str, Any], height: int, width: int) -> torch.Tensor | None:
    depth = data.get("depth")
    if depth is None:
        return None
    array = np.asarray(depth, dtype=np.float32)
    if array.shape[:2] != (height, width):
        raise ValueError(f"depth is {array.shape} but the image is {(height, width)}")
    return torch.from_numpy(np.ascontiguousarray(array.reshape(height, width))).view(
        1, 1, height, width
    )


class _Weather(ImageOnlyTransform):
    """Shared machinery: parameters drawn and applied once per call, masks written out."""

    def __init__(self, p: float = 0.5, mask_key: str = MASK_KEY) -> None:
        super().__init__(p=p)
        if not isinstance(mask_key, str) or not mask_key:
            raise ValueError(f"mask_key must be a non-empty string, got {mask_key!r}")
        self.mask_key = mask_key

    @property
    def targets(self) -> dict[str, Any]:
        return {"image": self.apply}

    def add_targets(self, additional_targets: dict[str, str]) -> None:
        # A paired clean image registered as an extra image target must pass untouched.
        kept = {key: kind for key, kind in additional_targets.items() if kind != "image"}
        super().add_targets(kept)

    @property
    def targets_as_params(self) -> list[str]:
        return ["image"]

    def get_params_dependent_on_data(
        self, params: dict[str, Any], data: dict[str, Any]
    ) -> dict[str, Any]:
        x, dtype = _to_tensor(data["image"])
        seed = seed_from(int(self.random_generator.integers(0, 2**63 - 1)))
        generator = torch.Generator().manual_seed(seed)
        depth = _depth_of(data, x.shape[-2], x.shape[-1])
        with torch.no_grad():
            image, masks = self._degrade(x, generator, depth)
        return {
            "degraded": _to_array(image, dtype),
            "weather_masks": masks,
            "generator_seed": seed,
        }

    def _degrade(
        self, x: torch.Tensor, generator: torch.Generator, depth: torch.Tensor | None
    ) -> tuple[torch.Tensor, np.ndarray]:
        """Return the degraded ``(1, 3, H, W)`` image and the ``(H, W, 4)`` float32 masks."""
        raise NotImplementedError

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        return np.asarray(params["degraded"])

    def apply_with_params(
        self, params: dict[str, Any], *args: Any, **kwargs: Any
    ) -> dict[str, Any]:
        result = super().apply_with_params(params, *args, **kwargs)
        if "weather_masks" in params:
            result[self.mask_key] = params["weather_masks"]
        return result

    def __call__(self, *args: Any, force_apply: bool = False, **kwargs: Any) -> Any:
        result = super().__call__(*args, force_apply=force_apply, **kwargs)
        if self.mask_key not in result and "image" in kwargs:
            # Not applied this time (p): the masks say so, with zeros.
            height, width = np.asarray(kwargs["image"]).shape[:2]
            result[self.mask_key] = np.zeros((height, width, len(DEGRADATIONS)), np.float32)
        return result


class _OperatorTransform(_Weather):
    """A transform over one operator; its ranges are the operator's fields."""

    operator_class: ClassVar[type[Operator]]

    def __init__(self, p: float = 0.5, mask_key: str = MASK_KEY, **ranges: Any) -> None:
        super().__init__(p=p, mask_key=mask_key)
        self.operator = self.operator_class(**ranges)  # validates, with a clear error
        for field in dataclasses.fields(self.operator):
            setattr(self, field.name, getattr(self.operator, field.name))

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        names = tuple(field.name for field in dataclasses.fields(self.operator))
        return (*names, "mask_key")

    def _degrade(
        self, x: torch.Tensor, generator: torch.Generator, depth: torch.Tensor | None
    ) -> tuple[torch.Tensor, np.ndarray]:
        context = {"depth": depth} if isinstance(self.operator, _Haze) else {}
        result = self.operator(x, generator=generator, **context)
        masks = np.zeros((*x.shape[-2:], len(DEGRADATIONS)), np.float32)
        masks[..., DEGRADATIONS.index(self.operator.name)] = result.mask[0, 0].numpy()
        return result.image, masks


class LowLight(_OperatorTransform):
    """Low light (see ``skyclear.degrade.LowLight`` for the ranges)."""

    operator_class = _LowLight


class Haze(_OperatorTransform):
    """Haze (see ``skyclear.degrade.Haze``); reads an optional ``depth`` target in metres."""

    operator_class = _Haze


class Rain(_OperatorTransform):
    """Rain (see ``skyclear.degrade.Rain`` for the ranges)."""

    operator_class = _Rain


class Snow(_OperatorTransform):
    """Snow (see ``skyclear.degrade.Snow`` for the ranges)."""

    operator_class = _Snow


class RandomTier(_Weather):
    """One of the CDD-11 tiers per image, drawn with ``weights``, applied with its masks.

    Args:
        tiers: the tiers to choose from (default all 11).
        weights: relative probability of each tier (default uniform).
        order: ``physical`` or ``cdd11`` composition order.
        low, haze, rain, snow: ranges of each operator, as keyword dicts (defaults if empty).
        p: probability of degrading an image at all.
        mask_key: the key the masks are written to.
    """

    def __init__(
        self,
        tiers: tuple[str, ...] | list[str] = TIERS,
        weights: tuple[float, ...] | list[float] | None = None,
        order: str = "physical",
        low: dict[str, Any] | None = None,
        haze: dict[str, Any] | None = None,
        rain: dict[str, Any] | None = None,
        snow: dict[str, Any] | None = None,
        p: float = 1.0,
        mask_key: str = MASK_KEY,
    ) -> None:
        super().__init__(p=p, mask_key=mask_key)
        self.tiers = tuple(tiers)
        unknown = [tier for tier in self.tiers if tier not in TIERS]
        if unknown or not self.tiers:
            raise ValueError(f"tiers must be a non-empty subset of {TIERS}, got {tiers}")
        if weights is not None:
            weights = tuple(float(w) for w in weights)
            if len(weights) != len(self.tiers) or min(weights) < 0 or sum(weights) <= 0:
                raise ValueError(
                    f"weights must be {len(self.tiers)} non-negative numbers with a positive sum,"
                    f" got {weights}"
                )
        self.weights = weights
        self.chosen_tier: str | None = None  # the tier of the last call
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
        self.order = order
        self.low, self.haze, self.rain, self.snow = (dict(r or {}) for r in (low, haze, rain, snow))
        self.composite = compose.Composite(
            low=_LowLight(**self.low),
            haze=_Haze(**self.haze),
            rain=_Rain(**self.rain),
            snow=_Snow(**self.snow),
            order=order,  # type: ignore[arg-type]
        )

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("tiers", "weights", "order", "low", "haze", "rain", "snow", "mask_key")

    def _degrade(
        self, x: torch.Tensor, generator: torch.Generator, depth: torch.Tensor | None
    ) -> tuple[torch.Tensor, np.ndarray]:
        if self.weights is None:
            probabilities = torch.full((len(self.tiers),), 1.0 / len(self.tiers))
        else:
            probabilities = torch.tensor(self.weights, dtype=torch.float64)
        choice = int(torch.multinomial(probabilities, 1, generator=generator))
        self.chosen_tier = self.tiers[choice]
        result = self.composite(x, self.chosen_tier, generator, depth)
        return result.image, np.ascontiguousarray(result.masks[0].permute(1, 2, 0).numpy())
