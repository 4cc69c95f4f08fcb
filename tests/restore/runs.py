"""Training configs cut down to seconds of CPU, shared by the restore tests."""

from __future__ import annotations

from skyclear.restore.config import TrainConfig, override, preset


def quick_config(*assignments: str) -> TrainConfig:
    """The tiny preset cut down to seconds of CPU: 32-pixel crops, no loader workers."""
    return override(
        preset("tiny"),
        [
            "steps=6",
            "data.batch_size=4",
            "data.crop=32",
            "data.workers=0",
            "data.val_samples=4",
            "data.grid_samples=2",
            "log_every=2",
            "val_every=3",
            "ckpt_every=3",
            "optim.warmup_steps=2",
            "device=cpu",
            *assignments,
        ],
    )
