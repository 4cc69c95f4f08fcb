"""How much memory restoring an image takes, how much there is, and which tile fits.

A forward pass without gradients keeps, at its peak, a handful of full-resolution feature
maps: inside a first-level NAF block the block's input, its normalised copy and the
expanded ``2 * width`` channels of its 1x1 and depthwise convolutions, with the skip
connections of every level and the time-conditioned inputs beside them; at the experts,
the backbone's features, each expert's hidden channels and the four stacked increments.
``activation_bytes`` counts those values per pixel from the config (the larger of the two
stages, the skips' geometric sum over levels) and applies a factor measured on a CPU
(``benchmarks/tiles.py --memory`` prints estimate against measured peak), so the estimate errs on
the high side: a photo the estimate lets through whole fits.
"""

from __future__ import annotations

import os

import torch

from .nn import ModelConfig

__all__ = ["activation_bytes", "available_bytes", "fitting_tile"]

#: Measured peak over the values counted below (allocator slack, temporaries the count
#: leaves out), rounded up, and what a first evaluation allocates whatever the size
#: (kernels' scratch, thread pools); see ``benchmarks/tiles.py --memory``.
_SLACK = 1.6
_FIXED = 192 * 2**20


def _values_per_pixel(config: ModelConfig) -> float:
    width = config.width
    skips = sum(width * 2**level / 4**level for level in range(len(config.encoder_blocks)))
    inputs = 3 * 4  # degraded, x_t, their concatenation (6)
    block = 6 * width  # input, normalised copy, 1x1 expansion (2w), depthwise output (2w)
    if not config.experts:
        return inputs + skips + block
    # upsampled coarse features, detail features, their concatenation, the maps
    parser = 8 + 2 * config.parser_width + (8 + config.parser_width) + 4
    # the features, one expert's branch at a time (three tensors of its width alive), the
    # four stacked increments with their routed copy and sum
    experts = width + 3 + 3 * config.expert_width + 4 * 3 * 3 + parser
    return inputs + skips + max(block, experts)


def activation_bytes(config: ModelConfig, height: int, width: int, bytes_per_value: int = 4) -> int:
    """Estimated peak memory of one network evaluation on a ``height`` x ``width`` image
    (padded to the network's grid), in bytes; ``bytes_per_value`` 2 under bf16 autocast."""
    multiple = config.multiple
    pixels = (-(-height // multiple) * multiple) * (-(-width // multiple) * multiple)
    return int(_SLACK * _values_per_pixel(config) * pixels * bytes_per_value) + _FIXED


def available_bytes(device: torch.device) -> int:
    """Memory free for new tensors on ``device``: on CUDA what the driver reports free plus
    what PyTorch holds cached but unused; on the CPU the kernel's estimate of memory
    available without swapping (``MemAvailable``), or the free physical pages elsewhere."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + cached)
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def fitting_tile(
    config: ModelConfig, height: int, width: int, budget: int, bytes_per_value: int = 4
) -> int:
    """0 when the whole image fits in ``budget`` bytes; else the largest tile side (a
    multiple of 64 and of the network's grid) whose windows fit, at least the smallest
    tile the network takes."""
    if activation_bytes(config, height, width, bytes_per_value) <= budget:
        return 0
    step = max(64, config.multiple)
    tile = (max(height, width) // step) * step
    while tile > step and activation_bytes(config, tile, tile, bytes_per_value) > budget:
        tile -= step
    return max(tile, 2 * config.multiple)
