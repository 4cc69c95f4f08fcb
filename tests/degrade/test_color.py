"""The sRGB transfer curve against IEC 61966-2-1."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch
from skyclear.degrade import linear_to_srgb, srgb_to_linear
from skyclear.degrade.color import srgb_to_linear_scalar


def _reference_decode(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _reference_encode(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp_min(1e-12) ** (1 / 2.4) - 0.055)


def test_decode_matches_the_standard() -> None:
    x = torch.linspace(0, 1, 100001, dtype=torch.float64)
    torch.testing.assert_close(srgb_to_linear(x), _reference_decode(x), atol=5e-8, rtol=0)


def test_encode_matches_the_standard() -> None:
    x = torch.linspace(0, 1, 100001, dtype=torch.float64)
    torch.testing.assert_close(linear_to_srgb(x), _reference_encode(x), atol=5e-8, rtol=0)


def test_round_trip_float32() -> None:
    x = torch.rand(3, 3, 64, 64)
    torch.testing.assert_close(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-6, rtol=0)


def test_uint8_codes_are_recovered() -> None:
    codes = torch.arange(256, dtype=torch.float32) / 255
    back = (linear_to_srgb(srgb_to_linear(codes)) * 255).round()
    assert torch.equal(back, torch.arange(256, dtype=torch.float32))


def test_gradients_match_finite_differences() -> None:
    x = (torch.rand(2, 3, 5, 5, dtype=torch.float64) * 0.98 + 0.01).requires_grad_(True)
    assert torch.autograd.gradcheck(srgb_to_linear, (x,))
    assert torch.autograd.gradcheck(linear_to_srgb, (x,))


def test_input_untouched_and_scalar_helper() -> None:
    x = torch.rand(4, 4)
    before = x.clone()
    srgb_to_linear(x)
    linear_to_srgb(x)
    assert torch.equal(x, before)
    assert abs(srgb_to_linear_scalar(0.5) - float(_reference_decode(torch.tensor(0.5)))) < 1e-7


def test_results_never_share_the_reused_buffer() -> None:
    """The toe term lives in a buffer each thread reuses: a result must not change when
    the next image of the same shape is converted, in this thread or in others."""
    g = torch.Generator().manual_seed(5)
    first, second = torch.rand(2, 3, 40, 56, generator=g), torch.rand(2, 3, 40, 56, generator=g)
    decoded = srgb_to_linear(first)
    kept = decoded.clone()
    srgb_to_linear(second)
    linear_to_srgb(second)
    assert torch.equal(decoded, kept)
    images = [torch.rand(1, 3, 64, 64, generator=g) for _ in range(8)]
    expected = [srgb_to_linear(image) for image in images]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(5):
            got = list(pool.map(srgb_to_linear, images))
            assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))


def test_encoding_an_owned_image_in_place_gives_the_same_values() -> None:
    from skyclear.degrade.color import encode_image

    x = torch.linspace(-0.1, 1.2, 4001, dtype=torch.float64).view(1, 1, 1, -1)
    expected = linear_to_srgb(x).clamp(0, 1)
    kept = x.clone()
    assert torch.equal(encode_image(x), expected) and torch.equal(x, kept)
    owned = x.clone()
    result = encode_image(owned, owned=True)
    assert result.data_ptr() == owned.data_ptr() and torch.equal(result, expected)


def test_inference_mode_then_autograd_mode_in_one_thread() -> None:
    """A buffer made under inference mode cannot be written outside it: the reused toe
    buffer is made again when the mode changes."""
    x = torch.rand(1, 3, 16, 16)
    with torch.inference_mode():
        srgb_to_linear(x)
    torch.testing.assert_close(srgb_to_linear(x), _reference_decode(x), atol=1e-6, rtol=0)
    with torch.inference_mode():
        linear_to_srgb(x)
