"""The thin operator classes share this: ranges in, sampling, replay, the sRGB boundary."""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch
from torch import Tensor

from .._validate import check_image, check_params, check_range
from ..color import decode_transient, encode_result, shares_memory
from ..functional.counter_rng import MAX_SEED

__all__ = ["OpResult", "Operator", "Params", "Range"]

_HALF = (torch.float16, torch.bfloat16)

Range = tuple[float, float]
Params = dict[str, Tensor]


@dataclass(frozen=True)
class OpResult:
    """What an operator returns.

    Attributes:
        image: ``(B, 3, H, W)`` degraded sRGB image in [0, 1].
        mask: ``(B, 1, H, W)`` intensity of the degradation at each pixel, in [0, 1].
        params: every per-sample parameter of the call (``op.apply(x, params)`` replays it).
    """

    image: Tensor
    mask: Tensor
    params: Params


@dataclass(frozen=True)
class Operator(abc.ABC):
    """A degradation: ``(low, high)`` ranges of its physical parameters, nothing more.

    Subclasses declare their ranges as dataclass fields, with bounds in ``_BOUNDS``, and
    implement ``_draw`` (the sampler) and ``apply_linear`` (a call into the functional core).
    """

    name: ClassVar[str]
    param_names: ClassVar[tuple[str, ...]]
    _BOUNDS: ClassVar[dict[str, tuple[float, float]]] = {}
    _INTEGER: ClassVar[frozenset[str]] = frozenset()
    #: Fields that are a choice among names, not a range: ``{field: allowed names}``.
    _CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __post_init__(self) -> None:
        for field in fields(self):
            if field.name in self._CHOICES:
                allowed = self._CHOICES[field.name]
                if getattr(self, field.name) not in allowed:
                    raise ValueError(
                        f"{type(self).__name__}.{field.name} must be one of {allowed}, got "
                        f"{getattr(self, field.name)!r}"
                    )
                continue
            low, high = self._BOUNDS.get(field.name, (-math.inf, math.inf))
            checked = check_range(
                f"{type(self).__name__}.{field.name}",
                getattr(self, field.name),
                low=low,
                high=high,
                integer=field.name in self._INTEGER,
            )
            object.__setattr__(self, field.name, checked)

    # -- sampling -----------------------------------------------------------------------
    def sample(
        self,
        batch: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> Params:
        """Draw per-sample parameters for a batch of ``batch`` images.

        All randomness of the operator comes from here: scalars are drawn from
        ``generator`` (torch's default generator when ``None``), and every random field is
        drawn later from the per-sample integer ``seed`` drawn here.
        """
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be a positive int, got {batch!r}")
        draw = _Draws(batch, generator)
        params = self._draw(draw)
        params["seed"] = draw.seed()
        target = torch.device(device) if device is not None else torch.device("cpu")
        return {key: params[key].to(target) for key in self.param_names}

    @abc.abstractmethod
    def _draw(self, draw: _Draws) -> Params:
        """Draw every parameter but ``seed``."""

    # -- applying -----------------------------------------------------------------------
    @abc.abstractmethod
    def apply_linear(self, x: Tensor, params: Params, **context: Any) -> tuple[Tensor, Tensor]:
        """Apply to a linear-light image; return ``(linear image, mask)``."""

    def apply(self, x: Tensor, params: Params, **context: Any) -> OpResult:
        """Replay the operator on sRGB ``x`` with explicit ``params`` (deterministic).

        Raises:
            ValueError: a parameter is missing, unexpected, of the wrong batch size, or
                outside the operator's physical bounds.
        """
        check_image(x)
        self.check_values(check_params(params, self.param_names, x.shape[0], type(self).__name__))
        return self._run(x, params, **context)

    def check_values(self, params: Params) -> None:
        """Raise ``ValueError`` if a parameter lies outside the operator's physical bounds."""
        for key, (low, high) in self._BOUNDS.items():
            if key not in params:
                continue
            value = params[key].detach()
            if value.numel() == 0:
                continue
            smallest, largest = float(value.min()), float(value.max())
            if not (low <= smallest and largest <= high):  # also False for NaN
                raise ValueError(
                    f"{type(self).__name__} param {key!r} must lie within [{low}, {high}], got "
                    f"values from {smallest:.6g} to {largest:.6g}"
                )

    def __call__(
        self, x: Tensor, generator: torch.Generator | None = None, **context: Any
    ) -> OpResult:
        """Sample parameters with ``generator`` and apply them to sRGB ``x`` ``(B, 3, H, W)``."""
        check_image(x)
        params = self.sample(x.shape[0], generator, x.device)  # valid by construction
        return self._run(x, params, **context)

    def _run(self, x: Tensor, params: Params, **context: Any) -> OpResult:
        """Apply checked parameters to a checked image."""
        # Half precision cannot hold pixel positions or 24-bit random numbers: compute in
        # float32 and hand back the caller's dtype.
        work = x.float() if x.dtype in _HALF else x
        linear = decode_transient(work)
        image, mask = self.apply_linear(linear, params, **context)
        # The operator's result is made here, never the caller's ``x``, so it is encoded in
        # place, unless it is ``linear`` itself (reused by the next call).
        image = encode_result(image, linear)
        if shares_memory(mask, linear):  # a mask made as a view of the reused buffer
            mask = mask.clone()
        return OpResult(image.to(x.dtype), mask.to(x.dtype), params)


class _Draws:
    """Vectorised draws of ``(B,)`` parameters from one generator, in call order."""

    def __init__(self, batch: int, generator: torch.Generator | None) -> None:
        self.batch = batch
        self.generator = generator
        self.device = generator.device if generator is not None else torch.device("cpu")

    def _unit(self, *shape: int) -> Tensor:
        return torch.rand(
            self.batch, *shape, generator=self.generator, device=self.device, dtype=torch.float64
        )

    def uniform(self, span: Range, *shape: int) -> Tensor:
        """Uniform in ``[low, high]``; ``low == high`` gives the value itself."""
        low, high = span
        return (low + (high - low) * self._unit(*shape)).float()

    def log_uniform(self, span: Range) -> Tensor:
        """Log-uniform in ``[low, high]`` for positive ranges, uniform when ``low == 0``."""
        low, high = span
        if low <= 0.0:
            return self.uniform(span)
        return torch.exp(math.log(low) + (math.log(high) - math.log(low)) * self._unit()).float()

    def normal(self) -> Tensor:
        """Standard normal values, ``(B,)``."""
        return torch.randn(
            self.batch, generator=self.generator, device=self.device, dtype=torch.float64
        ).float()

    def integer(self, span: Range) -> Tensor:
        """Integers uniform in ``[low, high]`` inclusive, as int64."""
        low, high = int(span[0]), int(span[1])
        return torch.floor(low + (high - low + 1) * self._unit()).clamp_max(high).long()

    def seed(self) -> Tensor:
        """Per-sample seeds for ``counter_rng``, int64 in ``[0, 2**32)``."""
        return torch.randint(
            0, MAX_SEED + 1, (self.batch,), generator=self.generator, device=self.device
        )
