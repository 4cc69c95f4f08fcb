"""The contract every operator keeps (one test template, run over every operator)."""

from __future__ import annotations

import pytest
import torch
from skyclear.degrade import OpResult

from .operators import NAMES, OPERATORS, ZERO


def _run(name: str, x: torch.Tensor, seed: int = 0) -> OpResult:
    return OPERATORS[name](x, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_range_finite(name: str, image: torch.Tensor) -> None:
    out = _run(name, image)
    assert out.image.shape == image.shape
    assert out.image.dtype == image.dtype
    assert out.mask.shape == (image.shape[0], 1, *image.shape[-2:])
    assert torch.isfinite(out.image).all() and torch.isfinite(out.mask).all()
    assert out.image.min() >= 0 and out.image.max() <= 1
    assert out.mask.min() >= 0 and out.mask.max() <= 1
    assert (out.image - image).abs().mean() > 1e-3, "the default operator must do something"
    assert out.mask.max() > 0.05, "the mask must show the degradation"


@pytest.mark.parametrize("name", NAMES)
def test_params_are_per_sample(name: str, image: torch.Tensor) -> None:
    out = _run(name, image)
    assert set(out.params) == set(OPERATORS[name].param_names)
    for key, value in out.params.items():
        assert value.shape[0] == image.shape[0], key


@pytest.mark.parametrize("name", NAMES)
def test_seed_determinism(name: str, image: torch.Tensor) -> None:
    first, again, other = _run(name, image, 7), _run(name, image, 7), _run(name, image, 8)
    assert torch.equal(first.image, again.image) and torch.equal(first.mask, again.mask)
    assert not torch.equal(first.image, other.image)


@pytest.mark.parametrize("name", NAMES)
def test_replay_from_params(name: str, image: torch.Tensor) -> None:
    out = _run(name, image, 3)
    replay = OPERATORS[name].apply(image, out.params)
    assert torch.equal(replay.image, out.image)
    assert torch.equal(replay.mask, out.mask)


@pytest.mark.parametrize("name", NAMES)
def test_identity_at_zero_strength(name: str, image: torch.Tensor) -> None:
    out = ZERO[name](image, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.image, image, atol=2e-6, rtol=0)
    assert torch.count_nonzero(out.mask) == 0


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_the_input(name: str, image: torch.Tensor) -> None:
    x = image.clone().requires_grad_(True)
    out = _run(name, x)
    (out.image * torch.linspace(0, 1, x.shape[-1])).sum().backward()
    assert x.grad is not None
    assert torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", NAMES)
def test_float64_agrees_with_float32(name: str, image: torch.Tensor) -> None:
    out32 = _run(name, image, 5)
    out64 = OPERATORS[name].apply(image.double(), out32.params)
    assert out64.image.dtype == torch.float64
    image_gap = (out64.image - out32.image.double()).abs()
    # Quantisation may round a handful of pixels to the neighbouring level.
    assert (image_gap > 1e-4).float().mean() < 1e-3
    torch.testing.assert_close(out64.mask, out32.mask.double(), atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_batch_invariance(name: str, image: torch.Tensor) -> None:
    """A sample's output depends on its own parameters only, not on its batch."""
    out = _run(name, image, 11)
    single = {key: value[1:] for key, value in out.params.items()}
    alone = OPERATORS[name].apply(image[1:], single)
    torch.testing.assert_close(alone.image, out.image[1:], atol=1e-6, rtol=0)
    torch.testing.assert_close(alone.mask, out.mask[1:], atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_input_not_mutated(name: str, image: torch.Tensor) -> None:
    before = image.clone()
    _run(name, image)
    assert torch.equal(image, before)


@pytest.mark.cuda
@pytest.mark.parametrize("name", NAMES)
def test_sampling_on_device_matches_cpu_generator(name: str, image: torch.Tensor) -> None:
    """A CPU generator drives a CUDA batch: the same parameters and the same degradation.

    Parameters must be equal to the bit. Images and masks are float32 computed by other
    kernels (atomic ``index_add_``, another summation order), so they agree to 1e-3, a
    quarter of an 8-bit level; quantisation may round a handful of image pixels (at most
    0.1 %) to the neighbouring level.
    """
    op, cuda = OPERATORS[name], torch.device("cuda")
    params = op.sample(2, torch.Generator().manual_seed(2))
    on_device = op.sample(2, torch.Generator().manual_seed(2), device=cuda)
    assert set(on_device) == set(params)
    for key, value in on_device.items():
        assert value.device.type == "cuda", key
        assert torch.equal(value.cpu(), params[key]), key

    on_cpu = op(image, generator=torch.Generator().manual_seed(2))
    on_gpu = op(image.to(cuda), generator=torch.Generator().manual_seed(2))
    assert on_gpu.image.device.type == "cuda" and on_gpu.mask.device.type == "cuda"
    for key, value in on_gpu.params.items():
        assert torch.equal(value.cpu(), on_cpu.params[key]), key
    gap = (on_gpu.image.cpu() - on_cpu.image).abs()
    assert (gap > 1e-3).float().mean() <= 1e-3, f"{name}: {int((gap > 1e-3).sum())} pixels"
    torch.testing.assert_close(on_gpu.mask.cpu(), on_cpu.mask, atol=1e-3, rtol=0)


@pytest.mark.cuda
@pytest.mark.parametrize("name", NAMES)
def test_cuda_matches_cpu(name: str, image: torch.Tensor) -> None:
    out = _run(name, image, 4)
    params = {key: value.cuda() for key, value in out.params.items()}
    on_gpu = OPERATORS[name].apply(image.cuda(), params)
    gap = (on_gpu.image.cpu() - out.image).abs()
    assert (gap > 1e-3).float().mean() < 1e-3
    torch.testing.assert_close(on_gpu.mask.cpu(), out.mask, atol=1e-3, rtol=0)


@pytest.mark.cuda
@pytest.mark.parametrize("name", NAMES)
def test_cuda_bfloat16(name: str, image: torch.Tensor) -> None:
    out = OPERATORS[name](image.cuda().bfloat16(), generator=torch.Generator().manual_seed(0))
    assert out.image.dtype == torch.bfloat16
    assert torch.isfinite(out.image.float()).all()
