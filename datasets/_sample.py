"""The sample contract every skyclear dataset yields, and the crop they share.

A sample is a dict of tensors:

* ``degraded``: ``(3, h, w)`` float32 sRGB in [0, 1];
* ``clean``: ``(3, h, w)`` float32 sRGB in [0, 1];
* ``masks``: ``(4, h, w)`` float32 in [0, 1], channels low, haze, rain, snow (zeros when
  the data has none; see ``has_masks``);
* ``tier``: int64 scalar, the index of the tier in ``skyclear.degrade.TIERS``;
* ``presence``: ``(4,)`` float32, which degradations the tier holds;
* ``has_masks``: bool scalar, whether ``masks`` is ground truth;
* with a ``removal`` (``datasets.partial``) also ``target``, ``(3, h, w)``: the clean photo
  degraded by what the sample keeps, and ``remove``, ``(4,)`` float32: what it removes.

With ``uint8=True`` a dataset yields ``degraded``, ``clean`` and ``masks`` as the uint8
codes ``round(255 x)`` instead (same shapes): a quarter of the bytes to pass from loader
workers to the training process, or to a GPU. ``as_float`` turns such a sample or batch
into the float contract where it is used.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

import numpy as np
import torch
from numpy.typing import NDArray
from skyclear.degrade.names import TIERS
from skyclear.degrade.store.format import presence_of
from torch import Tensor

__all__ = ["IMAGE_KEYS", "Crop", "Sample", "as_float", "make_sample"]

#: The fields that hold pixels (uint8 codes with ``uint8=True``).
IMAGE_KEYS = ("degraded", "clean", "masks", "target")


class Sample(TypedDict):
    degraded: Tensor
    clean: Tensor
    masks: Tensor
    tier: Tensor
    presence: Tensor
    has_masks: Tensor
    target: NotRequired[Tensor]
    remove: NotRequired[Tensor]


class Crop:
    """The same crop for every field of a sample: random (training) or centred.

    Args:
        size: side of the square crop, or ``None`` for the full image.
        random: draw the corner from torch's RNG (seeded per DataLoader worker) instead of
            taking the centre.
    """

    def __init__(self, size: int | None = None, random: bool = True) -> None:
        if size is not None and (not isinstance(size, int) or size < 1):
            raise ValueError(f"crop size must be a positive int or None, got {size!r}")
        self.size = size
        self.random = random

    def window(self, height: int, width: int) -> tuple[slice, slice]:
        """Row and column slices of the crop in an image of ``height`` x ``width``."""
        if self.size is None:
            return slice(0, height), slice(0, width)
        if self.size > min(height, width):
            raise ValueError(f"crop {self.size} is larger than the image ({height}x{width})")
        if self.random:
            top = int(torch.randint(0, height - self.size + 1, ()))
            left = int(torch.randint(0, width - self.size + 1, ()))
        else:
            top, left = (height - self.size) // 2, (width - self.size) // 2
        return slice(top, top + self.size), slice(left, left + self.size)


def _image(array: NDArray[np.uint8], uint8: bool) -> Tensor:
    """``(h, w, 3)`` uint8 to ``(3, h, w)``: float32 in [0, 1], or the codes themselves."""
    codes = torch.from_numpy(_owned(array)).permute(2, 0, 1)
    return codes.contiguous() if uint8 else codes.float().div_(255.0)


def _owned(array: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """A C-contiguous, writable array (a copy only when the reader's array is neither)."""
    return np.require(array, requirements=["C", "W"])


def make_sample(
    degraded: NDArray[np.uint8],
    clean: NDArray[np.uint8],
    masks: NDArray[np.uint8] | None,
    tier: str,
    uint8: bool = False,
) -> Sample:
    """Build a sample from already-cropped uint8 arrays (HWC images, CHW masks); with
    ``uint8`` the pixels stay uint8 codes (see the module docstring)."""
    height, width = degraded.shape[:2]
    if masks is None:
        mask_tensor = torch.zeros(4, height, width, dtype=torch.uint8 if uint8 else torch.float32)
    else:
        mask_tensor = torch.from_numpy(_owned(masks))
        if not uint8:
            mask_tensor = mask_tensor.float().div_(255.0)
    return Sample(
        degraded=_image(degraded, uint8),
        clean=_image(clean, uint8),
        masks=mask_tensor,
        tier=torch.tensor(TIERS.index(tier), dtype=torch.int64),
        presence=torch.from_numpy(presence_of(tier)),
        has_masks=torch.tensor(masks is not None),
    )


def as_float(sample: dict[str, Tensor]) -> dict[str, Tensor]:
    """A sample or batch with uint8 pixel fields scaled to float32 in [0, 1] (on their
    device); float fields are returned as they are."""
    return {
        key: value.float().div_(255.0)
        if key in IMAGE_KEYS and value.dtype == torch.uint8
        else value
        for key, value in sample.items()
    }
