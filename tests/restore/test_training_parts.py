"""The pieces of the training loop: batch order, crops, learning rate, EMA."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import torch
from skyclear.datasets import CDD11Zarr
from skyclear.restore.config import OptimConfig
from skyclear.restore.train.optim import EMA, learning_rate
from skyclear.restore.train.sampling import SeededSamples, StepSampler, training_loader


def _take(sampler: StepSampler, count: int) -> list[tuple[int, int]]:
    return list(itertools.islice(iter(sampler), count))


def test_stream_covers_each_epoch_once_and_resumes_exactly() -> None:
    stream = _take(StepSampler(10, 4, seed=3), 20)
    assert sorted(i for e, i in stream[:10]) == list(range(10))
    assert {e for e, _ in stream[:10]} == {0} and {e for e, _ in stream[10:]} == {1}
    assert _take(StepSampler(10, 4, seed=3, start_step=2), 12) == stream[8:20]
    assert _take(StepSampler(10, 4, seed=4), 10) != stream[:10]


def test_processes_split_each_step_between_them() -> None:
    single = _take(StepSampler(7, 4, seed=0), 12)
    ranks = [_take(StepSampler(7, 4, seed=0, rank=r, world=2), 6) for r in range(2)]
    for step in range(3):
        together = ranks[0][2 * step : 2 * step + 2] + ranks[1][2 * step : 2 * step + 2]
        assert together == single[4 * step : 4 * step + 4]


def test_crops_do_not_depend_on_the_worker(store: Path) -> None:
    dataset = CDD11Zarr(store, split="train", crop=16)
    batches = {}
    for workers in (0, 2):
        loader = training_loader(dataset, StepSampler(len(dataset), 4, 1), workers, False, 1)
        batches[workers] = [batch["degraded"] for batch in itertools.islice(loader, 3)]
    for one, two in zip(batches[0], batches[2], strict=True):
        assert torch.equal(one, two)
    state = torch.get_rng_state()
    SeededSamples(dataset, 1)[(0, 0)]
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is left alone


def test_learning_rate_warms_up_then_follows_the_cosine() -> None:
    optim = OptimConfig(lr=1.0, min_lr=0.1, warmup_steps=4)
    assert [learning_rate(s, 100, optim) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert learning_rate(4, 100, optim) == 1.0
    assert math.isclose(learning_rate(52, 100, optim), 0.55)
    assert math.isclose(learning_rate(100, 100, optim), 0.1)


def test_ema_averages_with_a_warm_up() -> None:
    module = torch.nn.Linear(2, 1)
    with torch.no_grad():
        module.weight.fill_(0.0)
    ema = EMA(module, decay=0.9)
    with torch.no_grad():
        module.weight.fill_(1.0)
    ema.update(module)  # decay min(0.9, 2/11)
    assert torch.allclose(ema.shadow["weight"], torch.full((1, 2), 1 - 2 / 11))
    for _ in range(200):
        ema.update(module)
    assert torch.allclose(ema.shadow["weight"], torch.ones(1, 2))
