"""What a measurement ran on: the CPU, the GPU, torch and Python."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

__all__ = ["describe_machine"]


def describe_machine(device: torch.device | str = "cpu") -> dict[str, str | int | None]:
    """The CPU model and core count, the GPU's name where ``device`` is a CUDA device
    (else ``None``), the versions of torch and Python and the operating system."""
    device = torch.device(device)
    gpu = None
    if device.type == "cuda":
        gpu = torch.cuda.get_device_name(device)
    return {
        "device": str(device),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpu": gpu,
        "torch": torch.__version__,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _cpu_model() -> str:
    """The CPU's model name: from /proc/cpuinfo on Linux, else what platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model"):
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"
