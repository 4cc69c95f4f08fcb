"""Validation during training: scores on a fixed set of test samples, and a picture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image
from torch.utils.data import Dataset

from ..evaluate import mean_scores, records_of
from ..inference import Restorer
from ..visual import EXAMPLE_TITLES, example_row, image_grid

__all__ = ["validate", "validation_indices"]


def validation_indices(size: int, count: int, seed: int) -> list[int]:
    """A fixed random choice of ``count`` test samples (a mix of tiers and photos)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(size, generator=generator)[:count].tolist()


def validate(
    restorer: Restorer,
    dataset: Dataset[Any],
    indices: list[int],
    grid_samples: int,
    grid_path: Path | None,
) -> dict[str, float]:
    """Mean scores (see ``evaluate.COLUMNS``) over ``dataset[indices]``, each sample
    restored whole at its method's own number of network evaluations (a sampler that draws
    noise seeded by the sample's index, so a validation repeats exactly); the first
    ``grid_samples`` are drawn to ``grid_path`` (degraded | restored | clean | the four
    parser maps)."""
    records: list[dict[str, Any]] = []
    tiles: list[list[NDArray[np.uint8]]] = []
    for index in indices:
        batch = {key: value.unsqueeze(0) for key, value in dataset[index].items()}
        generator = torch.Generator().manual_seed(index)
        restored, aux = restorer(batch["degraded"], generator=generator)
        records += records_of(batch, restored, aux)
        if len(tiles) < grid_samples:
            tiles.append(
                example_row(batch["degraded"][0], restored[0], batch["clean"][0], aux.maps[0])
            )
    if grid_path is not None and tiles:
        grid_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image_grid(tiles, EXAMPLE_TITLES)).save(grid_path)
    return mean_scores(records)
