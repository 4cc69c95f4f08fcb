"""Perceptual metrics from weight files the user already has: LPIPS, and the Fréchet
distance behind FID.

Nothing here downloads anything. LPIPS is rebuilt in plain torch and filled from two
local files, both read with ``torch.load(weights_only=True)`` (a file that would run code
when unpickled is refused, never executed):

* the AlexNet ImageNet weights of torchvision (``alexnet-owt-7be5be79.pth``, published
  by the PyTorch project at ``https://download.pytorch.org/models/``; BSD-3-Clause): a
  state dict whose ``features.0``, ``features.3``, ``features.6``, ``features.8`` and
  ``features.10`` convolutions are used (``classifier.*`` and any other key is ignored);
* the learned linear layers of LPIPS v0.1 for AlexNet (``alex.pth``, shipped inside the
  ``lpips`` package as ``lpips/weights/v0.1/alex.pth`` and in the repository
  ``richzhang/PerceptualSimilarity``; BSD-2-Clause): keys ``lin0.model.1.weight`` ...
  ``lin4.model.1.weight`` of shapes ``(1, C, 1, 1)``.

Reference: R. Zhang, P. Isola, A. A. Efros, E. Shechtman, O. Wang, "The Unreasonable
Effectiveness of Deep Features as a Perceptual Metric", CVPR 2018.

FID (Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium", NeurIPS 2017) is the Fréchet distance between Gaussians fitted to the
features of two image sets. The standard number uses the 2048-d pool features of one
specific Inception-v3 network: skyclear implements it (``inception.InceptionFeatures``),
and its weights come from the user's local copy of ``pytorch-fid``'s
``pt_inception-2015-12-05-6726825d.pth`` (``fid_from_file``). ``fid`` takes any feature
extractor; its value compares only between runs that use the same extractor (and, FID
being biased in the number of images, the same number of images).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import Tensor, nn

from .checkpoint import read_weights_only
from .inception import InceptionFeatures

__all__ = [
    "LPIPS",
    "LPIPS_MIN_SIZE",
    "feature_statistics",
    "features_frechet_distance",
    "fid",
    "fid_from_file",
    "frechet_distance",
]

#: Output channels of the five AlexNet convolutions whose activations LPIPS compares.
_CHANNELS = (64, 192, 384, 256, 256)
#: Index of each of those convolutions in torchvision's ``alexnet().features``.
_CONVOLUTIONS = (0, 3, 6, 8, 10)
#: The smallest image side AlexNet's stride-4 stem and two 3/2 max-pools leave room for.
LPIPS_MIN_SIZE = 31


def _alexnet_shapes() -> dict[str, tuple[int, ...]]:
    inputs, kernels = (3, *_CHANNELS[:-1]), (11, 5, 3, 3, 3)
    shapes: dict[str, tuple[int, ...]] = {}
    for index, c_in, c_out, k in zip(_CONVOLUTIONS, inputs, _CHANNELS, kernels, strict=True):
        shapes[f"features.{index}.weight"] = (c_out, c_in, k, k)
        shapes[f"features.{index}.bias"] = (c_out,)
    return shapes


class LPIPS(nn.Module):
    """LPIPS v0.1 with the AlexNet backbone (Zhang et al. 2018).

    For images ``a``, ``b`` in [0, 1]: map to [-1, 1], shift and scale per channel
    (shift ``(-0.030, -0.088, -0.188)``, scale ``(0.458, 0.448, 0.450)``), take the five
    ReLU outputs ``y_l`` of AlexNet's ``features``, unit-normalise each over channels
    (``y / (|y|_2 + 1e-10)``), then
    ``d(a, b) = sum_l mean_hw( w_l · (ŷ_l(a) - ŷ_l(b))² )`` with the learned non-negative
    1x1 weights ``w_l``. Identical images score 0; larger is more different.

    ``LPIPS()`` holds random weights; ``LPIPS.from_files`` fills it from the two local files
    described in this module's docstring. The network's parameters are frozen, but the
    distance is differentiable with respect to the images.

    Example:
        >>> lpips = LPIPS.from_files("weights/alexnet-owt-7be5be79.pth", "weights/alex.pth")
        >>> lpips(restored, clean)  # (B,) distances
    """

    shift: Tensor
    scale: Tensor

    def __init__(self) -> None:
        super().__init__()
        conv = nn.Conv2d
        self.features = nn.Sequential(
            conv(3, 64, 11, stride=4, padding=2), nn.ReLU(),
            nn.MaxPool2d(3, 2),
            conv(64, 192, 5, padding=2), nn.ReLU(),
            nn.MaxPool2d(3, 2),
            conv(192, 384, 3, padding=1), nn.ReLU(),
            conv(384, 256, 3, padding=1), nn.ReLU(),
            conv(256, 256, 3, padding=1), nn.ReLU(),
        )  # fmt: skip
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in _CHANNELS)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))

    @classmethod
    def from_files(cls, alexnet: str | Path, lin: str | Path) -> LPIPS:
        """The metric with torchvision's AlexNet weights (``alexnet``) and the LPIPS v0.1
        linear layers for AlexNet (``lin``), frozen and in eval mode, on the CPU.

        Raises:
            ValueError: a file that is missing, unreadable, would need unrestricted
                unpickling, or lacks a needed key or has it in another shape; the message
                names the file and the problem.
        """
        backbone = _read_weights(
            Path(alexnet), _alexnet_shapes(), "torchvision's AlexNet state dict"
        )
        lin_shapes = {f"lin{i}.model.1.weight": (1, c, 1, 1) for i, c in enumerate(_CHANNELS)}
        lins = _read_weights(Path(lin), lin_shapes, "the LPIPS v0.1 AlexNet linear layers")
        metric = cls()
        metric.features.load_state_dict(
            {key.removeprefix("features."): value for key, value in backbone.items()}
        )
        metric.lins.load_state_dict(
            {f"{i}.weight": lins[f"lin{i}.model.1.weight"] for i in range(len(_CHANNELS))}
        )
        return metric.eval().requires_grad_(False)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        """LPIPS distances ``(B,)`` between two ``(B, 3, H, W)`` batches in [0, 1]
        (``H, W >= LPIPS_MIN_SIZE``)."""
        _check_images(a, b)
        both = torch.cat([a, b]).to(self.shift.device, self.shift.dtype) * 2.0 - 1.0
        x = (both - self.shift) / self.scale
        total = x.new_zeros(len(a))
        layer = 0
        for module in self.features:
            x = module(x)
            if isinstance(module, nn.ReLU):
                unit = x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
                first, second = unit.chunk(2)
                total = total + self.lins[layer]((first - second).pow(2)).mean(dim=(1, 2, 3))
                layer += 1
        return total


def _check_images(a: Tensor, b: Tensor) -> None:
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, Tensor) or not x.is_floating_point():
            kind = x.dtype if isinstance(x, Tensor) else type(x).__name__
            raise TypeError(f"{name} must be a floating-point tensor, got {kind}")
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"{name} must be (B, 3, H, W), got {tuple(x.shape)}")
        if min(x.shape[-2:]) < LPIPS_MIN_SIZE:
            raise ValueError(
                f"{name} is {tuple(x.shape[-2:])} pixels; LPIPS (AlexNet) needs at least "
                f"{LPIPS_MIN_SIZE} on each side"
            )
        if not bool(((x >= 0) & (x <= 1)).all()):
            low, high = float(x.min()), float(x.max())
            raise ValueError(f"{name} must hold values in [0, 1], got [{low:.4g}, {high:.4g}]")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have one shape, got {tuple(a.shape)}, {tuple(b.shape)}")


def _read_weights(
    path: Path, shapes: Mapping[str, tuple[int, ...]], expected: str
) -> dict[str, Tensor]:
    """The tensors ``shapes`` names from a ``torch.save`` state dict at ``path``, float32;
    other keys are ignored."""
    if not path.is_file():
        raise ValueError(f"{path}: no such weight file (expected {expected})")
    state: Any = read_weights_only(path, "torch weight file")
    if not isinstance(state, dict):
        raise ValueError(f"{path}: holds a {type(state).__name__}, expected {expected}")
    missing = [key for key in shapes if key not in state]
    if missing:
        raise ValueError(f"{path}: missing keys {missing}; expected {expected}")
    tensors: dict[str, Tensor] = {}
    for key, shape in shapes.items():
        value = state[key]
        if not isinstance(value, Tensor) or not value.is_floating_point():
            kind = value.dtype if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"{path}: {key} is {kind}, expected a floating-point tensor")
        if tuple(value.shape) != shape:
            raise ValueError(
                f"{path}: {key} has shape {tuple(value.shape)}, expected {shape} ({expected})"
            )
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"{path}: {key} holds NaN or infinite values")
        tensors[key] = value.float()
    return tensors


def feature_statistics(
    features: Tensor | ArrayLike,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean ``(D,)`` and covariance ``(D, D)`` (unbiased, float64) of ``(N, D)`` features,
    ``N >= 2``."""
    array = _feature_array(features, "features")
    return array.mean(axis=0), np.atleast_2d(np.cov(array, rowvar=False))


def _feature_array(features: Tensor | ArrayLike, name: str) -> NDArray[np.float64]:
    if isinstance(features, Tensor):
        features = features.detach().cpu().double().numpy()
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 2:
        raise ValueError(f"{name} must be (N, D) with N >= 2, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} hold NaN or infinite values")
    return array


def features_frechet_distance(first: Tensor | ArrayLike, second: Tensor | ArrayLike) -> float:
    """``frechet_distance`` between the Gaussians fitted (``feature_statistics``) to two
    sets of features ``(N1, D)`` and ``(N2, D)``, ``N1, N2 >= 2``.

    When neither set has more samples than dimensions (a test split of a few hundred
    images against 2048-d Inception features), the covariances ``S_i = A_iᵀ A_i / n_i``
    (``A_i`` the centred features, ``n_i = N_i - 1``) have rank below ``D``, and the cross
    term is computed in sample space instead of from ``D x D`` eigen-decompositions:
    the non-zero eigenvalues of ``S1 S2`` are the squared singular values of
    ``A1 A2ᵀ / sqrt(n1 n2)``, so ``tr((S1 S2)^½)`` is the sum of those singular values.
    The value is the same, without the square roots of round-off-sized eigenvalues of
    rank-deficient covariances; the cost is ``O(N1 N2 D)`` instead of ``O(D³)``.
    """
    a, b = _feature_array(first, "first"), _feature_array(second, "second")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"first and second must have one width D, got {a.shape}, {b.shape}")
    if max(len(a), len(b)) > a.shape[1]:
        return frechet_distance(*feature_statistics(a), *feature_statistics(b))
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    centred_a, centred_b = a - mean_a, b - mean_b
    n_a, n_b = len(a) - 1, len(b) - 1
    cross = np.linalg.svd(centred_a @ centred_b.T, compute_uv=False).sum() / np.sqrt(n_a * n_b)
    spread = np.sum(centred_a**2) / n_a + np.sum(centred_b**2) / n_b
    value = float(np.sum((mean_a - mean_b) ** 2) + spread - 2.0 * cross)
    return max(value, 0.0)  # round-off can leave -1e-13 for equal sets


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """Squared Fréchet (2-Wasserstein) distance between ``N(mu1, sigma1)`` and
    ``N(mu2, sigma2)``:
    ``|mu1 - mu2|² + tr(sigma1) + tr(sigma2) - 2 tr((sigma1^½ sigma2 sigma1^½)^½)``.

    The last trace equals ``tr((sigma1 sigma2)^½)`` of the usual statement; written with
    the symmetric ``sigma1^½ sigma2 sigma1^½`` it comes from two symmetric eigen-
    decompositions in float64, with no complex round-off to discard.
    """
    m1, m2 = (np.asarray(m, dtype=np.float64) for m in (mu1, mu2))
    if m1.ndim != 1 or m1.shape != m2.shape:
        raise ValueError(f"mu1 and mu2 must be (D,) of one length, got {m1.shape}, {m2.shape}")
    s1, s2 = (
        _covariance(s, name, m1.shape[0]) for s, name in ((sigma1, "sigma1"), (sigma2, "sigma2"))
    )
    root1 = _psd_sqrt(s1)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root1 @ s2 @ root1), 0.0, None)).sum()
    value = float(np.sum((m1 - m2) ** 2) + np.trace(s1) + np.trace(s2) - 2.0 * cross)
    return max(value, 0.0)  # round-off can leave -1e-13 for equal statistics


def _covariance(sigma: ArrayLike, name: str, dim: int) -> NDArray[np.float64]:
    s = np.asarray(sigma, dtype=np.float64)
    if s.shape != (dim, dim):
        raise ValueError(f"{name} must be ({dim}, {dim}), got {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    scale = max(float(np.abs(s).max()), 1e-300)
    if not np.allclose(s, s.T, rtol=0.0, atol=1e-9 * scale):
        raise ValueError(f"{name} is not symmetric")
    s = (s + s.T) / 2.0
    if np.linalg.eigvalsh(s).min() < -1e-6 * scale:
        raise ValueError(f"{name} is not positive semi-definite")
    return s


def _psd_sqrt(s: NDArray[np.float64]) -> NDArray[np.float64]:
    values, vectors = np.linalg.eigh(s)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def fid(
    extract: Callable[[Tensor], Tensor], first: Iterable[Tensor], second: Iterable[Tensor]
) -> float:
    """Fréchet distance between the features ``extract`` gives two sets of image batches
    (each an iterable of ``(B, 3, H, W)``; at least two images in each set), computed
    without gradients.

    Standard FID is this with ``extract`` an ``inception.InceptionFeatures`` filled from
    ``pytorch-fid``'s weights (``fid_from_file``); with any other extractor, compare numbers
    only between runs that used the same one.
    """

    def features(batches: Iterable[Tensor]) -> Tensor:
        with torch.no_grad():
            chunks = [extract(batch).flatten(1).double().cpu() for batch in batches]
        if not chunks:
            raise ValueError("fid needs at least one batch of images in each set")
        return torch.cat(chunks)

    return features_frechet_distance(features(first), features(second))


def fid_from_file(
    inception: str | Path,
    first: Iterable[Tensor],
    second: Iterable[Tensor],
    device: str | torch.device = "cpu",
) -> float:
    """Standard FID between two sets of image batches (each an iterable of
    ``(B, 3, H, W)`` in [0, 1], any size; at least two images in each set), with the
    Inception-v3 weights of ``pytorch-fid`` read from the local file ``inception``
    (``pt_inception-2015-12-05-6726825d.pth``), run on ``device``.

    pytorch-fid reads image files, so its numbers are those of 8-bit images: quantise
    (``metrics.quantize8``) to match them exactly. The batch size does not change the
    value beyond float round-off.

    Raises:
        ValueError: an unusable weight file (see ``InceptionFeatures.from_file``), images
            outside the contract, or a set of fewer than two images.

    Example:
        >>> fid_from_file("weights/pt_inception-2015-12-05-6726825d.pth",
        ...               restored.split(16), clean.split(16), device="cuda")
    """
    return fid(InceptionFeatures.from_file(inception).to(device), first, second)
