"""What a store's content depends on: the options, and the seeds and split they imply."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..names import DEPTH_PRIORS, ORDERS, TIERS
from ..presets import PRESETS, preset, preset_defaults
from ..seeding import entropy_seed

if TYPE_CHECKING:
    from ..compose import Composite
    from ..depth_model import DepthModel

__all__ = ["BuildOptions", "sample_seed", "split_of", "split_of_sources", "test_count"]


@dataclass(frozen=True)
class BuildOptions:
    """Everything a store's content depends on (besides the photos themselves).

    ``max_pixels`` is the largest photo ingest decodes (``None``: Pillow's
    decompression-bomb limit, ``skyclear.degrade.io.DEFAULT_MAX_PIXELS``). It only decides
    which photos are usable, which the store records as ``sources``; the limit itself is
    not recorded, so a default run's store is what it always was.

    ``test_folder`` (a folder under ``src``, as a relative POSIX path) puts exactly the
    photos under it in the test split, instead of a seeded ``test_fraction`` of all photos:
    crops of one original kept together in a folder then never straddle the two splits.
    """

    src: str
    size: int = 512
    tiers: tuple[str, ...] = TIERS
    variants: int = 1
    seed: int = 0
    order: str | None = None
    test_fraction: float = 0.1
    depth_dir: str | None = None
    max_pixels: int | None = None
    test_folder: str | None = None
    depth_prior: str | None = None
    preset: str = PRESETS[0]
    depth_model: str | None = None
    depth_kind: str | None = None
    depth_near: float = 2.0
    depth_far: float = 150.0

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or self.size < 8:
            raise ValueError(f"size must be an int >= 8, got {self.size!r}")
        unknown = [tier for tier in self.tiers if tier not in TIERS]
        if unknown or not self.tiers:
            raise ValueError(f"tiers must be a non-empty subset of {TIERS}, got {self.tiers}")
        # Keep CDD-11's order whatever order they were given in.
        object.__setattr__(self, "tiers", tuple(t for t in TIERS if t in self.tiers))
        if not isinstance(self.variants, int) or self.variants < 1:
            raise ValueError(f"variants must be an int >= 1, got {self.variants!r}")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must be an int in [0, 2**63), got {self.seed!r}")
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {PRESETS}, got {self.preset!r}")
        # The preset's order and depth prior unless given.
        order, prior = preset_defaults(self.preset)
        if self.order is None:
            object.__setattr__(self, "order", order)
        if self.depth_prior is None:
            object.__setattr__(self, "depth_prior", prior)
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {self.order!r}")
        if self.depth_model is not None:
            self.model  # noqa: B018 - checks the kind, the scale and the folder
        if self.depth_prior not in DEPTH_PRIORS:
            raise ValueError(f"depth_prior must be one of {DEPTH_PRIORS}, got {self.depth_prior!r}")
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must lie in [0, 1), got {self.test_fraction!r}")
        if self.test_folder is not None:
            parts = self.test_folder.strip("/").split("/")
            if not self.test_folder.strip("/") or ".." in parts or self.test_folder.startswith("/"):
                raise ValueError(
                    f"test_folder must be a folder under src, as a relative path, got "
                    f"{self.test_folder!r}"
                )
        if self.max_pixels is not None and (
            not isinstance(self.max_pixels, int) or self.max_pixels < 1
        ):
            raise ValueError(f"max_pixels must be a positive int or None, got {self.max_pixels!r}")

    def composite(self) -> Composite:
        """The operators the store is made with: the preset's, in ``order``, with
        ``depth_prior``."""
        return preset(self.preset, self.depth_prior, self.order)

    @property
    def model(self) -> DepthModel | None:
        """The depth model of ``depth_model`` (loaded on first use), or ``None``."""
        if self.depth_model is None:
            return None
        from ..depth_model import DepthModel

        return DepthModel(self.depth_model, self.depth_kind, self.depth_near, self.depth_far)

    @property
    def has_depth(self) -> bool:
        """Whether the store has a ``depth`` array (depth files or a depth model)."""
        return self.depth_dir is not None or self.depth_model is not None

    def recorded(self) -> dict[str, Any]:
        """The options as the store records them (paths are not part of the content)."""
        record = asdict(self)
        record.pop("src")
        record.pop("max_pixels")  # decides the sources, which are recorded themselves
        record["tiers"] = list(self.tiers)
        record.pop("depth_dir")
        record["depth"] = self.has_depth  # the store then has a ``depth`` array
        for key in ("depth_model", "depth_kind", "depth_near", "depth_far"):
            record.pop(key)
        model = self.model
        if model is not None:  # what the model is and how its output became metres
            record["depth_model"] = model.describe()
        if record["test_folder"] is None:  # a store split by fraction records what it did
            record.pop("test_folder")
        return record


def sample_seed(seed: int, source: int, tier: str, variant: int) -> int:
    """The generator seed of one sample, from (seed, source index, tier, variant) alone."""
    return entropy_seed(seed, source, TIERS.index(tier), variant)


def test_count(count: int, fraction: float) -> int:
    """How many of ``count`` photos go to the test split.

    ``fraction * count`` rounded half up; at least one test photo whenever ``fraction > 0``
    and there are two photos or more, and always at least one training photo.
    """
    tests = math.floor(count * fraction + 0.5)
    if fraction > 0 and count > 1:
        tests = max(tests, 1)
    return min(tests, max(count - 1, 0))


def split_of_sources(sources: list[str], options: BuildOptions) -> np.ndarray:
    """0 (train) or 1 (test) per source: those under ``options.test_folder`` when it is
    given, else a seeded ``test_fraction`` of them (``split_of``).

    Raises:
        ValueError: ``test_folder`` leaves no photo in one of the splits.
    """
    if options.test_folder is None:
        return split_of(len(sources), options.test_fraction, options.seed)
    prefix = options.test_folder.strip("/") + "/"
    split = np.array([source.startswith(prefix) for source in sources], dtype=np.uint8)
    if not split.any() or split.all():
        side = "no" if not split.any() else "every"
        raise ValueError(
            f"--test-folder {options.test_folder}: {side} usable photo is under it; the test "
            "split needs some photos and the training split the others"
        )
    return split


def split_of(count: int, fraction: float, seed: int) -> np.ndarray:
    """0 (train) or 1 (test) per source; a seeded permutation picks the test sources."""
    split = np.zeros(count, dtype=np.uint8)
    tests = test_count(count, fraction)
    if tests:
        order = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED])).permutation(count)
        split[order[:tests]] = 1
    return split
