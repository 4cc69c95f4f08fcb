"""The ``degrade`` command: build, inspect and preview composite degradations."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from skyclear.degrade.depth_model import DEPTH_KINDS
from skyclear.degrade.names import DEPTH_PRIORS, ORDERS
from skyclear.degrade.presets import PRESETS

from ._params import PathOrURL

if TYPE_CHECKING:  # the store package is imported by the commands that need it
    from skyclear.degrade.store import Skipped

_PATH = click.Path(path_type=Path)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="skyclear")
def main() -> None:
    """Physically modelled low light, haze, rain and snow, with ground-truth masks.

    Start with `degrade samples --out samples/`, then
    `degrade preview --src samples/photos/astronaut.png --out grid.png`, then
    `degrade make-cdd11 --src samples/photos --out data.zarr --size 256`.
    """


def _stacked(command: Callable[..., None], options: Sequence[Any]) -> Callable[..., None]:
    """``command`` with ``options`` applied, the first shown first in ``--help``."""
    for option in reversed(options):
        command = option(command)
    return command


def _operator_options(command: Callable[..., None]) -> Callable[..., None]:
    """``--preset``, ``--order`` and ``--depth-prior``: which operators, in which order."""
    options = [
        click.option(
            "--preset",
            type=click.Choice(PRESETS),
            default=PRESETS[0],
            show_default=True,
            help="Operator ranges. physical: skyclear's physical defaults; cdd11: the "
            "severity of CDD-11's own synthesis (its order, lighter haze, Gaussian-like "
            "noise, denser rain), calibrated in docs/physics.md.",
        ),
        click.option(
            "--order",
            type=click.Choice(ORDERS),
            help="physical: haze, particles, then light and sensor; cdd11: CDD-11's low, "
            "rain, snow, haze. Default: the preset's (physical, cdd11).",
        ),
        click.option(
            "--depth-prior",
            type=click.Choice(DEPTH_PRIORS),
            help="Haze depth for a photo without a depth map. ground: flat ground with a "
            "soft horizon where the photo looks open (a smooth top, such as sky), a "
            "declared distance where it does not, following the photo's edges; uniform: "
            "every pixel at that distance; flat: the flat ground alone, with a hard horizon "
            "(earlier stores). Default: the preset's (ground, uniform).",
        ),
    ]
    return _stacked(command, options)


def _check_depth_model_options(depth_model: Path | None) -> None:
    """``--depth-kind``, ``--depth-near`` and ``--depth-far`` describe ``--depth-model``:
    given without it they would do nothing, so they are refused."""
    if depth_model is not None:
        return
    context = click.get_current_context()
    given = [
        f"--{name.replace('_', '-')}"
        for name in ("depth_kind", "depth_near", "depth_far")
        if context.get_parameter_source(name) != click.core.ParameterSource.DEFAULT
    ]
    if given:
        raise click.UsageError(f"{', '.join(given)} describe --depth-model, which is not given")


def _depth_model_options(command: Callable[..., None]) -> Callable[..., None]:
    """``--depth-model DIR`` and how its output becomes metres."""
    options = [
        click.option(
            "--depth-model",
            type=click.Path(exists=True, file_okay=False, path_type=Path),
            help="Folder of a depth-estimation model saved with Hugging Face transformers "
            "(model and image processor, e.g. Depth Anything V2 or DPT, downloaded by you; "
            "needs skyclear[depth]). Gives depth to photos without a depth file.",
        ),
        click.option(
            "--depth-kind",
            type=click.Choice(DEPTH_KINDS),
            help="What the model predicts: inverse (relative; larger is nearer) or metric "
            "(metres). Default: what the model's config declares.",
        ),
        click.option(
            "--depth-near",
            type=click.FloatRange(0, min_open=True),
            default=2.0,
            show_default=True,
            help="Metres of the nearest part of a photo, for inverse depth.",
        ),
        click.option(
            "--depth-far",
            type=click.FloatRange(0, min_open=True),
            default=150.0,
            show_default=True,
            help="Metres of the farthest part of a photo, for inverse depth.",
        ),
    ]
    return _stacked(command, options)


@main.command()
@click.option(
    "--src",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Clean photo (any format Pillow reads).",
)
@click.option("--out", required=True, type=_PATH, help="PNG file to write.")
@click.option(
    "--depth",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Depth map for haze: 16-bit PNG or .npy in metres (or disparity, see "
    "--disparity). Without it, the --depth-prior.",
)
@click.option(
    "--depth-scale",
    type=float,
    default=0.001,
    show_default=True,
    help="Metres per unit of a 16-bit depth PNG.",
)
@click.option(
    "--disparity",
    is_flag=True,
    help="--depth holds stereo disparity in pixels (.npy); convert it with "
    "--focal-baseline and --doffs. Disparity is never used as depth.",
)
@click.option(
    "--focal-baseline", type=float, help="Focal length (px) times baseline (m), for --disparity."
)
@click.option(
    "--doffs",
    type=float,
    default=0.0,
    show_default=True,
    help="Disparity offset of the rectified pair (px), for --disparity.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the degradations.")
@click.option(
    "--size",
    type=click.IntRange(32, 2048),
    default=192,
    show_default=True,
    help="Longer side of each thumbnail, pixels.",
)
@_operator_options
@_depth_model_options
def preview(
    src: Path,
    out: Path,
    depth: Path | None,
    depth_scale: float,
    disparity: bool,
    focal_baseline: float | None,
    doffs: float,
    seed: int,
    size: int,
    preset: str,
    order: str | None,
    depth_prior: str | None,
    depth_model: Path | None,
    depth_kind: str | None,
    depth_near: float,
    depth_far: float,
) -> None:
    """Render one PNG: the clean photo, its 11 CDD-11 tiers and their masks."""
    _check_depth_model_options(depth_model)
    import numpy as np
    from skyclear.degrade import depth_from_disparity, depth_to_tensor, load_depth
    from skyclear.degrade.io import from_numpy, read_image
    from skyclear.degrade.presets import preset as composite_of
    from skyclear.degrade.preview import preview_grid

    try:
        image = from_numpy(read_image(src))
        depth_tensor = None
        if depth is not None:
            if disparity:
                if focal_baseline is None:
                    raise click.UsageError("--disparity needs --focal-baseline")
                if depth.suffix.lower() != ".npy":
                    raise click.UsageError("--disparity reads a .npy disparity map")
                depth_map = depth_from_disparity(np.load(depth), focal_baseline, doffs)
            else:
                depth_map = load_depth(depth, scale=depth_scale)
            if depth_map.shape != tuple(image.shape[-2:]):
                raise click.BadParameter(
                    f"depth map is {depth_map.shape[1]}x{depth_map.shape[0]} but the image is "
                    f"{image.shape[-1]}x{image.shape[-2]}",
                    param_hint="--depth",
                )
            depth_tensor = depth_to_tensor(depth_map)
        elif disparity:
            raise click.UsageError("--disparity needs --depth")
        elif depth_model is not None:
            from skyclear.degrade.depth_model import DepthModel
            from skyclear.degrade.io import to_numpy

            model = DepthModel(str(depth_model), depth_kind, depth_near, depth_far)
            depth_tensor = depth_to_tensor(model(to_numpy(image)))
        sheet = preview_grid(
            image,
            depth=depth_tensor,
            seed=seed,
            size=size,
            composite=composite_of(preset, depth_prior, order),
        )
    except (ValueError, ImportError) as error:
        raise click.ClickException(str(error)) from error
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    click.echo(f"wrote {out} ({sheet.width}x{sheet.height})")


@main.command()
@click.option("--out", required=True, type=_PATH, help="Folder to write the photos into.")
def samples(out: Path) -> None:
    """Write the sample photos that ship inside scikit-image (no download).

    OUT/photos/: astronaut, chelsea, coffee, motorcycle, rocket (PNG). OUT/depth/:
    motorcycle.npy, the Middlebury motorcycle's metric depth converted from its
    ground-truth disparity.
    """
    from skyclear.degrade.samples import write_samples

    for path in write_samples(out):
        click.echo(str(path))


def _parse_shard(value: str | None) -> tuple[int, int]:
    if value is None:
        return (0, 1)
    try:
        index, count = (int(part) for part in value.split("/"))
    except ValueError:
        raise click.BadParameter("use K/N, e.g. 3/8", param_hint="--shard") from None
    if count < 1 or not 0 <= index < count:
        raise click.BadParameter(f"need 0 <= K < N, got {value}", param_hint="--shard")
    return (index, count)


def _progress_bar(stage: str, total: int):  # type: ignore[no-untyped-def]
    from tqdm import tqdm

    bar = tqdm(total=total, unit=" samples", desc=stage, dynamic_ncols=True, leave=True)
    return bar.update


@main.command("make-cdd11")
@click.option(
    "--src",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of clean photos (walked recursively; unusable files are skipped and listed).",
)
@click.option(
    "--out",
    required=True,
    type=PathOrURL(),
    help="The dataset to write: a Zarr store, or a folder / .h5 with --format. A store may "
    "be a URL of an object store, such as s3://bucket/data.zarr (needs skyclear[s3]; "
    "credentials and endpoint as the AWS tools take them).",
)
@click.option(
    "--size",
    type=click.IntRange(8, 8192),
    default=512,
    show_default=True,
    help="Resize the short side to S and crop the centre to SxS.",
)
@click.option(
    "--tiers",
    default="all",
    show_default=True,
    help="Comma-separated subset of the 11 tiers (e.g. low,haze_rain), or 'all'.",
)
@click.option(
    "--variants",
    type=click.IntRange(1, 1000),
    default=1,
    show_default=True,
    help="Independent draws per photo and tier.",
)
@click.option(
    "--seed",
    type=click.IntRange(0, 2**63 - 1),
    default=0,
    show_default=True,
    help="Seed of every random draw; the store depends on it, not on --workers.",
)
@click.option(
    "--workers", type=click.IntRange(1, 256), default=1, show_default=True, help="Worker processes."
)
@click.option(
    "--depth",
    "depth_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of depth maps matched by relative path and stem (STEM.depth.npy or "
    "STEM.npy in metres, STEM.png 16-bit in mm). A photo without one takes its depth "
    "from --depth-model, else haze uses the --depth-prior; each sample records which.",
)
@_operator_options
@_depth_model_options
@click.option(
    "--test-fraction",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.1,
    show_default=True,
    help="Fraction of photos (never samples) in the test split.",
)
@click.option(
    "--test-folder",
    metavar="SUB",
    help="Put exactly the photos under SRC/SUB in the test split (instead of "
    "--test-fraction): crops of one original kept in one folder never straddle the splits.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["zarr", "folder", "hdf5"]),
    default="zarr",
    show_default=True,
    help="zarr: the store itself; folder: CDD-11's layout plus masks/; hdf5: the "
    "store's arrays in one file (both built from a Zarr store at OUT.zarr-staging).",
)
@click.option(
    "--shard",
    metavar="K/N",
    help="Fill only the photos i with i % N == K (for N independent jobs on one store). "
    "Run the command once more without --shard to check and complete the store.",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="Synthesise on a dask.distributed cluster: local:N starts one of N one-thread "
    "workers here; tcp://host:8786 uses a running scheduler, whose workers must see --src "
    "and --out at the same paths. The store's bytes are those of a local run; an "
    "interrupted run resumes from the samples written. Needs pip install 'skyclear[dask]'.",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(1),
    help="Decode photos of up to N pixels (default: Pillow's decompression-bomb limit, about "
    "89.5 million; larger files are skipped as bombs). Raise it only for photos you trust.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace a skyclear store (or export) at --out that another command made. Nothing "
    "else is ever replaced: not a folder or file skyclear did not write, not --src.",
)
def make_cdd11(
    src: Path,
    out: Path | str,
    size: int,
    tiers: str,
    variants: int,
    seed: int,
    workers: int,
    depth_dir: Path | None,
    preset: str,
    order: str | None,
    depth_prior: str | None,
    depth_model: Path | None,
    depth_kind: str | None,
    depth_near: float,
    depth_far: float,
    test_fraction: float,
    test_folder: str | None,
    fmt: str,
    shard: str | None,
    scheduler: str | None,
    max_pixels: int | None,
    overwrite: bool,
) -> None:
    """Build a CDD-11-style dataset with ground-truth masks from a folder of clean photos.

    Deterministic: the result depends only on the photos, the options and --seed.
    Resumable: if interrupted, run the same command again and it finishes the store.
    """
    from skyclear.degrade.names import TIERS
    from skyclear.degrade.store import BuildOptions, NoUsablePhotoError, StoreError, build

    _check_depth_model_options(depth_model)

    chosen = TIERS if tiers == "all" else tuple(t.strip() for t in tiers.split(",") if t.strip())
    unknown = [t for t in chosen if t not in TIERS]
    if unknown or not chosen:
        raise click.BadParameter(f"unknown tiers {unknown}; choose from {', '.join(TIERS)}",
                                 param_hint="--tiers")  # fmt: skip
    shard_spec = _parse_shard(shard)
    if scheduler is not None:
        from skyclear.degrade.store.writer import parse_scheduler

        try:
            scheduler = parse_scheduler(scheduler)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--scheduler") from error
        if workers > 1 or shard_spec != (0, 1):
            raise click.UsageError("--scheduler runs the whole build: drop --workers and --shard")
    if fmt != "zarr" and shard_spec != (0, 1):
        raise click.UsageError("--shard builds a Zarr store; export it with `degrade export`")
    store: Path | str = out
    inputs = [src, depth_dir, depth_model]
    if fmt != "zarr":
        if isinstance(out, str):
            raise click.UsageError(
                f"--format {fmt} writes local files; make the store at {out} and export it "
                "with `degrade export`, or write the export to a local path"
            )
        store = out.with_name(out.name + ".zarr-staging")
        _check_export_out(out, inputs, overwrite)
    try:
        options = BuildOptions(
            src=str(src), size=size, tiers=chosen, variants=variants, seed=seed, order=order,
            test_fraction=test_fraction, depth_dir=None if depth_dir is None else str(depth_dir),
            max_pixels=max_pixels, test_folder=test_folder, depth_prior=depth_prior, preset=preset,
            depth_model=None if depth_model is None else str(depth_model),
            depth_kind=depth_kind, depth_near=depth_near, depth_far=depth_far,
        )  # fmt: skip
        summary = build(options, store, workers=workers, shard=shard_spec, overwrite=overwrite,
                        progress=_progress_bar, scheduler=scheduler)  # fmt: skip
        _echo_skipped(summary.skipped)
        if summary.complete and options.has_depth:
            _echo_depth_sources(store)
        if summary.complete and fmt != "zarr":
            assert isinstance(store, Path) and isinstance(out, Path)  # refused above otherwise
            _replace_with_export(store, out, fmt, summary.samples, inputs)
    except NoUsablePhotoError as error:
        _echo_skipped(error.skipped)
        raise click.ClickException(error.headline) from error
    except (StoreError, ValueError, OSError, ImportError) as error:
        raise click.ClickException(str(error)) from error
    state = "complete" if summary.complete else f"shard {shard} done (not yet complete)"
    click.echo(
        f"{out}: {summary.samples} samples from {summary.sources} photos, {state}; "
        f"{summary.written} written this run in {summary.seconds:.1f} s "
        f"({summary.samples_per_second:.1f} samples/s; synthesis "
        f"{summary.synthesis_seconds:.1f} s, {summary.synthesis_samples_per_second:.1f} "
        f"samples/s); {len(summary.skipped)} files skipped"
    )


def _echo_depth_sources(store: Path | str) -> None:
    """How many photos took their depth from a file, the model and the prior: a folder of
    depth maps named unlike the photos would otherwise leave every photo to the prior."""
    import json

    import zarr

    group: Any = zarr.open_group(str(store), mode="r")
    per_source = len(group.attrs["tiers"]) * int(group.attrs["variants"])
    firsts = group["params"][::per_source]  # one sample of each photo
    counts: dict[str, int] = {}
    for row in firsts:
        source = json.loads(str(row)).get("depth_source", "prior")
        counts[source] = counts.get(source, 0) + 1
    shown = ", ".join(f"{counts.get(name, 0)} from {name}" for name in ("file", "model", "prior"))
    click.echo(f"depth of the photos: {shown}")


def _echo_skipped(skipped: Sequence[Skipped]) -> None:
    """One ``skipped FILE: REASON`` line per file left out, on stderr."""
    for item in skipped:
        click.echo(f"skipped {item.file}: {item.reason}", err=True)


def _check_export_out(out: Path, inputs: list[Path | None], overwrite: bool) -> None:
    """Before building: ``out`` may only be an earlier export (with --overwrite), an empty
    folder or nothing, and must keep clear of the inputs."""
    from skyclear.degrade.store import StoreError
    from skyclear.degrade.store.export import check_export_path

    try:
        check_export_path(out, inputs)
    except StoreError as error:
        raise click.ClickException(str(error)) from error
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise click.UsageError(f"{out} exists; pass --overwrite to replace it")


def _export(store: Path | str, out: Path, fmt: str, samples: int) -> None:
    """Write a complete store as ``fmt`` ("folder" or "hdf5") at ``out``."""
    from skyclear.degrade.store import export_folder, export_hdf5

    exporter = export_folder if fmt == "folder" else export_hdf5
    exporter(store, out, progress=_progress_bar("export", samples))


def _replace_with_export(
    store: Path, out: Path, fmt: str, samples: int, inputs: list[Path | None]
) -> None:
    """Export the staging store to ``out`` (replacing only an earlier export), then remove
    the staging store."""
    import shutil

    from skyclear.degrade.store.export import remove_export

    remove_export(out, inputs)
    _export(store, out, fmt, samples)
    shutil.rmtree(store)


@main.command("export")
@click.option(
    "--store",
    required=True,
    type=PathOrURL(exists=True, file_okay=False),
    help="A complete make-cdd11 Zarr store (a folder, or a URL such as s3://bucket/data.zarr).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["folder", "hdf5"]),
    required=True,
    help="folder: CDD-11's layout plus masks/; hdf5: the same arrays in one file.",
)
@click.option(
    "--out", required=True, type=_PATH, help="Folder or .h5 file to write; must not exist."
)
def export(store: Path | str, fmt: str, out: Path) -> None:
    """Export a complete store as CDD-11's folder layout or as HDF5."""
    from skyclear.degrade.store import StoreError, open_store

    if out.exists():
        raise click.UsageError(f"{out} exists; remove it first")
    try:
        _export(store, out, fmt, open_store(store)["degraded"].shape[0])
    except (StoreError, OSError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"wrote {out}")
