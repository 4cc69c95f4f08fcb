"""A folder of photos for experiments, from the photos that ship inside scikit-image.

The installed packages hold only a handful of natural photos, so each original gives
several photos: square crops of random size (60-100 % of its short side) and position,
mirrored at random, resized to ``--side`` pixels. Whole originals are held out for the test
split: every crop of a test original goes under ``OUT/test/``, every crop of the others
under ``OUT/train/``, so no crop or mirror image of a test photo is ever trained on. Build a
store from it with ``degrade make-cdd11 --src OUT --test-folder test``.

The motorcycle's left and right stereo views show one scene and count as one original.

Run: ``python scripts/science_photos.py --out photos/ [--crops 10] [--side 320] [--seed 0]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

#: Originals by scene, in scikit-image's data folder; the test scenes are held out whole.
TRAIN_SCENES = {
    "astronaut": ("astronaut.png",),
    "coffee": ("coffee.png",),
    "motorcycle": ("motorcycle_left.png", "motorcycle_right.png"),
    "hubble": ("hubble_deep_field.jpg",),
}
TEST_SCENES = {"chelsea": ("chelsea.png",), "rocket": ("rocket.jpg",)}


def _crops(
    photo: Image.Image, count: int, side: int, rng: np.random.Generator
) -> list[Image.Image]:
    short = min(photo.size)
    crops = []
    for _ in range(count):
        size = int(rng.uniform(0.6, 1.0) * short)
        left = int(rng.integers(0, photo.width - size + 1))
        top = int(rng.integers(0, photo.height - size + 1))
        crop = photo.crop((left, top, left + size, top + size))
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        crops.append(crop.resize((side, side), Image.Resampling.LANCZOS))
    return crops


def write(out: Path, crops: int, side: int, seed: int) -> dict[str, int]:
    """Write the photos; returns how many went to each split. Refuses an ``out`` that
    holds anything already."""
    import skimage

    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty; choose a new folder")
    data = Path(skimage.__file__).parent / "data"
    rng = np.random.default_rng(seed)
    counts = {"train": 0, "test": 0}
    for split, scenes in (("train", TRAIN_SCENES), ("test", TEST_SCENES)):
        for scene, files in scenes.items():
            for file in files:
                with Image.open(data / file) as opened:
                    photo = opened.convert("RGB")
                for index, crop in enumerate(_crops(photo, crops, side, rng)):
                    path = out / split / f"{Path(file).stem}_{index:02d}.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    crop.save(path)
                    counts[split] += 1
            print(f"{split}: {scene} ({', '.join(files)}): {crops * len(files)} photos")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--crops", type=int, default=10, help="photos per original")
    parser.add_argument("--side", type=int, default=320)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    counts = write(args.out, args.crops, args.side, args.seed)
    print(f"{args.out}: {counts['train']} training and {counts['test']} test photos")


if __name__ == "__main__":
    main()
