"""Reused per-thread buffers never show through a result, and layouts never change values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
import torch
from skyclear.degrade import TIERS, Composite, Operator
from skyclear.degrade._scratch import scratch_like
from skyclear.degrade._validate import check_image
from skyclear.degrade.ops.base import Params, _Draws
from torch import Tensor

from .operators import NAMES, OPERATORS


@dataclass(frozen=True)
class _Identity(Operator):
    """A user's operator that changes nothing: its result is its linear input."""

    name: ClassVar[str] = "identity"
    param_names: ClassVar[tuple[str, ...]] = ("seed",)

    def _draw(self, draw: _Draws) -> Params:
        return {}

    def apply_linear(self, x: Tensor, params: Params, **context: Any) -> tuple[Tensor, Tensor]:
        return x, x[:, :1]  # a mask that is a view of its input, too


def _other(image: Tensor) -> Tensor:
    return image.flip(-1).mul(0.5).add(0.25)


def test_a_colour_decode_leaves_the_image_buffer_in_place(large: Tensor) -> None:
    from skyclear.degrade import srgb_to_linear
    from skyclear.degrade._scratch import _LOCAL

    op = OPERATORS["haze"]
    params = op.sample(large.shape[0], torch.Generator().manual_seed(3))
    op.apply(large, params)
    held = _LOCAL.buffers["srgb-decode-toe"][1]
    srgb_to_linear(torch.rand(2, 3))  # an airlight
    op.apply(large, params)
    assert _LOCAL.buffers["srgb-decode-toe"][1] is held


@pytest.fixture
def large(image: Tensor) -> Tensor:
    """Big enough (2 x 3 x 96 x 128 values) that noise fields take their image-sized path."""
    return torch.nn.functional.interpolate(image, scale_factor=2, mode="bilinear")


@pytest.mark.parametrize("name", NAMES)
def test_a_result_survives_the_next_call(large: Tensor, name: str) -> None:
    image = large
    op = OPERATORS[name]
    params = op.sample(image.shape[0], torch.Generator().manual_seed(3))
    first = op.apply(image, params)
    kept = first.image.clone(), first.mask.clone()
    op.apply(_other(image), op.sample(image.shape[0], torch.Generator().manual_seed(4)))
    assert torch.equal(first.image, kept[0]) and torch.equal(first.mask, kept[1])


@pytest.mark.parametrize("tier", [tier for tier in TIERS if tier.count("_") >= 1] + ["low"])
def test_a_tier_result_survives_the_next_call(large: Tensor, tier: str) -> None:
    image = large
    composite = Composite()
    depth = torch.full((image.shape[0], 1, *image.shape[-2:]), 12.0)
    first = composite(image, tier, torch.Generator().manual_seed(5), depth)
    kept = first.image.clone(), first.masks.clone()
    composite(_other(image), tier, torch.Generator().manual_seed(6), depth)
    assert torch.equal(first.image, kept[0]) and torch.equal(first.masks, kept[1])


def test_an_operator_returning_its_input_does_not_hand_out_the_reused_buffer(
    image: Tensor,
) -> None:
    op = _Identity()
    first = op(image)
    torch.testing.assert_close(first.image, image, atol=1e-6, rtol=0)
    mask = first.mask.clone()
    op(_other(image))  # decodes into the same per-thread buffer
    torch.testing.assert_close(first.image, image, atol=1e-6, rtol=0)
    assert torch.equal(first.mask, mask)


@pytest.mark.parametrize("name", NAMES)
def test_a_channels_last_photo_gives_the_same_values(image: Tensor, name: str) -> None:
    """A photo permuted from (H, W, 3) is strided channels-last; the operators decode it
    into a contiguous buffer, which must change no value."""
    op = OPERATORS[name]
    params = op.sample(image.shape[0], torch.Generator().manual_seed(7))
    strided = image.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    assert not strided.is_contiguous()
    dense, permuted = op.apply(image, params), op.apply(strided, params)
    assert torch.equal(dense.image, permuted.image) and torch.equal(dense.mask, permuted.mask)


def test_validation_reads_every_value_of_a_strided_photo() -> None:
    photo = torch.full((1, 24, 32, 3), 0.5)
    photo[0, 23, 31, 2] = 1.5  # the last value in memory, of the last channel
    with pytest.raises(ValueError, match=r"max 1\.5"):
        check_image(photo.permute(0, 3, 1, 2))
    photo[0, 23, 31, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        check_image(photo.permute(0, 3, 1, 2))
    sliced = torch.full((1, 3, 8, 8), 0.5)
    sliced[..., 1::2] = 2.0  # outside the slice: not the image's business
    assert check_image(sliced[..., ::2]) is not None


def test_a_buffer_for_a_broadcast_tensor_does_not_overlap() -> None:
    row = torch.arange(6, dtype=torch.int32).view(1, 6)
    held = scratch_like("test-broadcast", row.expand(4, 6))
    held.copy_(torch.arange(24, dtype=torch.int32).view(4, 6))
    assert torch.equal(held.view(-1), torch.arange(24, dtype=torch.int32))
    assert scratch_like("test-broadcast", row.expand(4, 6)) is held  # handed out again
    assert scratch_like("test-broadcast", row.expand(5, 6)) is not held  # a new shape
