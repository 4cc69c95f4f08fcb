"""The sRGB transfer curve: the one place in skyclear that knows it.

Images cross the public API sRGB-encoded in [0, 1]; every physical model works in linear
light. Both directions follow IEC 61966-2-1 exactly. The forward pass is written
branch-free and in place: the piecewise curve equals
``power(max(x, k)) + slope * (min(x, k) - k)`` because the two pieces meet at the knee
``k`` (to within 3e-8: the standard's constants are rounded). That avoids a ``where`` and
all but two temporaries, one of which (the toe) is a buffer each thread reuses; this
conversion is the largest fixed cost of every operator on a CPU. Powers are taken as
``exp2(g * log2(x))``: ``exp2`` costs a third of ``exp``. The gradient is given in closed
form by a small autograd function so that the in-place
forward stays differentiable.
"""

from __future__ import annotations

import threading
from typing import Any

import torch
from torch import Tensor

__all__ = ["encode_image", "linear_to_srgb", "srgb_to_linear", "srgb_to_linear_scalar"]

_SRGB_KNEE = 0.04045  # encoded value where the linear toe meets the power segment
_LINEAR_KNEE = 0.0031308  # the same point in linear light (0.04045 / 12.92)
_TOE_SLOPE = 12.92
_OFFSET = 0.055
_GAMMA = 2.4


_SCRATCH = threading.local()


def _toe(x: Tensor, knee: float) -> Tensor:
    """``min(x, knee) - knee`` in a buffer this thread reuses while the shape, dtype,
    layout and device stay the same: a fresh buffer of an image's size costs a page fault
    per 4 KiB on its first write wherever the allocator hands large blocks back to the
    system (glibc's default), which cost more than the arithmetic. The result is
    consumed before the next call of this thread overwrites it."""
    held: Tensor | None = getattr(_SCRATCH, "buffer", None)
    if (
        held is None
        or held.shape != x.shape
        or held.stride() != x.stride()
        or held.dtype != x.dtype
        or held.device != x.device
        or held.is_inference() != torch.is_inference_mode_enabled()
    ):
        held = torch.empty_like(x)
        _SCRATCH.buffer = held
    return torch.clamp_max(x, knee, out=held).sub_(knee)


def _decode(x: Tensor) -> Tensor:
    power = x.clamp_min(_SRGB_KNEE).add_(_OFFSET).mul_(1.0 / (1.0 + _OFFSET))
    power = power.log2_().mul_(_GAMMA).exp2_()
    return power.add_(_toe(x, _SRGB_KNEE), alpha=1.0 / _TOE_SLOPE)


def _encode(x: Tensor) -> Tensor:
    power = x.clamp_min(_LINEAR_KNEE).log2_().mul_(1.0 / _GAMMA).exp2_()
    power = power.mul_(1.0 + _OFFSET).sub_(_OFFSET)
    return power.add_(_toe(x, _LINEAR_KNEE), alpha=_TOE_SLOPE)


class _Decode(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return _decode(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        base = (x.clamp_min(_SRGB_KNEE) + _OFFSET) / (1.0 + _OFFSET)
        slope = base.pow(_GAMMA - 1.0) * (_GAMMA / (1.0 + _OFFSET))
        toe = (x <= _SRGB_KNEE).to(x.dtype)
        return grad * (slope + toe * (1.0 / _TOE_SLOPE - slope))


class _Encode(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return _encode(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        slope = x.clamp_min(_LINEAR_KNEE).pow(1.0 / _GAMMA - 1.0) * ((1.0 + _OFFSET) / _GAMMA)
        toe = (x <= _LINEAR_KNEE).to(x.dtype)
        return grad * (slope + toe * (_TOE_SLOPE - slope))


def srgb_to_linear(x: Tensor) -> Tensor:
    """Decode sRGB values to linear light.

    ``L = x / 12.92`` for ``x <= 0.04045``, else ``((x + 0.055) / 1.055) ** 2.4``.

    Args:
        x: sRGB-encoded tensor of any shape, values in [0, 1].

    Returns:
        Linear-light tensor of the same shape, dtype and device (differentiable).
    """
    if x.requires_grad and torch.is_grad_enabled():
        return _Decode.apply(x)
    return _decode(x)


def linear_to_srgb(x: Tensor) -> Tensor:
    """Encode linear light as sRGB.

    ``x = 12.92 L`` for ``L <= 0.0031308``, else ``1.055 L ** (1 / 2.4) - 0.055``.
    Values above 1 follow the same curve; callers clamp where they must.

    Args:
        x: linear-light tensor of any shape, values >= 0.

    Returns:
        sRGB-encoded tensor of the same shape, dtype and device (differentiable).
    """
    if x.requires_grad and torch.is_grad_enabled():
        return _Encode.apply(x)
    return _encode(x)


def encode_image(x: Tensor, owned: bool = False) -> Tensor:
    """``linear_to_srgb(x).clamp(0, 1)``: a linear image back to sRGB values in [0, 1].

    Where no gradient is taken the clamp is done in place, and with ``owned`` (``x`` is a
    temporary of the caller's, never a tensor anyone else holds) the whole encoding is:
    ``x`` itself is returned, overwritten. Each saves an image-sized tensor."""
    if x.requires_grad and torch.is_grad_enabled():
        return linear_to_srgb(x).clamp(0.0, 1.0)
    if not owned:
        return _encode(x).clamp_(0.0, 1.0)
    toe = _toe(x, _LINEAR_KNEE)
    encoded = x.clamp_min_(_LINEAR_KNEE).log2_().mul_(1.0 / _GAMMA).exp2_()
    encoded = encoded.mul_(1.0 + _OFFSET).sub_(_OFFSET).add_(toe, alpha=_TOE_SLOPE)
    return encoded.clamp_(0.0, 1.0)


def srgb_to_linear_scalar(value: float) -> float:
    """Decode one sRGB value, for constants such as a colour a user gives."""
    if value <= _SRGB_KNEE:
        return value / _TOE_SLOPE
    return float(((value + _OFFSET) / (1.0 + _OFFSET)) ** _GAMMA)
