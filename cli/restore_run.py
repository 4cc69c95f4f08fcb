"""``restore run``: restore photos, one file or a folder, with a trained checkpoint."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ._restore_options import (
    load_restorer,
    method_option,
    removal_options,
    remove_set,
    weights_option,
)

if TYPE_CHECKING:
    from skyclear.restore.batch import Job
    from skyclear.restore.images import Photo
    from skyclear.restore.inference import Restorer
    from torch import Tensor

__all__ = ["run"]

#: What PyTorch's CPU allocator and CUDA say when an allocation fails (a RuntimeError on
#: the CPU, not a MemoryError).
_ALLOCATION_FAILED = ("can't allocate memory", "out of memory", "not enough memory")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--ckpt",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Checkpoint written by `restore train` (best.pt or last.pt).",
)
@click.option(
    "--input",
    "source",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="A photo, or a folder of photos (walked recursively; hidden files left out).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the restored PNGs (STEM.png; an input folder's sub-folders mirrored).",
)
@click.option(
    "--steps",
    type=click.IntRange(1, 1000),
    help="Network evaluations per photo (default: the checkpoint's method's own: 1, the "
    "one-step restoration, for f2d and fm; 100 for irsde; 4 for irflow and resflow). For "
    "f2d more run the exact stochastic sampler.",
)
@method_option
@click.option(
    "--seed",
    type=click.IntRange(0, 2**63 - 1),
    default=0,
    show_default=True,
    help="Seed of the sampler's noise with --steps > 1. Every photo starts from it, so a "
    "photo restores the same alone or in a folder.",
)
@click.option(
    "--tile",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Restore in TILE x TILE tiles blended across --overlap pixels, so memory is bounded "
    "by the tile, for large photos (0: each photo whole).",
)
@click.option(
    "--overlap",
    type=click.IntRange(0),
    help="Pixels that neighbouring tiles share and blend across.  [default: TILE // 8]",
)
@click.option(
    "--save-maps",
    is_flag=True,
    help="Also write STEM_maps.png: the parser's four maps (low, haze, rain, snow) in "
    "colour, titled with its global weights.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 1024),
    default=1,
    show_default=True,
    help="Restore up to N consecutive photos of one size (in the folder's sorted order) in "
    "one batch, where they fit in the memory free; each result is the one the photo gets "
    "alone. Photos in tiles, and samplers that draw noise (--steps > 1 for f2d, irsde, "
    "resflow), go one at a time. For GPUs: on a CPU batches rarely pay.",
)
@removal_options
@click.option(
    "--keep-profile",
    is_flag=True,
    help="A photo tagged with a colour profile other than sRGB (Adobe RGB, Display P3) is "
    "converted to sRGB for the network and its result tagged sRGB; with this flag the "
    "result is converted back and tagged with the photo's own profile.",
)
@click.option(
    "--device",
    default="auto",
    show_default=True,
    help="auto (CUDA when present), cpu, cuda or cuda:N.",
)
@weights_option
@click.option(
    "--max-pixels",
    type=click.IntRange(1),
    help="Open photos of up to N pixels. The default refuses photos over Pillow's "
    "decompression-bomb limit (about 89 megapixels); raise it only for photos you trust.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Restore again photos whose outputs this checkpoint with these options already "
    "made. Without it they are kept and counted, so a second run finishes an interrupted "
    "one. Outputs of another checkpoint or other options are always redone; files no "
    "restoration wrote are never replaced.",
)
def run(
    ckpt: Path,
    source: Path,
    out: Path,
    steps: int | None,
    method: str | None,
    seed: int,
    tile: int,
    overlap: int | None,
    save_maps: bool,
    device: str,
    weights: str,
    max_pixels: int | None,
    overwrite: bool,
    batch_size: int,
    keep_profile: bool,
    remove_names: str | None,
    keep_names: str | None,
) -> None:
    """Restore photos that are dark, hazy, rainy or snowy.

    Any still image Pillow reads: grey stays grey, alpha is kept as it is, 16-bit photos
    give 16-bit PNGs, EXIF orientation is applied and EXIF kept, a photo in another colour
    profile (Adobe RGB, Display P3) is restored in sRGB. A photo too large to restore whole in
    the memory free is restored in tiles of a size that fits, and the run says so. A file
    that cannot be restored is reported on one line and the others go on; the exit status
    is then 1. Each PNG records the checkpoint and options that made it.
    """
    from skyclear.restore.batch import IMAGE_SUFFIXES, plan_run
    from skyclear.restore.checkpoint import checkpoint_digest

    if overlap is not None and not tile:
        raise click.UsageError("--overlap needs --tile")
    restorer = load_restorer(ckpt, device, weights)
    try:
        restorer.check_method(method, ckpt)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--method") from error
    _check_tiles(restorer, tile, overlap)
    removed = remove_set(remove_names, keep_names)
    if removed is not None:
        try:
            restorer.check_removal()
        except ValueError as error:
            hint = "--remove" if remove_names is not None else "--keep"
            raise click.BadParameter(str(error), param_hint=hint) from error
    steps = restorer.method.steps_of(steps)
    noisy = restorer.method.draws_noise(steps)
    options = Options(steps, seed, tile, overlap, max_pixels, noisy, batch_size, keep_profile,
                      removed)  # fmt: skip
    provenance = json.dumps(
        {"checkpoint": checkpoint_digest(ckpt), "weights": weights, **options.pixels()},
        sort_keys=True,
    )
    try:
        plan = plan_run(source, out, save_maps, overwrite, provenance)
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    if not plan.total:
        suffixes = " ".join(sorted(IMAGE_SUFFIXES))
        raise click.UsageError(f"no photos under {source} (files ending {suffixes})")

    for name, reason in plan.refused:
        click.echo(f"failed {name}: {reason}", err=True)
    restored = _restore_all(restorer, plan.todo, source.is_dir(), options, provenance)
    failed = len(plan.refused) + len(plan.todo) - restored
    kept = f"; {len(plan.existing)} already there, kept (--overwrite redoes them)"
    redone = f"; {plan.redo} made by another checkpoint or other options, redone"
    click.echo(
        f"restored {restored} of {plan.total} images into {out}; {failed} failed"
        + (kept if plan.existing else "")
        + (redone if plan.redo else "")
    )
    if failed:
        click.get_current_context().exit(1)


@dataclass(frozen=True)
class Options:
    """How each photo is restored."""

    steps: int
    seed: int
    tile: int
    overlap: int | None
    max_pixels: int | None
    noisy: bool = False  # whether the sampler draws noise (then the seed matters)
    batch: int = 1  # photos of one size per network evaluation
    keep_profile: bool = False  # converted photos written back in their own profile
    remove: frozenset[str] | None = None  # None: everything

    def removal(self) -> Tensor | None:
        """The ``(4,)`` vector of ``remove`` for the network, or ``None``."""
        from skyclear.datasets.partial import removal_vector

        return None if self.remove is None else removal_vector(self.remove)

    @property
    def batches(self) -> bool:
        """Whether photos are batched: more than one asked for, whole photos only (tiles
        take one photo), and a sampler without noise (a photo's noise is its own seed's)."""
        return self.batch > 1 and not self.tile and not self.noisy

    def pixels(self) -> dict[str, int | bool | list[str] | None]:
        """The options that change a result's pixels (the seed only where the sampler
        draws noise)."""
        return {
            "steps": self.steps,
            "seed": self.seed if self.noisy else None,
            "tile": self.tile,
            "overlap": self.overlap,
            **({"keep_profile": True} if self.keep_profile else {}),
            **({"remove": sorted(self.remove)} if self.remove is not None else {}),
        }


def _check_tiles(restorer: Restorer, tile: int, overlap: int | None) -> None:
    smallest = 2 * restorer.config.model.multiple
    if tile and tile < smallest:
        raise click.BadParameter(f"must be 0 or >= {smallest}, got {tile}", param_hint="--tile")
    if tile and overlap is not None and 2 * (tile // 8 + overlap) > tile - smallest // 2:
        most = (tile - smallest // 2) // 2 - tile // 8
        raise click.BadParameter(
            f"must be at most {most} for --tile {tile} (tiles also discard a margin of "
            f"{tile // 8} pixels)",
            param_hint="--overlap",
        )


def _gib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB"


def _out_of_memory(error: BaseException) -> bool:
    import torch

    if isinstance(error, MemoryError | torch.OutOfMemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(part in text for part in _ALLOCATION_FAILED)


def _restore_all(
    restorer: Restorer, jobs: list[Job], show_progress: bool, options: Options, provenance: str
) -> int:
    """Restore each job under a progress bar (photos/s), consecutive photos of one size
    ``options.batch`` at a time; a job that fails is reported on one line of stderr (its
    name and why) and the others go on. Returns how many succeeded."""
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc="restoring", unit=" photos", file=sys.stderr,
               disable=not show_progress or len(jobs) < 2, dynamic_ncols=True)  # fmt: skip
    restored = 0
    pending: list[tuple[Job, Photo]] = []

    def guarded(job: Job, action: Callable[[], None]) -> bool:
        """Run ``action`` for ``job``; report a failure the run goes on after."""
        reason = _attempt(restorer, job, options, action)
        if reason is not None:
            bar.write(f"failed {job.name}: {reason}", file=sys.stderr)
        return reason is None

    def flush() -> None:
        nonlocal restored
        batch, pending[:] = list(pending), []
        if len(batch) > 1 and _batch_fits(restorer, batch):
            try:
                restored += _restore_batch(restorer, batch, options, provenance, bar.write)
                bar.update(len(batch))
                return
            except (RuntimeError, MemoryError) as error:
                if not _out_of_memory(error):
                    raise
                _release(restorer)  # one at a time instead, each with its own advice
        for job, photo in batch:
            action = functools.partial(
                _restore_photo, restorer, job, photo, options, provenance, bar.write
            )
            restored += guarded(job, action)
            bar.update(1)

    for job in jobs:
        read: list[Photo] = []
        if not guarded(job, functools.partial(_read_into, read, job, options)):
            bar.update(1)
            continue
        photo = read[0]
        for note in photo.notes:
            bar.write(note, file=sys.stderr)
        if pending and (
            len(pending) == options.batch
            or _size(pending[0][1]) != _size(photo)
            or not _batch_fits(restorer, [*pending, (job, photo)])  # read no further ahead
        ):
            flush()
        pending.append((job, photo))
        if not options.batches:
            flush()
    flush()
    bar.close()
    return restored


def _attempt(
    restorer: Restorer, job: Job, options: Options, action: Callable[[], None]
) -> str | None:
    """Run ``action``; ``None`` if it succeeded, else why it failed (an error no photo
    explains is raised)."""
    from skyclear.restore.images import UnusableImageError

    try:
        action()
    except UnusableImageError as error:
        return error.reason
    except OSError as error:
        return f"could not write its result ({error})"
    except (RuntimeError, MemoryError) as error:
        if not _out_of_memory(error):
            raise
        _release(restorer)
        return _memory_advice(restorer, job, options)
    return None


def _release(restorer: Restorer) -> None:
    import torch

    if restorer.device.type == "cuda":
        torch.cuda.empty_cache()


def _size(photo: Photo) -> tuple[int, ...]:
    return tuple(photo.image.shape[-2:])


def _batch_fits(restorer: Restorer, batch: list[tuple[Job, Photo]]) -> bool:
    """Whether one network evaluation of the whole batch fits in 80 % of the memory free."""
    from skyclear.restore.memory import activation_bytes, available_bytes

    height, width = _size(batch[0][1])
    precision = 2 if restorer.bf16 else 4
    needed = len(batch) * activation_bytes(restorer.config.model, height, width, precision)
    return needed <= 0.8 * available_bytes(restorer.device)


def _restore_batch(
    restorer: Restorer,
    batch: list[tuple[Job, Photo]],
    options: Options,
    provenance: str,
    say: Callable[..., None],
) -> int:
    """Restore photos of one size in one batch (deterministic samplers only: a photo's
    result is the one it gets alone); write each. Returns how many were written."""
    import torch
    from skyclear.restore.analysis import save_maps
    from skyclear.restore.batch import PROVENANCE_KEY
    from skyclear.restore.images import write_photo

    images = torch.cat([photo.image for _, photo in batch])
    restored, aux = restorer(images, options.steps, None, options.removal())
    text = {PROVENANCE_KEY: provenance}
    written = 0
    for index, (job, photo) in enumerate(batch):

        def write(index: int = index, job: Job = job, photo: Photo = photo) -> None:
            write_photo(job.output, photo, restored[index : index + 1], text, options.keep_profile)
            if job.maps is not None:
                save_maps(job.maps, aux.maps[index], aux.weights[index], text)

        reason = _attempt(restorer, job, options, write)
        if reason is None:
            written += 1
        else:
            say(f"failed {job.name}: {reason}", file=sys.stderr)
    return written


def _memory_advice(restorer: Restorer, job: Job, options: Options) -> str:
    """Out of memory, with what the photo needed and the tile that would fit."""
    from PIL import Image
    from skyclear.restore.memory import activation_bytes, available_bytes, fitting_tile

    try:
        with Image.open(job.source) as opened:
            width, height = opened.size
    except Exception:  # the photo was readable a moment ago; say what can be said
        return "out of memory; restore it in smaller tiles (--tile) or on another device"
    side = options.tile or max(height, width)
    config, precision = restorer.config.model, 2 if restorer.bf16 else 4
    needed = activation_bytes(config, min(side, height), min(side, width), precision)
    free = available_bytes(restorer.device)
    tile = fitting_tile(config, height, width, int(0.8 * free), precision) or side // 2
    return (
        f"out of memory ({width}x{height}, "
        f"{'tiles of ' + str(side) if options.tile else 'whole'} need about {_gib(needed)}, "
        f"{_gib(free)} free); --tile {tile} would fit"
    )


def _read_into(photos: list[Photo], job: Job, options: Options) -> None:
    from skyclear.restore.images import read_photo

    photos.append(read_photo(job.source, options.max_pixels))


def _restore_photo(
    restorer: Restorer,
    job: Job,
    photo: Photo,
    options: Options,
    provenance: str,
    say: Callable[[str], None],
) -> None:
    """Restore one photo, whole or in tiles (``--tile``, or those that fit the memory free),
    and write it."""
    import torch
    from skyclear.restore.analysis import save_maps
    from skyclear.restore.batch import PROVENANCE_KEY
    from skyclear.restore.images import write_photo
    from skyclear.restore.memory import activation_bytes, available_bytes, fitting_tile

    height, width = photo.image.shape[-2:]
    tile = options.tile
    if not tile:
        config, precision = restorer.config.model, 2 if restorer.bf16 else 4
        free = available_bytes(restorer.device)
        tile = fitting_tile(config, height, width, int(0.8 * free), precision)
        if tile:
            needed = activation_bytes(config, height, width, precision)
            say(f"{job.name}: {width}x{height} needs about {_gib(needed)} whole, "
                f"{_gib(free)} free; restoring it in {tile}-pixel tiles")  # fmt: skip
    generator = torch.Generator().manual_seed(options.seed) if options.noisy else None
    if tile:
        overlap = options.overlap if options.tile else None
        restored, aux = restorer.tiled(photo.image, tile, overlap, options.steps, generator,
                                       remove=options.removal())  # fmt: skip
    else:
        restored, aux = restorer(photo.image, options.steps, generator, options.removal())
    text = {PROVENANCE_KEY: provenance}
    write_photo(job.output, photo, restored, text, options.keep_profile)
    if job.maps is not None:
        save_maps(job.maps, aux.maps[0], aux.weights[0], text)
