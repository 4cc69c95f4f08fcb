"""Shared fixtures: small images, CUDA marker handling."""

from __future__ import annotations

import pytest
import torch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def image() -> torch.Tensor:
    """A smooth, textured batch of two 48x64 sRGB images with values in (0, 1)."""
    g = torch.Generator().manual_seed(1234)
    rows = torch.linspace(0, 1, 48).view(1, 1, -1, 1)
    cols = torch.linspace(0, 1, 64).view(1, 1, 1, -1)
    base = 0.15 + 0.7 * (0.5 * rows + 0.5 * cols).expand(2, 3, 48, 64)
    texture = 0.1 * torch.rand(2, 3, 48, 64, generator=g)
    return (base + texture).clamp(0.02, 0.98)
