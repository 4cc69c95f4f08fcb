"""One process or many: what ``torchrun`` tells a training process, and the few
collective operations the loop needs (all no-ops in a single process)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["Processes", "start_processes"]


@dataclass(frozen=True)
class Processes:
    """This process's place among the training processes."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """The process that validates, logs and writes checkpoints."""
        return self.rank == 0

    def any(self, flag: bool, device: torch.device) -> bool:
        """Whether ``flag`` is set in any process (so that all stop at the same step)."""
        if not self.distributed:
            return flag
        value = torch.tensor([int(flag)], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def start_processes(device_type: str) -> Processes:
    """Join the process group when started by ``torchrun`` (``WORLD_SIZE`` > 1): NCCL on
    CUDA, gloo on the CPU. A plain start is a group of one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Processes()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return Processes(rank=rank, world=world, local_rank=local_rank)
