"""The sRGB transfer curve: the one place in skyclear that knows it.

Images cross the public API sRGB-encoded in [0, 1]; every physical model works in linear
light. Both directions follow IEC 61966-2-1 exactly. The forward pass is written
branch-free and in place: the piecewise curve equals
``power(max(x, k)) + slope * (min(x, k) - k)`` because the two pieces meet at the knee
``k`` (to within 3e-8: the standard's constants are rounded). That avoids a ``where`` and
all temporaries but the toe, a buffer each thread reuses; this conversion is the largest
fixed cost of every operator on a CPU. Powers are taken as ``exp2(g * log2(x))``
(``exp2`` costs a third of ``exp``), with the curve's constants folded into one affine
step each way. The gradient is given in closed form by a small autograd function so that
the in-place forward stays differentiable.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ._scratch import scratch_like

__all__ = [
    "decode_transient",
    "encode_image",
    "encode_result",
    "linear_to_srgb",
    "shares_memory",
    "srgb_to_linear",
    "srgb_to_linear_scalar",
]

_SRGB_KNEE = 0.04045  # encoded value where the linear toe meets the power segment
_LINEAR_KNEE = 0.0031308  # the same point in linear light (0.04045 / 12.92)
_TOE_SLOPE = 12.92
_OFFSET = 0.055
_GAMMA = 2.4
_SCRATCH_FROM = 1 << 16  # values: smaller decodes (an airlight, a grey) keep no buffer


def _affine_(x: Tensor, scale: float, offset: float) -> Tensor:
    """``x * scale + offset`` in place, in one pass (``x.mul_().add_()`` takes two)."""
    return torch.add(torch.tensor(offset, dtype=x.dtype), x, alpha=scale, out=x)


def _toe(x: Tensor, knee: float, slope: float, offset: float, name: str, like: Tensor) -> Tensor:
    """``slope * min(x, knee) + offset`` in a buffer this thread reuses (``_scratch``): a
    fresh image-sized tensor would cost more in page faults than the arithmetic. Decoding
    and encoding use their own buffers (``name``), since the linear image an operator
    encodes is often strided unlike the photo it decoded. It is laid out like ``like``,
    the tensor it is added to, and consumed before the next call of this thread
    overwrites it."""
    if x.numel() < _SCRATCH_FROM:  # a colour, a few values: a buffer would only churn
        return _affine_(torch.clamp_max(x, knee), slope, offset)
    return _affine_(torch.clamp_max(x, knee, out=scratch_like(name, like)), slope, offset)


# ``power(max(x, k)) + slope * (min(x, k) - k)``, with each power as ``exp2(g log2(u))``
# and every constant folded into an affine step: ``((x + a) / (1 + a)) ** g`` is
# ``exp2(g log2(x + a) - g log2(1 + a))``, and ``1.055 y ** (1 / g)`` is
# ``exp2(log2(y) / g + log2(1.055))``.
_DECODE_SHIFT = -_GAMMA * math.log2(1.0 + _OFFSET)
_ENCODE_SHIFT = math.log2(1.0 + _OFFSET)


def _decode_into(x: Tensor, power: Tensor) -> Tensor:
    """Decode ``x`` into ``power`` (a fresh or reused tensor of ``x``'s shape, or ``x``)."""
    toe = _toe(x, _SRGB_KNEE, 1 / _TOE_SLOPE, -_SRGB_KNEE / _TOE_SLOPE, "srgb-decode-toe", power)
    power = torch.clamp_min(x, _SRGB_KNEE, out=power).add_(_OFFSET).log2_()
    return _affine_(power, _GAMMA, _DECODE_SHIFT).exp2_().add_(toe)


def _encode_into(x: Tensor, power: Tensor) -> Tensor:
    """Encode ``x`` into ``power`` (a fresh tensor of ``x``'s shape, or ``x`` itself)."""
    shift = -_TOE_SLOPE * _LINEAR_KNEE - _OFFSET
    toe = _toe(x, _LINEAR_KNEE, _TOE_SLOPE, shift, "srgb-encode-toe", power)
    power = torch.clamp_min(x, _LINEAR_KNEE, out=power).log2_()
    return _affine_(power, 1.0 / _GAMMA, _ENCODE_SHIFT).exp2_().add_(toe)


def _decode(x: Tensor) -> Tensor:
    return _decode_into(x, torch.empty_like(x))


def _encode(x: Tensor) -> Tensor:
    return _encode_into(x, torch.empty_like(x))


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


def decode_transient(x: Tensor) -> Tensor:
    """``srgb_to_linear(x)`` for an image consumed within the caller's call: without a
    gradient it goes into a buffer this thread reuses (the next call overwrites it), so
    the caller must not return it, nor anything sharing its memory (``encode_result``).

    The buffer is contiguous whatever ``x``'s layout: a photo permuted from ``(H, W, 3)``
    is strided channels-last, and there every per-channel or per-pixel broadcast an
    operator makes (an airlight, a transmission map) runs about 8x slower on a CPU than on
    the contiguous image; the decode pays for the transposition once."""
    if x.requires_grad and torch.is_grad_enabled():
        return _Decode.apply(x)
    return _decode_into(x, scratch_like("srgb-decode", x, memory="contiguous"))


def encode_result(image: Tensor, linear: Tensor) -> Tensor:
    """``encode_image`` of an operator's linear result made from ``decode_transient``'s
    ``linear``: in place, unless the result is (or shares memory with) ``linear``, as
    where an operator changed nothing."""
    return encode_image(image, owned=not shares_memory(image, linear))


def shares_memory(tensor: Tensor, other: Tensor) -> bool:
    """Whether ``tensor`` lies in ``other``'s memory (the same storage)."""
    return tensor.untyped_storage().data_ptr() == other.untyped_storage().data_ptr()


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
    return _encode_into(x, x).clamp_(0.0, 1.0)


def srgb_to_linear_scalar(value: float) -> float:
    """Decode one sRGB value, for constants such as a colour a user gives."""
    if value <= _SRGB_KNEE:
        return value / _TOE_SLOPE
    return float(((value + _OFFSET) / (1.0 + _OFFSET)) ** _GAMMA)
