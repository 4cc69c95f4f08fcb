"""Counter-based random numbers: a value is a pure function of (seed, stream, index).

Operators draw their large random fields (sensor noise, streak and flake positions, the
lattices of smooth fields) here, from a per-sample integer ``seed`` that the sampler drew
with a ``torch.Generator``. So a sample is replayed exactly from its parameters, a batch
needs no Python loop over its samples, a sample's output does not depend on which batch
it was in, and CPU and CUDA give the same bits.

The mixer is two rounds of the ``lowbias32`` integer hash (C. Wellons, "Prospecting for
hash functions", 2018) on 32-bit lanes: the index is scrambled by the first round, xored
with a key derived from (seed, stream), and mixed by the second.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from .._scratch import scratch_like

__all__ = ["MAX_SEED", "normal", "random_bits", "uniform", "uniform_streams"]

MAX_SEED = 2**32 - 1
_MUL_A = 0x7FEB352D
_MUL_B = 0x846CA68B - 2**32  # the same 32-bit pattern as a signed int32
_GOLDEN = 0x9E3779B9
_MASK32 = 0xFFFFFFFF
_GOLDEN_I32 = _GOLDEN - 2**32


def _mix32(v: Tensor) -> Tensor:
    """lowbias32 on int32 lanes, in place; multiplications wrap modulo 2**32 as in C.

    The shifts are arithmetic, so the bits shifted in are masked off. In place the
    passes cost half as much as with a new tensor for each; the shifted copy of an
    image-sized draw goes into a buffer this thread reuses.
    """
    shifted = scratch_like("mix32", v) if v.numel() >= _CACHE_FROM else torch.empty_like(v)

    def xorshift(bits: int) -> None:
        torch.bitwise_right_shift(v, bits, out=shifted)
        v.bitwise_xor_(shifted.bitwise_and_((1 << (32 - bits)) - 1))

    xorshift(16)
    v.mul_(_MUL_A)
    xorshift(15)
    v.mul_(_MUL_B)
    xorshift(16)
    return v


def _mix64(v: Tensor) -> Tensor:
    """lowbias32 on int64 lanes holding values in [0, 2**32) (used for the (B,) keys)."""
    v = v ^ (v >> 16)
    v = (v * 0x7FEB352D) & _MASK32
    v = v ^ (v >> 15)
    v = (v * 0x846CA68B) & _MASK32
    return v ^ (v >> 16)


def _to_int32(v: Tensor) -> Tensor:
    """Reinterpret values in [0, 2**32) as int32 bit patterns."""
    return (v - ((v >> 31) << 32)).to(torch.int32)


_CACHE_FROM = 1 << 16  # words; smaller draws (particle lists) are cheap to recompute


@functools.lru_cache(maxsize=8)
def _cached_scramble(count: int, device: torch.device) -> Tensor:
    return _scramble(count, device)


def _scramble(count: int, device: torch.device) -> Tensor:
    """``mix32(arange(count))``: the seed-independent first round."""
    return _mix32(torch.arange(count, dtype=torch.int32, device=device) + _GOLDEN_I32)


def _scrambled_index(count: int, device: torch.device) -> Tensor:
    """The first round, cached for image-sized draws (noise fields), whose sizes repeat;
    particle draws change size with every sample and would only churn the cache."""
    if count >= _CACHE_FROM:
        return _cached_scramble(count, device)
    return _scramble(count, device)


def _keys(seed: Tensor, streams: Tensor) -> Tensor:
    """The int32 key of each (seed, stream) pair: ``(B,)`` seeds by ``(K,)`` streams."""
    seed64 = seed.to(torch.int64).view(-1, 1)
    mixed = _mix64(_mix64((seed64 + streams.view(1, -1) * _GOLDEN) & _MASK32) ^ 0x5BD1E995)
    return _to_int32(mixed)


def random_bits(seed: Tensor, count: int, stream: int) -> Tensor:
    """Return ``(B, count)`` pseudo-random int32 words for per-sample ``seed``s.

    ``word[b, i] = mix32(mix32(i + c) ^ key(seed[b], stream))``. The inner round does not
    depend on the seed and is cached; two keys give streams that agree at a position only
    by chance (about ``count**2 / 2**32`` coincident words, never a shifted copy).

    Args:
        seed: ``(B,)`` integer tensor with values in ``[0, 2**32)``.
        count: number of words per sample.
        stream: a small integer naming the use (two streams of one seed are independent).
    """
    return _mix32(_scrambled_index(count, seed.device).unsqueeze(0) ^ _key(seed, stream))


def _key(seed: Tensor, stream: int) -> Tensor:
    """``(B, 1)`` int32 keys of one stream."""
    return _keys(seed, torch.tensor([stream], device=seed.device))


def uniform(
    seed: Tensor, shape: tuple[int, ...], stream: int, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Uniform values in the open interval (0, 1), shape ``(B, *shape)``, 24 bits each.

    Half-precision requests are computed in float32 (24-bit integers overflow float16).
    """
    values = _unit(random_bits(seed, math.prod(shape), stream), dtype)
    return values.view(seed.shape[0], *shape).to(dtype)


def uniform_streams(
    seed: Tensor, counts: list[int], streams: list[int], dtype: torch.dtype = torch.float32
) -> Tensor:
    """``uniform`` of several streams at once, concatenated: ``(B, sum(counts))``.

    The ``k``-th segment holds the same values as ``uniform(seed, (counts[k],),
    streams[k])``, for the cost of one draw (no per-stream sequence of small operations).
    """
    device = seed.device
    if not counts:
        return torch.empty(seed.shape[0], 0, dtype=dtype, device=device)
    scrambled = _scramble(max(counts), device)
    index = torch.cat([scrambled[:count] for count in counts])
    keys = _keys(seed, torch.tensor(streams, device=device))
    lengths = torch.tensor(counts, device=device)
    key = torch.repeat_interleave(keys, lengths, dim=1, output_size=int(sum(counts)))
    return _unit(_mix32(index.unsqueeze(0) ^ key), dtype).to(dtype)


def _unit(words: Tensor, dtype: torch.dtype) -> Tensor:
    """The top 24 bits of each word as a value in (0, 1)."""
    return ((words >> 8) & 0xFFFFFF).to(_work_dtype(dtype)).add_(0.5).mul_(2.0**-24)


def _quantiles(halves: Tensor, dtype: torch.dtype) -> Tensor:
    """The normal quantile of each signed 16-bit lane: ``sqrt(2) erfinv(2 u - 1)`` at the
    midpoint ``u = (h + 32768.5) / 65536`` of its cell."""
    values = halves.to(dtype).add_(32768.5).mul_(2.0 / 65536.0).sub_(1.0)
    return values.erfinv_().mul_(math.sqrt(2.0))


@functools.lru_cache(maxsize=8)
def _quantile_table(dtype: torch.dtype, device: torch.device) -> Tensor:
    """All 65536 quantiles, indexed by ``h + 32768``; looking one up costs a fraction of
    ``erfinv`` and gives the same bits (the same elementwise operations made it)."""
    lanes = torch.arange(-32768, 32768, dtype=torch.int32, device=device).to(torch.int16)
    return _quantiles(lanes, dtype)


def normal(
    seed: Tensor, shape: tuple[int, ...], stream: int, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Standard normal values, shape ``(B, *shape)``.

    Each 32-bit word gives two 16-bit uniforms, mapped through the inverse normal CDF:
    the values are exact quantiles of a 65536-point grid, so tails stop at 4.33 sigma.
    That is plenty for noise fields and halves the cost of the hash, which dominates.
    Image-sized draws look the quantiles up in a table instead of computing them.
    """
    count = math.prod(shape)
    work = _work_dtype(dtype)
    if count * seed.shape[0] < _CACHE_FROM:
        words = random_bits(seed, (count + 1) // 2, stream)
        values = _quantiles(words.view(torch.int16)[:, :count], work)
    else:
        # The words and the table index are consumed here: both go into buffers this
        # thread reuses, so only the values are a fresh tensor.
        scrambled = _scrambled_index((count + 1) // 2, seed.device).unsqueeze(0)
        words = scratch_like("normal-words", scrambled.expand(seed.shape[0], -1))
        _mix32(torch.bitwise_xor(scrambled, _key(seed, stream), out=words))
        halves = words.view(torch.int16)[:, :count]  # two signed 16-bit lanes per word
        index = scratch_like("normal-index", halves, torch.int32)
        index.copy_(halves).add_(32768)
        table = _quantile_table(work, seed.device)
        values = torch.index_select(table, 0, index.view(-1))
    return values.view(seed.shape[0], *shape).to(dtype)


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
