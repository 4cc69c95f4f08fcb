"""Counter-based random numbers: a pure-Python reference, statistics, independence."""

from __future__ import annotations

import torch
from skyclear.degrade.functional import counter_rng

M32 = 0xFFFFFFFF


def _mix(v: int) -> int:
    v ^= v >> 16
    v = (v * 0x7FEB352D) & M32
    v ^= v >> 15
    v = (v * 0x846CA68B) & M32
    return v ^ (v >> 16)


def _reference_word(seed: int, stream: int, index: int) -> int:
    key = _mix(_mix((seed + stream * 0x9E3779B9) & M32) ^ 0x5BD1E995)
    return _mix(_mix((index + 0x9E3779B9) & M32) ^ key)


def test_words_match_the_reference_hash() -> None:
    seeds = torch.tensor([0, 1, 123456789, 2**32 - 1])
    words = counter_rng.random_bits(seeds, 50, stream=7)
    for b, seed in enumerate(seeds.tolist()):
        expected = [_reference_word(seed, 7, i) for i in range(50)]
        got = [w & M32 for w in words[b].tolist()]
        assert got == expected


def test_uniform_statistics() -> None:
    u = counter_rng.uniform(torch.tensor([3]), (200000,), stream=1)
    assert u.min() > 0 and u.max() < 1
    assert abs(float(u.mean()) - 0.5) < 0.005
    assert abs(float(u.var()) - 1 / 12) < 0.002
    histogram = torch.histc(u, bins=20, min=0, max=1)
    assert (histogram / 10000 - 1).abs().max() < 0.06


def test_normal_statistics() -> None:
    z = counter_rng.normal(torch.tensor([9]), (300000,), stream=2).double()
    assert abs(float(z.mean())) < 0.01
    assert abs(float(z.std()) - 1) < 0.01
    assert abs(float((z**4).mean()) - 3) < 0.1


def test_seeds_and_streams_are_uncorrelated() -> None:
    a, b = counter_rng.normal(torch.tensor([1, 2]), (100000,), stream=3)
    c = counter_rng.normal(torch.tensor([1]), (100000,), stream=4)[0]
    for other in (b, c):
        assert abs(float(torch.corrcoef(torch.stack([a, other]))[0, 1])) < 0.02
    neighbours = torch.corrcoef(torch.stack([a[:-1], a[1:]]))[0, 1]
    assert abs(float(neighbours)) < 0.02


def test_prefixes_agree_for_any_count() -> None:
    """The value at an index does not depend on how many values were drawn."""
    short = counter_rng.uniform(torch.tensor([5]), (10,), stream=0)
    long = counter_rng.uniform(torch.tensor([5]), (1000,), stream=0)
    assert torch.equal(short, long[:, :10])


def test_normal_table_gives_the_computed_quantiles() -> None:
    """Large draws look quantiles up in a table; they equal the quantiles computed."""
    seed = torch.tensor([17, 4])
    for dtype in (torch.float32, torch.float64):
        large = counter_rng.normal(seed, (3, 200, 200), stream=12, dtype=dtype)
        words = counter_rng.random_bits(seed, 3 * 200 * 200 // 2, 12)
        halves = words.view(torch.int16)
        expected = counter_rng._quantiles(halves, dtype).view(2, 3, 200, 200)
        assert torch.equal(large, expected)


def test_uniform_streams_are_the_streams_side_by_side() -> None:
    seeds = torch.tensor([0, 77, 2**32 - 1])
    counts, streams = [12, 0, 5, 30], [41, 48, 55, 3]
    joined = counter_rng.uniform_streams(seeds, counts, streams, torch.float64)
    parts = [
        counter_rng.uniform(seeds, (n,), s, torch.float64)
        for n, s in zip(counts, streams, strict=True)
    ]
    assert torch.equal(joined, torch.cat(parts, dim=1))
    assert counter_rng.uniform_streams(seeds, [], []).shape == (3, 0)
