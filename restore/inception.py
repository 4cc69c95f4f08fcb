"""The Inception-v3 network of FID, in plain torch, filled from a local weight file.

Standard FID (Heusel et al. 2017) compares the 2048-d pool features of one specific
Inception-v3: the TensorFlow graph ``inception-2015-12-05`` of the original FID code. The
``pytorch-fid`` package ports it to PyTorch and publishes its weights as
``pt_inception-2015-12-05-6726825d.pth`` (``https://github.com/mseitzer/pytorch-fid``,
release ``fid_weights``; Apache-2.0). ``InceptionFeatures`` rebuilds that network so that
this file loads into it key for key, and computes the features as ``pytorch-fid`` does:

1. resize bilinearly to 299 x 299 (``align_corners=False``, no antialiasing);
2. map [0, 1] to [-1, 1];
3. run torchvision's Inception-v3 layout (``Conv2d_1a_3x3`` ... ``Mixed_7c``; every
   convolution without bias, then BatchNorm with ``eps = 0.001``, then ReLU) with the
   graph's four differences from torchvision's blocks: the average pools of the 35x35
   (``Mixed_5b``-``5d``), 17x17 (``Mixed_6b``-``6e``) and first 8x8 (``Mixed_7b``) blocks
   leave the zero padding out of the mean (``count_include_pad=False``), and the pool
   branch of the last block (``Mixed_7c``) takes a 3x3 max instead of an average;
4. average over the final 8 x 8 map: the features ``(B, 2048)``.

The file's 1008-way classifier (``fc.weight``, ``fc.bias``) is loaded, so that every key
is accounted for, but never used. Nothing here downloads anything; the file is read with
``torch.load(weights_only=True)``, which refuses, never runs, a pickle that would run code.

Reference: C. Szegedy, V. Vanhoucke, S. Ioffe, J. Shlens, Z. Wojna, "Rethinking the
Inception Architecture for Computer Vision", CVPR 2016.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checkpoint import read_weights_only

__all__ = ["FEATURES", "INCEPTION_SIZE", "InceptionFeatures"]

#: Side of the square the images are resized to.
INCEPTION_SIZE = 299
#: Length of a feature vector.
FEATURES = 2048
#: Classes of the classifier stored in the weight file (ImageNet plus 8 unused).
_CLASSES = 1008
#: How many keys an error message lists before it says "...".
_SHOWN = 5

Size = int | tuple[int, int]


class _ConvBN(nn.Module):
    """Convolution without bias, BatchNorm (eps 0.001), ReLU: torchvision's BasicConv2d."""

    def __init__(
        self, c_in: int, c_out: int, kernel: Size, stride: int = 1, padding: Size = 0
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


def _mean_pool(x: Tensor) -> Tensor:
    """3x3 mean over the pixels inside the image only (TensorFlow's SAME average pool)."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def _max_pool(x: Tensor) -> Tensor:
    return F.max_pool2d(x, 3, stride=1, padding=1)


class _Block35(nn.Module):
    """The 35x35 block (torchvision's InceptionA): 64 + 64 + 96 + ``pool`` channels."""

    def __init__(self, c_in: int, pool: int) -> None:
        super().__init__()
        self.branch1x1 = _ConvBN(c_in, 64, 1)
        self.branch5x5_1 = _ConvBN(c_in, 48, 1)
        self.branch5x5_2 = _ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _ConvBN(c_in, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, padding=1)
        self.branch_pool = _ConvBN(c_in, pool, 1)

    def forward(self, x: Tensor) -> Tensor:
        wide = self.branch5x5_2(self.branch5x5_1(x))
        deep = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        pooled = self.branch_pool(_mean_pool(x))
        return torch.cat([self.branch1x1(x), wide, deep, pooled], dim=1)


class _Reduce35(nn.Module):
    """35x35 to 17x17 (torchvision's InceptionB): 384 + 96 + ``c_in`` channels."""

    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.branch3x3 = _ConvBN(c_in, 384, 3, stride=2)
        self.branch3x3dbl_1 = _ConvBN(c_in, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        deep = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), deep, F.max_pool2d(x, 3, stride=2)], dim=1)


class _Block17(nn.Module):
    """The 17x17 block (torchvision's InceptionC) with factorised 7x7 convolutions of
    ``c7`` channels: 4 x 192 channels."""

    def __init__(self, c_in: int, c7: int) -> None:
        super().__init__()
        row, column = ((1, 7), (0, 3)), ((7, 1), (3, 0))  # (kernel, padding)
        self.branch1x1 = _ConvBN(c_in, 192, 1)
        self.branch7x7_1 = _ConvBN(c_in, c7, 1)
        self.branch7x7_2 = _ConvBN(c7, c7, row[0], padding=row[1])
        self.branch7x7_3 = _ConvBN(c7, 192, column[0], padding=column[1])
        self.branch7x7dbl_1 = _ConvBN(c_in, c7, 1)
        self.branch7x7dbl_2 = _ConvBN(c7, c7, column[0], padding=column[1])
        self.branch7x7dbl_3 = _ConvBN(c7, c7, row[0], padding=row[1])
        self.branch7x7dbl_4 = _ConvBN(c7, c7, column[0], padding=column[1])
        self.branch7x7dbl_5 = _ConvBN(c7, 192, row[0], padding=row[1])
        self.branch_pool = _ConvBN(c_in, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        wide = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        deep = self.branch7x7dbl_1(x)
        for conv in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4):
            deep = conv(deep)
        deep = self.branch7x7dbl_5(deep)
        pooled = self.branch_pool(_mean_pool(x))
        return torch.cat([self.branch1x1(x), wide, deep, pooled], dim=1)


class _Reduce17(nn.Module):
    """17x17 to 8x8 (torchvision's InceptionD): 320 + 192 + ``c_in`` channels."""

    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.branch3x3_1 = _ConvBN(c_in, 192, 1)
        self.branch3x3_2 = _ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _ConvBN(c_in, 192, 1)
        self.branch7x7x3_2 = _ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _ConvBN(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        narrow = self.branch3x3_2(self.branch3x3_1(x))
        deep = self.branch7x7x3_1(x)
        for conv in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            deep = conv(deep)
        return torch.cat([narrow, deep, F.max_pool2d(x, 3, stride=2)], dim=1)


class _Block8(nn.Module):
    """The 8x8 block (torchvision's InceptionE): 320 + 2 x 384 + 2 x 384 + 192 = 2048
    channels. ``max_pool`` picks the pool branch's 3x3 max (``Mixed_7c`` of the FID
    graph) over its mean (``Mixed_7b``)."""

    def __init__(self, c_in: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = _ConvBN(c_in, 320, 1)
        self.branch3x3_1 = _ConvBN(c_in, 384, 1)
        self.branch3x3_2a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _ConvBN(c_in, 448, 1)
        self.branch3x3dbl_2 = _ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = _ConvBN(c_in, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        narrow = self.branch3x3_1(x)
        deep = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = self.branch_pool(_max_pool(x) if self.max_pool else _mean_pool(x))
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch3x3_2a(narrow),
                self.branch3x3_2b(narrow),
                self.branch3x3dbl_3a(deep),
                self.branch3x3dbl_3b(deep),
                pooled,
            ],
            dim=1,
        )


class InceptionFeatures(nn.Module):
    """The FID Inception-v3 up to its global average pool (see the module docstring).

    ``InceptionFeatures()`` holds random weights; ``InceptionFeatures.from_file`` fills it
    from ``pytorch-fid``'s ``pt_inception-2015-12-05-6726825d.pth``. Its ``state_dict()``
    has exactly that file's keys (``Conv2d_1a_3x3.conv.weight``,
    ``Mixed_5b.branch1x1.bn.running_mean``, ..., ``fc.bias``).

    Example:
        >>> inception = InceptionFeatures.from_file("weights/pt_inception-2015-12-05-6726825d.pth")
        >>> inception(images)  # (B, 2048) float32, for images (B, 3, H, W) in [0, 1]
    """

    def __init__(self) -> None:
        super().__init__()
        # 299 -> 149 -> 147 -> 147 -> (max) 73 -> 73 -> 71 -> (max) 35
        self.Conv2d_1a_3x3 = _ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = _ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = _ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = _ConvBN(80, 192, 3)
        self.Mixed_5b = _Block35(192, pool=32)
        self.Mixed_5c = _Block35(256, pool=64)
        self.Mixed_5d = _Block35(288, pool=64)
        self.Mixed_6a = _Reduce35(288)
        self.Mixed_6b = _Block17(768, c7=128)
        self.Mixed_6c = _Block17(768, c7=160)
        self.Mixed_6d = _Block17(768, c7=160)
        self.Mixed_6e = _Block17(768, c7=192)
        self.Mixed_7a = _Reduce17(768)
        self.Mixed_7b = _Block8(1280, max_pool=False)
        self.Mixed_7c = _Block8(2048, max_pool=True)
        self.fc = nn.Linear(FEATURES, _CLASSES)  # in the file; not used

    @classmethod
    def from_file(cls, path: str | Path) -> InceptionFeatures:
        """The network with the weights of ``pytorch-fid``'s
        ``pt_inception-2015-12-05-6726825d.pth`` at ``path``, frozen and in eval mode, on
        the CPU. Every key of the file must be one of the network's, and every key of the
        network must be in the file, in the same shape; only the BatchNorm counters
        ``*.num_batches_tracked``, which inference never reads, may be absent.

        Raises:
            ValueError: a file that is missing, unreadable, would need unrestricted
                unpickling, holds other keys or shapes, or values that are not finite;
                the message names the file and the keys at fault.
        """
        path = Path(path)
        expected = "pytorch-fid's FID Inception weights (pt_inception-2015-12-05-6726825d.pth)"
        if not path.is_file():
            raise ValueError(f"{path}: no such weight file (expected {expected})")
        state: Any = read_weights_only(path, "torch weight file")
        if not isinstance(state, dict):
            raise ValueError(f"{path}: holds a {type(state).__name__}, expected {expected}")
        network = cls()
        own = network.state_dict()
        problems = _mismatches(state, own)
        if problems:
            hint = ""
            if any(str(key).startswith("AuxLogits.") for key in state):
                hint = " (torchvision's Inception-v3 weights are another network)"
            raise ValueError(f"{path}: not {expected}{hint}: " + "; ".join(problems))
        for key, value in state.items():
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise ValueError(f"{path}: {key} holds NaN or infinite values")
        network.load_state_dict({**own, **state})
        return network.eval().requires_grad_(False)

    def forward(self, images: Tensor) -> Tensor:
        """Pool features ``(B, 2048)`` (float32, on the network's device) of images
        ``(B, 3, H, W)`` in [0, 1], any size (they are resized to 299 x 299)."""
        _check_images(images)
        weight = self.fc.weight
        x = images.to(weight.device, weight.dtype)
        x = F.interpolate(
            x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False
        )
        x = 2.0 * x - 1.0
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        mixed: tuple[nn.Module, ...] = (
            self.Mixed_5b, self.Mixed_5c, self.Mixed_5d,  # 35 x 35
            self.Mixed_6a, self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e,  # 17
            self.Mixed_7a, self.Mixed_7b, self.Mixed_7c,  # 8 x 8
        )  # fmt: skip
        for block in mixed:
            x = block(x)
        return x.mean(dim=(2, 3))


def _mismatches(state: dict[Any, Any], own: dict[str, Tensor]) -> list[str]:
    """What keeps ``state`` from loading strictly into a network whose state dict is
    ``own``: missing and unexpected keys, values that are not tensors of the right shape
    (the first few of each)."""
    optional = {key for key in own if key.endswith(".num_batches_tracked")}
    missing = [key for key in own if key not in state and key not in optional]
    unexpected = [str(key) for key in state if key not in own]
    wrong = []
    for key, value in state.items():
        if key not in own:
            continue
        if not isinstance(value, Tensor):
            wrong.append(f"{key} is a {type(value).__name__}")
        elif value.is_floating_point() != own[key].is_floating_point():
            wrong.append(f"{key} is {value.dtype}, expected {own[key].dtype}")
        elif value.shape != own[key].shape:
            wrong.append(f"{key} has shape {tuple(value.shape)}, expected {tuple(own[key].shape)}")
    problems = []
    for what, keys in (("missing keys", missing), ("unexpected keys", unexpected)):
        if keys:
            more = f" and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else ""
            problems.append(f"{what} {keys[:_SHOWN]}{more}")
    if wrong:
        more = f" and {len(wrong) - _SHOWN} more" if len(wrong) > _SHOWN else ""
        problems.append("; ".join(wrong[:_SHOWN]) + more)
    return problems


def _check_images(images: Tensor) -> None:
    if not isinstance(images, Tensor) or not images.is_floating_point():
        kind = images.dtype if isinstance(images, Tensor) else type(images).__name__
        raise TypeError(f"images must be a floating-point tensor, got {kind}")
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[0] == 0:
        raise ValueError(f"images must be (B, 3, H, W) with B >= 1, got {tuple(images.shape)}")
    if not bool(((images >= 0) & (images <= 1)).all()):
        low, high = float(images.min()), float(images.max())
        raise ValueError(f"images must hold values in [0, 1], got [{low:.4g}, {high:.4g}]")
