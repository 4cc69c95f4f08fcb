"""``restore compare``: methods side by side under one protocol."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ._params import PathOrURL
from ._restore_options import check_lpips, load_lpips, lpips_options

_OUTPUTS = ("compare.md", "compare.json", "compare.png")


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--data",
    required=True,
    type=PathOrURL(exists=True),
    help="The store whose test split every run is scored on.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for compare.md, compare.json and compare.png: new, empty or an earlier "
    "comparison's, whose three files are replaced.",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--also-nfe",
    type=click.IntRange(1, 1000),
    multiple=True,
    help="Also score every run at this many network evaluations (repeatable), beside its "
    "method's own.",
)
@click.option(
    "--per-tier",
    type=click.IntRange(1),
    help="Score only the first N test samples of each tier (default: all).",
)
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True,
              help="Seed of every sampler's noise, the same for every image and run.")  # fmt: skip
@lpips_options
def compare(
    runs: tuple[Path, ...],
    data: Path | str,
    out: Path,
    device: str,
    also_nfe: tuple[int, ...],
    per_tier: int | None,
    seed: int,
    lpips_alexnet: Path | None,
    lpips_lin: Path | None,
) -> None:
    """Score runs of any methods (run folders or checkpoints; a folder's last.pt) on one
    store's test split with one protocol: the same samples, the same metric code as
    `restore eval`, each run at its method's own number of network evaluations (and at
    --also-nfe), milliseconds per image timed on the same device in the same command.

    Writes compare.md and compare.json (PSNR and SSIM per tier group, NFE, ms per image,
    parameters) and compare.png (one test image per tier group restored by every run,
    with its PSNR). A run trained on another store or on fewer tiers is still compared,
    with a note that says so.
    """
    from skyclear.restore.checkpoint import CheckpointError
    from skyclear.restore.compare import compare_runs, write_comparison

    check_lpips(lpips_alexnet, lpips_lin)
    _check_out(out)
    for run in runs:
        if run.is_dir() and not (run / "last.pt").is_file():
            raise click.UsageError(f"{run}: a run folder without last.pt")
    lpips = load_lpips(lpips_alexnet, lpips_lin)
    try:
        comparison = compare_runs(
            runs, data, device, also_nfe, per_tier, seed, lpips,
            progress=lambda what: click.echo(f"scoring {what}", err=True),
        )  # fmt: skip
    except (CheckpointError, ValueError) as error:
        raise click.UsageError(str(error)) from error
    paths = write_comparison(comparison, out)
    click.echo((out / "compare.md").read_text(), nl=False)
    click.echo("wrote " + ", ".join(str(path) for path in paths))


def _check_out(out: Path) -> None:
    """``out`` must be new, empty, or hold an earlier comparison (and nothing else)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise click.UsageError(f"--out {out} is a file")
    present = {path.name for path in out.iterdir()}
    if not present:
        return
    earlier = out / "compare.json"
    try:
        ours = json.loads(earlier.read_text()).get("format") == "skyclear.compare/1"
    except (OSError, ValueError, AttributeError):
        ours = False
    if not ours or present - set(_OUTPUTS):
        raise click.UsageError(
            f"--out {out} holds files that are not an earlier comparison's; give a new or "
            "empty folder (nothing there is overwritten)"
        )
