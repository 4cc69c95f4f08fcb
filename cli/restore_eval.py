"""``restore eval``: the per-tier table of a checkpoint on a dataset split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ._params import PathOrURL
from ._restore_options import (
    check_lpips,
    load_lpips,
    lpips_options,
    method_option,
    removal_options,
    remove_set,
    weights_option,
)


@click.command(name="eval")
@click.option(
    "--ckpt",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Checkpoint (last.pt or best.pt of a run).",
)
@click.option(
    "--data",
    required=True,
    type=PathOrURL(exists=True),
    help="A make-cdd11 store, its HDF5 export, a CDD-11 folder or a folder of photos.",
)
@click.option("--split", type=click.Choice(["train", "test"]), default="test", show_default=True)
@click.option(
    "--steps",
    type=click.IntRange(1),
    help="Network evaluations per image (default: the checkpoint's method's own: 1 for f2d "
    "and fm, 100 for irsde, 4 for irflow and resflow; for f2d more run the exact sampler).",
)
@method_option
@removal_options
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for eval.json, eval.md and examples.png (default: print only): new, empty "
    "or an earlier report's, whose files are replaced.",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@weights_option
@click.option("--y-channel", is_flag=True, help="PSNR and SSIM on BT.601 luma instead of RGB.")
@click.option(
    "--workers", type=click.IntRange(0), default=0, show_default=True, help="Loader processes."
)
@lpips_options
@click.option(
    "--fid-inception",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="pytorch-fid's Inception-v3 weights (pt_inception-2015-12-05-6726825d.pth): adds "
    "the split's FID, restored and input against clean.",
)
def evaluate(
    ckpt: Path,
    data: Path | str,
    split: str,
    steps: int | None,
    method: str | None,
    out: Path | None,
    device: str,
    weights: str,
    y_channel: bool,
    workers: int,
    lpips_alexnet: Path | None,
    lpips_lin: Path | None,
    fid_inception: Path | None,
    remove_names: str | None,
    keep_names: str | None,
) -> None:
    """Score a checkpoint tier by tier at full resolution: PSNR and SSIM (8-bit RGB),
    image and pixel selectivity, the most-over-least ratio, mask MAE and IoU and presence
    accuracy, with single / pair / triple averages and the untouched input's scores
    beside them; under the table, each degradation's pixel selectivity. Scores that read
    the maps per pixel show – without masks, or for routing without per-pixel maps.

    With --out: eval.json (every sample's scores too), eval.md and examples.png (one
    test sample per tier: degraded, restored, clean and the parser's four maps).

    With --lpips-alexnet and --lpips-lin: LPIPS (v0.1, AlexNet) of the restored and the
    input images against the clean ones, as two more columns.

    With --fid-inception: FID of the restored and of the input images against the clean
    ones over the whole split, on a line under the table.

    With --remove (or --keep) and a checkpoint trained with remove-sets: the network is
    told to remove only those degradations, and every score is taken against the partial
    target, the clean photo degraded by what the sample keeps (replayed from the store's
    parameters).

    Weight files must already be on disk; nothing is downloaded, and they are read without
    running code."""
    from skyclear.restore.checkpoint import CheckpointError
    from skyclear.restore.evaluate import evaluate_checkpoint
    from skyclear.restore.report import check_report_folder, to_markdown, write_report
    from tqdm import tqdm

    check_lpips(lpips_alexnet, lpips_lin)
    remove = remove_set(remove_names, keep_names)
    inputs = [ckpt, data]
    if out is not None:  # refused before the evaluation, not after it
        try:
            check_report_folder(out, inputs)
        except ValueError as error:
            raise click.UsageError(str(error)) from error

    bar: Any = None

    def start(total: int) -> None:
        nonlocal bar
        bar = tqdm(total=total, unit=" images", desc="eval", dynamic_ncols=True)

    try:
        lpips = load_lpips(lpips_alexnet, lpips_lin)
        inception = None
        if fid_inception is not None:
            from skyclear.restore.inception import InceptionFeatures

            inception = InceptionFeatures.from_file(fid_inception)
        evaluation = evaluate_checkpoint(
            ckpt,
            data,
            split,
            steps,
            device,
            workers,
            y_channel,
            weights,
            progress=lambda n: bar.update(n),
            on_start=start,
            lpips=lpips,
            inception=inception,
            method=method,
            remove=remove,
        )
    except (CheckpointError, ValueError) as error:
        raise click.UsageError(str(error)) from error
    finally:
        if bar is not None:
            bar.close()
    click.echo(to_markdown(evaluation.rows, evaluation.fid), nl=False)
    if out is not None:
        meta = {
            "checkpoint": str(ckpt),
            "data": str(data),
            "split": split,
            "method": evaluation.method,
            "steps": evaluation.steps,
            "weights": weights,
            "channel": "Y" if y_channel else "RGB",
            **({"remove": sorted(remove)} if remove is not None else {}),
        }
        if lpips_alexnet is not None and lpips_lin is not None:
            meta |= {"lpips_alexnet": str(lpips_alexnet), "lpips_lin": str(lpips_lin)}
        if fid_inception is not None:
            meta["fid_inception"] = str(fid_inception)
        try:
            paths = write_report(evaluation, meta, out, inputs)
        except ValueError as error:  # something was put at --out while evaluating
            raise click.ClickException(str(error)) from error
        click.echo("wrote " + ", ".join(str(path) for path in paths))
