"""``restore run``: restore photos, one file or a folder, with a trained checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from skyclear.restore.batch import Job
    from skyclear.restore.inference import Restorer

__all__ = ["run"]

_OUT_OF_MEMORY = "out of memory; restore it in tiles (--tile 512) or on another device"


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
    default=1,
    show_default=True,
    help="Network evaluations per photo: 1 is the one-step restoration; more run the exact "
    "stochastic sampler.",
)
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
    "--device",
    default="auto",
    show_default=True,
    help="auto (CUDA when present), cpu, cuda or cuda:N.",
)
@click.option(
    "--weights",
    type=click.Choice(["ema", "model"]),
    default="ema",
    show_default=True,
    help="The checkpoint's moving-average weights (ema) or its raw ones (model).",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Restore again photos whose outputs exist. Without it they are kept and counted, "
    "so a second run finishes an interrupted one.",
)
def run(
    ckpt: Path,
    source: Path,
    out: Path,
    steps: int,
    seed: int,
    tile: int,
    overlap: int | None,
    save_maps: bool,
    device: str,
    weights: str,
    overwrite: bool,
) -> None:
    """Restore photos that are dark, hazy, rainy or snowy.

    Any still image Pillow reads: grey stays grey, alpha is kept as it is, 16-bit photos
    give 16-bit PNGs, EXIF orientation is applied. A file that cannot be restored is
    reported on one line and the others go on; the exit status is then 1.
    """
    from skyclear.restore.batch import IMAGE_SUFFIXES, plan_run
    from skyclear.restore.checkpoint import CheckpointError
    from skyclear.restore.inference import Restorer
    from skyclear.restore.runtime import resolve_device

    if overlap is not None and not tile:
        raise click.UsageError("--overlap needs --tile")
    try:
        resolve_device(device)
    except (ValueError, RuntimeError) as error:
        raise click.BadParameter(str(error), param_hint="--device") from error
    try:
        restorer = Restorer.from_checkpoint(ckpt, device=device, weights=weights)
    except CheckpointError as error:
        raise click.BadParameter(str(error), param_hint="--ckpt") from error
    _check_tiles(restorer, tile, overlap)
    try:
        plan = plan_run(source, out, save_maps=save_maps, overwrite=overwrite)
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    if not plan.total:
        suffixes = " ".join(sorted(IMAGE_SUFFIXES))
        raise click.UsageError(f"no photos under {source} (files ending {suffixes})")

    for name, reason in plan.refused:
        click.echo(f"failed {name}: {reason}", err=True)
    restored = _restore_all(restorer, plan.todo, source.is_dir(), steps, seed, tile, overlap)
    failed = len(plan.refused) + len(plan.todo) - restored
    kept = f"; {len(plan.existing)} already there, kept (--overwrite redoes them)"
    click.echo(
        f"restored {restored} of {plan.total} images into {out}; {failed} failed"
        + (kept if plan.existing else "")
    )
    if failed:
        click.get_current_context().exit(1)


def _check_tiles(restorer: Restorer, tile: int, overlap: int | None) -> None:
    smallest = 2 * restorer.config.model.multiple
    if tile and tile < smallest:
        raise click.BadParameter(f"must be 0 or >= {smallest}, got {tile}", param_hint="--tile")
    if tile and overlap is not None and overlap >= tile // 2:
        raise click.BadParameter(
            f"must be less than half the tile ({tile // 2}), got {overlap}", param_hint="--overlap"
        )


def _restore_all(
    restorer: Restorer,
    jobs: list[Job],
    show_progress: bool,
    steps: int,
    seed: int,
    tile: int,
    overlap: int | None,
) -> int:
    """Restore each job in turn under a progress bar; a job that fails is reported on one
    line of stderr (its name and why) and the others go on. Returns how many succeeded."""
    import torch
    from skyclear.restore.images import UnusableImageError
    from tqdm import tqdm

    bar = tqdm(jobs, desc="restoring", unit=" photos", disable=not show_progress or len(jobs) < 2,
               file=sys.stderr, dynamic_ncols=True)  # fmt: skip
    restored = 0
    for job in bar:
        try:
            _restore_one(restorer, job, steps, seed, tile, overlap)
        except UnusableImageError as error:
            reason = error.reason
        except (torch.cuda.OutOfMemoryError, MemoryError):
            reason = _OUT_OF_MEMORY
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except OSError as error:
            reason = f"could not write its result ({error})"
        else:
            restored += 1
            continue
        bar.write(f"failed {job.name}: {reason}", file=sys.stderr)
    return restored


def _restore_one(
    restorer: Restorer, job: Job, steps: int, seed: int, tile: int, overlap: int | None
) -> None:
    import torch
    from skyclear.restore.images import read_photo, save_png, write_photo
    from skyclear.restore.visual import maps_strip

    photo = read_photo(job.source)
    generator = torch.Generator().manual_seed(seed) if steps > 1 else None
    if tile:
        restored, aux = restorer.tiled(photo.image, tile, overlap, steps, generator)
    else:
        restored, aux = restorer(photo.image, steps, generator)
    write_photo(job.output, photo, restored)
    if job.maps is not None:
        save_png(job.maps, maps_strip(aux.maps[0], aux.weights[0]))
