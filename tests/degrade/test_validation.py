"""Bad input raises an error that names the value; nothing warns and falls back."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skyclear.degrade import Haze, LowLight, Rain, Snow, degrade_tier

from .operators import NAMES, OPERATORS


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        (np.zeros((1, 3, 8, 8), np.float32), TypeError, "torch.Tensor"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), TypeError, "floating-point"),
        (torch.zeros(3, 8, 8), ValueError, r"\(B, 3, H, W\)"),
        (torch.zeros(1, 4, 8, 8), ValueError, r"\(B, 3, H, W\)"),
        (torch.zeros(0, 3, 8, 8), ValueError, "empty"),
        (torch.full((1, 3, 8, 8), 1.5), ValueError, "max 1.5"),
        (torch.full((1, 3, 8, 8), -0.25), ValueError, "min -0.25"),
        (torch.full((1, 3, 8, 8), float("nan")), ValueError, "NaN"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.float16), TypeError, "CUDA-only"),
    ],
)
def test_bad_images(name: str, bad: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        OPERATORS[name](bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: LowLight(exposure=(0.5, 0.1)), "low <= high"),
        (lambda: LowLight(exposure=(0.0, 0.1)), "within"),
        (lambda: LowLight(bits=(8.5, 10)), "whole numbers"),
        (lambda: Haze(beta=(-1.0, 0.1)), "within"),
        (lambda: Haze(beta=0.1), "pair"),  # type: ignore[arg-type]
        (lambda: Haze(beta=(0.1, float("nan"))), "finite"),
        (lambda: Haze(near=(50.0, 60.0), far=(40.0, 80.0)), "below"),
        (lambda: Rain(width=(0.5, 1.0)), "within"),
        (lambda: Rain(opacity=("a", "b")), "numbers"),  # type: ignore[arg-type]
        (lambda: Snow(veil=(0.0, 1.0)), "within"),
    ],
)
def test_bad_ranges(build: object, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        build()  # type: ignore[operator]


def test_ranges_are_normalised_and_fixed_values_fix(image: torch.Tensor) -> None:
    op = Haze(beta=(0.3, 0.3))
    assert op.beta == (0.3, 0.3)
    params = op.sample(5, torch.Generator().manual_seed(0))
    assert torch.all(params["beta"] == torch.tensor(0.3))


def test_bad_params_are_refused(image: torch.Tensor) -> None:
    params = Rain().sample(2)
    with pytest.raises(ValueError, match="leading dimension 3"):
        Rain().apply(torch.cat([image, image[:1]]), params)
    with pytest.raises(TypeError, match="dict"):
        Rain().apply(image, [1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unexpected"):
        Rain().apply(image, {**params, "colour": params["seed"]})


def test_unknown_context_is_refused(image: torch.Tensor) -> None:
    with pytest.raises(TypeError, match="only the contexts 'medium' and 'depth'"):
        Rain()(image, fog=torch.ones(1, 1, 48, 64))
    with pytest.raises(ValueError, match="depth has spatial size"):
        Snow()(image, depth=torch.ones(1, 1, 40, 64))
    with pytest.raises(TypeError, match="context"):
        LowLight()(image, depth=torch.ones(1, 1, 48, 64))
    with pytest.raises(TypeError, match="only the context 'depth'"):
        Haze()(image, fog=1)


def test_bad_batch_and_tier(image: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="positive int"):
        Snow().sample(0)
    with pytest.raises(ValueError, match="unknown tier"):
        degrade_tier(image, "rain_snow")
