"""The embedded sample photos: the ones that ship inside scikit-image.

No download: ``astronaut``, ``coffee``, ``chelsea`` and ``rocket`` are files inside the
scikit-image package, and so is the Middlebury 2014 ``motorcycle`` stereo pair with its
ground-truth disparity, from which the left view gets a metric depth map through the
published calibration (``depth.depth_from_disparity``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from .depth import MOTORCYCLE_DOFFS, MOTORCYCLE_FOCAL_BASELINE, depth_from_disparity
from .io import write_image

__all__ = ["SAMPLE_NAMES", "load_samples", "write_samples"]

SAMPLE_NAMES: tuple[str, ...] = ("astronaut", "chelsea", "coffee", "motorcycle", "rocket")


def load_samples() -> dict[str, tuple[NDArray[np.uint8], NDArray[np.float32] | None]]:
    """Every sample as ``name -> (RGB uint8 image, depth in metres or None)``."""
    from skimage import data  # imported here: scikit-image is slow to import

    samples: dict[str, tuple[NDArray[np.uint8], NDArray[np.float32] | None]] = {}
    for name in SAMPLE_NAMES:
        if name == "motorcycle":
            left, _right, disparity = data.stereo_motorcycle()
            depth = depth_from_disparity(disparity, MOTORCYCLE_FOCAL_BASELINE, MOTORCYCLE_DOFFS)
            samples[name] = (np.ascontiguousarray(left, dtype=np.uint8), depth)
        else:
            samples[name] = (np.ascontiguousarray(getattr(data, name)(), dtype=np.uint8), None)
    return samples


def write_samples(out: str | Path) -> list[Path]:
    """Write each sample as ``OUT/photos/NAME.png``, and ``OUT/depth/NAME.npy`` (metres)
    where depth is known: a layout ``make-cdd11 --src OUT/photos`` reads directly.

    Returns:
        The paths written.
    """
    out = Path(out)
    written: list[Path] = []
    for name, (image, depth) in load_samples().items():
        image_path = out / "photos" / f"{name}.png"
        write_image(image_path, image)
        written.append(image_path)
        if depth is not None:
            depth_path = out / "depth" / f"{name}.npy"
            depth_path.parent.mkdir(parents=True, exist_ok=True)
            np.save(depth_path, depth)
            written.append(depth_path)
    return written
