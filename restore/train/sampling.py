"""Training batches as a pure function of (seed, step): exact resume with any worker count.

The sample stream is the concatenation of one permutation of the dataset per epoch (each
seeded by ``(seed, epoch)``); optimizer step ``s`` takes positions ``[s B, (s + 1) B)`` of
it, and process ``r`` of ``R`` the ``r``-th slice of ``B / R`` of those. The random crop
of a sample (and, for on-the-fly synthesis, its epoch) is seeded by ``(seed, epoch,
index)`` inside whichever worker loads it. Resuming at step ``s`` therefore reproduces
the same batches, bit for bit, whatever the number of workers or which worker loads what.
"""

from __future__ import annotations

import os
import signal
import types
from collections.abc import Iterator
from typing import Any

import torch
from skyclear.degrade.seeding import entropy_seed
from torch.utils.data import DataLoader, Dataset, Sampler

__all__ = ["SeededSamples", "StepSampler", "training_loader"]


class StepSampler(Sampler[tuple[int, int]]):
    """Endless ``(epoch, index)`` pairs for one process, starting at ``start_step``.

    Args:
        size: samples in the dataset.
        batch_size: samples per step over all processes.
        seed: seeds each epoch's permutation.
        start_step: the first step to draw.
        rank: this process's rank; ``world``: the number of processes.
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        seed: int,
        start_step: int = 0,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        if size < 1:
            raise ValueError("the dataset is empty")
        if batch_size % world:
            raise ValueError(f"batch size {batch_size} is not divisible by {world} processes")
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.start_step, self.rank, self.world = start_step, rank, world
        self._epoch = -1
        self._order = torch.empty(0, dtype=torch.int64)

    @property
    def per_process(self) -> int:
        return self.batch_size // self.world

    def position(self, position: int) -> tuple[int, int]:
        """The ``(epoch, index)`` at a position of the stream."""
        epoch, offset = divmod(position, self.size)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(entropy_seed(self.seed, epoch))
            self._order = torch.randperm(self.size, generator=generator)
            self._epoch = epoch
        return epoch, int(self._order[offset])

    def __iter__(self) -> Iterator[tuple[int, int]]:
        step = self.start_step
        while True:
            first = step * self.batch_size + self.rank * self.per_process
            for position in range(first, first + self.per_process):
                yield self.position(position)
            step += 1


class SeededSamples(Dataset[Any]):
    """Item ``(epoch, index)`` of ``dataset``, with torch's RNG (which draws the crops)
    seeded by ``(seed, epoch, index)`` for the call and restored afterwards."""

    def __init__(self, dataset: Dataset[Any], seed: int) -> None:
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        set_epoch = getattr(self.dataset, "set_epoch", None)
        if set_epoch is not None:
            set_epoch(epoch)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(entropy_seed(self.seed, epoch, index))
            return self.dataset[index]


def _worker_init(worker_id: int) -> None:
    torch.set_num_threads(1)
    # Ctrl-C, torchrun and batch schedulers signal the whole process group. SIGINT is the
    # training process's to handle (it saves, then exits), so workers ignore it. SIGTERM
    # must still end a worker (the DataLoader and multiprocessing stop workers with it),
    # but quietly: a worker killed by a signal makes torch raise in the training process
    # at an arbitrary point, one that exits with status 0 only fails a later fetch, and
    # the training process, signalled too, saves and stops before fetching again.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_quietly)


def _exit_quietly(number: int, frame: types.FrameType | None) -> None:
    os._exit(0)


def training_loader(
    dataset: Dataset[Any], sampler: StepSampler, workers: int, pin_memory: bool, seed: int
) -> DataLoader[Any]:
    """An endless DataLoader of per-process batches drawn by ``sampler``."""
    return DataLoader(
        SeededSamples(dataset, seed),
        batch_size=sampler.per_process,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin_memory,
        worker_init_fn=_worker_init if workers else None,
        prefetch_factor=4 if workers else None,
    )
