"""Where and how the network runs: the device, bf16 autocast and the memory format."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["autocast", "resolve_device", "use_bf16", "use_channels_last"]


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` is CUDA when present, else the CPU; a named CUDA device must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}") from error
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device {name!r} asked for, but no CUDA device is available")
        if device.index is not None and device.index >= count:
            raise ValueError(f"device {name!r} asked for, but there are {count} CUDA devices")
    return device


def use_bf16(device: torch.device, amp: str = "auto") -> bool:
    """bf16 autocast: on CUDA by default (``auto``), forced by ``bf16``, never by ``off``."""
    return amp == "bf16" or (amp == "auto" and device.type == "cuda")


def use_channels_last(device: torch.device, setting: str = "auto") -> bool:
    """channels_last tensors: on CUDA by default (tensor cores like NHWC)."""
    return setting == "on" or (setting == "auto" and device.type == "cuda")


@contextlib.contextmanager
def autocast(device: torch.device, enabled: bool) -> Iterator[None]:
    """bf16 autocast on ``device`` when ``enabled`` (a no-op otherwise)."""
    if not enabled:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
        yield
