"""``restore export``: a checkpoint as one ONNX file, checked against torch."""

from __future__ import annotations

from pathlib import Path

import click

from ._restore_options import weights_option

__all__ = ["export"]


@click.command(name="export", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--ckpt",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Checkpoint written by `restore train` (best.pt or last.pt).",
)
@click.option(
    "--format",
    "fmt",
    default="onnx",
    show_default=True,
    help="onnx, for onnxruntime and every ONNX runtime. (torchscript is refused: torch "
    "2.13 deprecates it, and a trace would fix the image size.)",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The file to write (restorer.onnx). An existing file is kept unless --overwrite.",
)
@click.option(
    "--steps",
    type=click.IntRange(1, 100),
    help="Network evaluations unrolled into the graph (default: the method's own). Only "
    "deterministic samplers export: f2d and fm at 1, darcot, irflow.",
)
@weights_option
@click.option(
    "--verify/--no-verify",
    default=True,
    show_default=True,
    help="Run the exported file on three image sizes against the network in torch; a mean "
    "absolute difference above 1e-3 fails the command (the file is kept to inspect). ONNX "
    "needs onnxruntime (pip install 'skyclear[export]').",
)
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
def export(
    ckpt: Path, fmt: str, out: Path, steps: int | None, weights: str, verify: bool, overwrite: bool
) -> None:
    """Export a trained restorer for deployment without skyclear.

    The file maps float32 (B, 3, H, W) images in [0, 1] (input `degraded`) to restored
    images (output `restored`) at any batch and image size: the method's sampler unrolled,
    padding and clamping included. docs/restore.md shows how to run it.
    """
    from skyclear.restore.checkpoint import CheckpointError
    from skyclear.restore.export import FORMATS, REFUSED, ExportError, exported_steps
    from skyclear.restore.export import export as write
    from skyclear.restore.export import verify as check
    from skyclear.restore.inference import Restorer

    if fmt in REFUSED:
        raise click.BadParameter(REFUSED[fmt], param_hint="--format")
    if fmt not in FORMATS:
        raise click.BadParameter(
            f"unknown format {fmt!r}; the formats are {', '.join(FORMATS)}", param_hint="--format"
        )
    from skyclear.degrade.outputs import OutputError, check_apart

    try:
        check_apart(out, [ckpt])
    except OutputError as error:
        raise click.BadParameter(str(error), param_hint="--out") from error
    if out.exists() and not overwrite:
        raise click.UsageError(f"{out} exists; pass --overwrite to replace it")
    if out.is_dir():
        raise click.BadParameter(f"{out} is a folder", param_hint="--out")
    if not out.parent.is_dir():
        raise click.BadParameter(f"no folder {out.parent}", param_hint="--out")
    _require("onnx", "onnxscript", purpose="ONNX export")
    if verify:
        _require("onnxruntime", purpose="verifying the ONNX file (or pass --no-verify)")
    try:
        restorer = Restorer.from_checkpoint(ckpt, device="cpu", weights=weights)
    except CheckpointError as error:
        raise click.BadParameter(str(error), param_hint="--ckpt") from error
    try:
        count = exported_steps(restorer, steps)
    except ExportError as error:
        raise click.UsageError(str(error)) from error
    click.echo(
        f"exporting {ckpt} ({restorer.method.name}, {count} network evaluation(s)) as {fmt}; "
        "this takes a minute",
        err=True,
    )
    write(restorer, out, fmt, steps)
    size = out.stat().st_size / 2**20
    click.echo(f"wrote {out} ({size:.1f} MiB)")
    if not verify:
        return
    results = check(restorer, out, steps)
    for result in results:
        shape = "x".join(str(side) for side in result.shape)
        verdict = "ok" if result.passed else "FAILED"
        click.echo(
            f"  {shape}: mean |exported - torch| {result.mean_error:.2e}, max "
            f"{result.max_error:.2e}  {verdict}"
        )
    if not all(result.passed for result in results):
        click.echo("the exported file does not match the network within 1e-3", err=True)
        click.get_current_context().exit(1)


def _require(*modules: str, purpose: str) -> None:
    import importlib.util

    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise click.UsageError(
            f"{purpose} needs {', '.join(missing)}: pip install 'skyclear[export]'"
        )
