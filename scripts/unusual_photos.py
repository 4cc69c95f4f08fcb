"""Does ``restore analyze``'s unusual-photo score separate the training distribution from
what it was not trained on?

A checkpoint is calibrated on a store (its train split's feature statistics; the
threshold at the 0.95 quantile of its test split's scores, as ``restore analyze
--calibrate-on`` does). Then scored: the test split's degraded images (in distribution),
and sets the network never saw, made from the test split's clean images (no
degradation; Gaussian blur; JPEG at quality 10; inverted colours; grey; heavy sensor-like
noise) and from scikit-image photos of other kinds (microscopy, astronomy, text, a
chessboard, bricks). Per set: how many are flagged, and the AUROC of the score against
the test split's (0.5: no separation, 1: perfect; below 0.5: the set looks more typical
than the training data itself). Beside the score ``restore analyze`` uses (the distance
to the nearest training images), the AUROC of the distance to the training mean (the
mean squared z-score), the statistic it replaced.

Usage::

    python scripts/unusual_photos.py --ckpt runs/f2d/best.pt --data data.zarr [--images 220]
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image, ImageFilter
from skimage import data as samples
from skyclear.restore.analysis import calibrate, spread
from skyclear.restore.checkpoint import checkpoint_digest
from skyclear.restore.data import open_dataset
from skyclear.restore.inference import Restorer
from torch import Tensor


def _pil(image: Tensor) -> Image.Image:
    pixels = (image[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(pixels)


def _tensor(picture: Image.Image) -> Tensor:
    array = np.asarray(picture.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)[None]


def _jpeg(image: Tensor) -> Tensor:
    buffer = io.BytesIO()
    _pil(image).save(buffer, format="JPEG", quality=10)
    return _tensor(Image.open(buffer))


TRANSFORMS: dict[str, Callable[[Tensor], Tensor]] = {
    "clean (no degradation)": lambda x: x,
    "Gaussian blur, radius 3": lambda x: _tensor(_pil(x).filter(ImageFilter.GaussianBlur(3))),
    "JPEG, quality 10": _jpeg,
    "inverted colours": lambda x: 1.0 - x,
    "grey": lambda x: x.mean(1, keepdim=True).expand_as(x).contiguous(),
    "noise, sigma 0.2": lambda x: (
        x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    ).clamp(0, 1),
}


def _others(side: int) -> dict[str, list[Tensor]]:
    loaded = {
        "microscopy (ihc, cell)": [samples.immunohistochemistry(), samples.cell()],
        "astronomy (hubble)": [samples.hubble_deep_field()],
        "text (page, text)": [samples.page(), samples.text()],
        "chessboard": [samples.checkerboard()],
        "bricks, gravel": [samples.brick(), samples.gravel()],
    }
    sets = {}
    for name, arrays in loaded.items():
        tiles = []
        for array in arrays:
            picture = Image.fromarray(array).convert("RGB")
            scale = side / min(picture.size)
            picture = picture.resize((round(picture.width * scale), round(picture.height * scale)))
            tiles.append(_tensor(picture.crop((0, 0, side, side))))
        sets[name] = tiles
    return sets


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """Probability that an outside image scores above an inside one (ties count half)."""
    greater = (outside[:, None] > inside[None, :]).mean()
    ties = (outside[:, None] == inside[None, :]).mean()
    return float(greater + 0.5 * ties)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--images", type=int, default=256)
    args = parser.parse_args()
    start = time.perf_counter()
    restorer = Restorer.from_checkpoint(args.ckpt, device="cpu")
    train, test = (open_dataset(args.data, split, None, False) for split in ("train", "test"))

    def picks(dataset: object) -> list[int]:
        return spread(len(dataset), args.images)  # type: ignore[arg-type]

    train_images = [train[i]["degraded"][None] for i in picks(train)]
    test_samples = [test[i] for i in picks(test)]
    held_out = [sample["degraded"][None] for sample in test_samples]
    calibration = calibrate(restorer, train_images, held_out, checkpoint_digest(args.ckpt))

    def scores(images: list[Tensor]) -> tuple[np.ndarray, np.ndarray]:
        features = torch.cat([restorer.inspect(x)[1] for x in images])
        to_mean = calibration.standardise(features).square().mean(dim=-1)
        return calibration.score(features).numpy(), to_mean.numpy()

    inside, inside_mean = scores(held_out)
    side = held_out[0].shape[-1]
    clean = {round(float(s["clean"].sum()), 3): s["clean"][None] for s in test_samples}  # once each
    cleans = list(clean.values())
    sets = {name: [f(x) for x in cleans] for name, f in TRANSFORMS.items()} | _others(side)
    threshold = calibration.threshold
    print(f"calibration: {calibration.train_images} training images, "
          f"{calibration.held_out_images} held-out, threshold {threshold:.3g}\n")  # fmt: skip
    print("| images | n | median score | flagged | AUROC | AUROC, distance to the mean |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| held-out degraded (test split) | {len(inside)} | {np.median(inside):.2f} | "
          f"{(inside > threshold).mean():.0%} | 0.50 | 0.50 |")  # fmt: skip
    for name, images in sets.items():
        values, to_mean = scores(images)
        flagged = (values > threshold).mean()
        print(f"| {name} | {len(values)} | {np.median(values):.2f} | {flagged:.0%} | "
              f"{auroc(inside, values):.2f} | {auroc(inside_mean, to_mean):.2f} |")  # fmt: skip
    print(f"\nwall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
