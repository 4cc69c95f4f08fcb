"""Cost of the augmentation adapters over the core operators, on one CPU thread.

For each degradation, side by side in one run, ms per 512 x 512 image:

* the core operator, ``op(x, generator)`` on a ``(1, 3, H, W)`` float32 tensor;
* its albumentations transform inside ``A.Compose`` on the ``(H, W, 3)`` uint8 array
  (conversion to and from float included, as a user pays it) and on the float32 array
  (the adapter's own cost);
* its kornia augmentation on the tensor (``p=1``);
* albumentations' own weather transform of the same effect, for scale.

The adapter overhead is ``adapter / core - 1``; the target is at most 10 % (uint8 input
adds the cost of the uint8 <-> float conversions, which any float operator pays). Every call is
replayed from the same seed each round and rounds are interleaved, as in
``benchmarks/ops.py``. Run: ``python benchmarks/augment.py [--repeat 30] [--size 512]``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from skimage import data  # noqa: E402
from skyclear.degrade import Haze, LowLight, Rain, Snow  # noqa: E402
from skyclear.degrade.augment import albumentations as sa  # noqa: E402
from skyclear.degrade.augment import kornia as sk  # noqa: E402

TARGET_OVERHEAD = 0.10


def _image(size: int) -> np.ndarray:
    photo = data.astronaut()
    return np.ascontiguousarray(cv2.resize(photo, (size, size), interpolation=cv2.INTER_AREA))


def _cases(size: int) -> dict[str, dict[str, Callable[[], object]]]:
    image = _image(size)
    x = torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).float().div(255).contiguous()
    image_float = image.astype(np.float32) / 255
    cases: dict[str, dict[str, Callable[[], object]]] = {}
    peers = {
        "low": A.ShotNoise(p=1.0),
        "haze": A.RandomFog(p=1.0),
        "rain": A.RandomRain(p=1.0),
        "snow": A.RandomSnow(p=1.0),
    }
    ops = {"low": LowLight(), "haze": Haze(), "rain": Rain(), "snow": Snow()}
    albu = {"low": sa.LowLight(p=1.0), "haze": sa.Haze(p=1.0), "rain": sa.Rain(p=1.0),
            "snow": sa.Snow(p=1.0)}  # fmt: skip
    kornia = {"low": sk.RandomLowLight(p=1.0), "haze": sk.RandomHaze(p=1.0),
              "rain": sk.RandomRain(p=1.0), "snow": sk.RandomSnow(p=1.0)}  # fmt: skip
    for name, op in ops.items():
        albu_pipe = A.Compose([albu[name]], seed=0)
        peer_pipe = A.Compose([peers[name]], seed=0)
        kornia_aug = kornia[name]

        def core(op: object = op) -> object:
            return op(x, generator=torch.Generator().manual_seed(0))  # type: ignore[operator]

        def adapter_albu(pipe: A.Compose = albu_pipe) -> object:
            pipe.set_random_seed(0)
            return pipe(image=image)

        def adapter_albu_float(pipe: A.Compose = albu_pipe) -> object:
            pipe.set_random_seed(0)
            return pipe(image=image_float)

        def adapter_kornia(aug: object = kornia_aug) -> object:
            torch.manual_seed(0)
            return aug(x)  # type: ignore[operator]

        def peer(pipe: A.Compose = peer_pipe) -> object:
            pipe.set_random_seed(0)
            return pipe(image=image)

        cases[name] = {
            "core": core,
            "albumentations adapter": adapter_albu,
            "albumentations adapter, float32": adapter_albu_float,
            "kornia adapter": adapter_kornia,
            "albumentations built-in": peer,
        }
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    cases = _cases(args.size)
    calls = [(name, kind, fn) for name, kinds in cases.items() for kind, fn in kinds.items()]
    for _, _, fn in calls:
        fn()
    times: dict[tuple[str, str], list[float]] = {(n, k): [] for n, k, _ in calls}
    rng = random.Random(0)
    for _ in range(args.repeat):
        rng.shuffle(calls)
        for name, kind, fn in calls:
            start = time.perf_counter()
            fn()
            times[(name, kind)].append((time.perf_counter() - start) * 1e3)
    rows = [
        f"ms per {args.size}x{args.size} image, one thread, median of {args.repeat} "
        "(interleaved rounds)",
        "",
        "| degradation | core op | albumentations adapter, uint8 (overhead) | albumentations "
        "adapter, float32 (overhead) | kornia adapter (overhead) | albumentations built-in, "
        "uint8 | overhead <= 10 % (float32 albumentations, kornia) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | :-: |",
    ]
    for name in cases:
        med = {kind: statistics.median(times[(name, kind)]) for kind in cases[name]}
        over_a = med["albumentations adapter"] / med["core"] - 1
        over_f = med["albumentations adapter, float32"] / med["core"] - 1
        over_k = med["kornia adapter"] / med["core"] - 1
        met = "yes" if max(over_f, over_k) <= TARGET_OVERHEAD else "no"
        rows.append(
            f"| {name} | {med['core']:.2f} | {med['albumentations adapter']:.2f} "
            f"({over_a:+.0%}) | {med['albumentations adapter, float32']:.2f} ({over_f:+.0%}) | "
            f"{med['kornia adapter']:.2f} ({over_k:+.0%}) | "
            f"{med['albumentations built-in']:.2f} | {met} |"
        )
    report = "\n".join(rows)
    print(report)
    if args.markdown:
        args.markdown.write_text(report + "\n")


if __name__ == "__main__":
    main()
