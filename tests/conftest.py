"""Shared fixtures: small images, CUDA marker handling."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from skyclear.degrade.store import BuildOptions, build

from .photos import write_photos


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One torch thread for the test: its runs are tiny, and on a shared CPU a second
    thread spins."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def image() -> torch.Tensor:
    """A smooth, textured batch of two 48x64 sRGB images with values in (0, 1)."""
    g = torch.Generator().manual_seed(1234)
    rows = torch.linspace(0, 1, 48).view(1, 1, -1, 1)
    cols = torch.linspace(0, 1, 64).view(1, 1, 1, -1)
    base = 0.15 + 0.7 * (0.5 * rows + 0.5 * cols).expand(2, 3, 48, 64)
    texture = 0.1 * torch.rand(2, 3, 48, 64, generator=g)
    return (base + texture).clamp(0.02, 0.98)


@pytest.fixture(scope="session")
def clean_photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of three clean photos (256x288: training fits photos to 256 pixels before
    it crops them), for training with synthesis on the fly."""
    root = tmp_path_factory.mktemp("clean-photos")
    write_photos(root, count=3, height=256, width=288)
    return root


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A make-cdd11 store: three 32x32 photos in all 11 tiers, one in the test split. The
    photos are smooth gradients, which the ground prior takes for close-ups (uniform
    haze); the flat prior gives haze masks that vary over the image, as routing scores
    need."""
    root = tmp_path_factory.mktemp("store")
    write_photos(root / "src", count=3)
    options = BuildOptions(src=str(root / "src"), size=32, test_fraction=0.34, depth_prior="flat")
    build(options, root / "d.zarr")
    return root / "d.zarr"
