"""The ``degrade`` command: build, inspect and preview composite degradations."""

from __future__ import annotations

from pathlib import Path

import click
from skyclear.degrade.names import ORDERS

_PATH = click.Path(path_type=Path)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="skyclear")
def main() -> None:
    """Physically modelled low light, haze, rain and snow, with ground-truth masks.

    Start with `degrade samples --out samples/`, then
    `degrade preview --src samples/astronaut.png --out grid.png`.
    """


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
    "--disparity). Without it, a flat-ground prior is used.",
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
@click.option(
    "--order",
    type=click.Choice(ORDERS),
    default="physical",
    show_default=True,
    help="physical: haze, particles, then light and sensor; cdd11: CDD-11's low, rain, snow, haze.",
)
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
    order: str,
) -> None:
    """Render one PNG: the clean photo, its 11 CDD-11 tiers and their masks."""
    import numpy as np
    from skyclear.degrade import Composite, depth_from_disparity, depth_to_tensor, load_depth
    from skyclear.degrade.io import from_numpy, read_image
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
        sheet = preview_grid(
            image,
            depth=depth_tensor,
            seed=seed,
            size=size,
            composite=Composite(order=order),
        )
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    click.echo(f"wrote {out} ({sheet.width}x{sheet.height})")


@main.command()
@click.option("--out", required=True, type=_PATH, help="Folder to write the photos into.")
def samples(out: Path) -> None:
    """Write the sample photos that ship inside scikit-image (no download).

    astronaut, chelsea, coffee, rocket, and the Middlebury motorcycle with its metric
    depth (motorcycle.depth.npy, converted from ground-truth disparity).
    """
    from skyclear.degrade.samples import write_samples

    for path in write_samples(out):
        click.echo(str(path))
