"""Options that several ``restore`` commands share, defined once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from skyclear.restore.inference import Restorer

_WEIGHT_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def lpips_options(command: Callable[..., None]) -> Callable[..., None]:
    """``--lpips-alexnet`` and ``--lpips-lin``: local weights that add LPIPS scores."""
    alexnet = click.option(
        "--lpips-alexnet",
        type=_WEIGHT_FILE,
        help="torchvision's AlexNet weights (alexnet-owt-7be5be79.pth), for LPIPS; with "
        "--lpips-lin.",
    )
    lin = click.option(
        "--lpips-lin",
        type=_WEIGHT_FILE,
        help="The LPIPS v0.1 linear layers for AlexNet (alex.pth of the lpips package); "
        "with --lpips-alexnet.",
    )
    return alexnet(lin(command))


def check_lpips(alexnet: Path | None, lin: Path | None) -> None:
    """The two LPIPS files come together or not at all (a usage error, before any work)."""
    if (alexnet is None) != (lin is None):
        raise click.UsageError("--lpips-alexnet and --lpips-lin go together: give both")


def load_lpips(alexnet: Path | None, lin: Path | None) -> Any:
    """The LPIPS metric from its two files, or ``None`` without them."""
    if alexnet is None or lin is None:
        return None
    from skyclear.restore.perceptual import LPIPS

    return LPIPS.from_files(alexnet, lin)


def method_option(command: Callable[..., None]) -> Callable[..., None]:
    """``--method``: refuse a checkpoint trained as another method."""
    return click.option(
        "--method",
        help="Refuse the checkpoint unless it was trained as this method (f2d, fm, irsde, "
        "irflow, resflow): its own sampler is always the one used.",
    )(command)


def weights_option(command: Callable[..., None]) -> Callable[..., None]:
    """``--weights``: the checkpoint's moving average of the weights, or its raw ones."""
    return click.option(
        "--weights",
        type=click.Choice(["ema", "model"]),
        default="ema",
        show_default=True,
        help="The checkpoint's moving-average weights (ema) or its raw ones (model).",
    )(command)


def load_restorer(ckpt: Path, device: str, weights: str) -> Restorer:
    """The checkpoint's restorer on ``device``; a bad device or checkpoint is a usage
    error naming its option."""
    from skyclear.restore.checkpoint import CheckpointError
    from skyclear.restore.inference import Restorer
    from skyclear.restore.runtime import resolve_device

    try:
        resolve_device(device)
    except (ValueError, RuntimeError) as error:
        raise click.BadParameter(str(error), param_hint="--device") from error
    try:
        return Restorer.from_checkpoint(ckpt, device=device, weights=weights)
    except CheckpointError as error:
        raise click.BadParameter(str(error), param_hint="--ckpt") from error


def removal_options(command: Callable[..., None]) -> Callable[..., None]:
    """``--remove`` and ``--keep``: which degradations a remove-set network removes."""
    command = click.option(
        "--keep",
        "keep_names",
        help="The other way round: keep these degradations and remove the rest.",
    )(command)
    return click.option(
        "--remove",
        "remove_names",
        help="Remove only these degradations, comma-separated (low, haze, rain, snow), and "
        "keep the others as they are. Needs a checkpoint trained with remove-sets "
        "(--set data.partial=0.3 --set model.removal=true).",
    )(command)


def remove_set(remove: str | None, keep: str | None) -> frozenset[str] | None:
    """The degradations ``--remove`` or ``--keep`` asks to remove (``None``: all, as
    without either); a usage error for unknown names or both options."""
    from skyclear.datasets.partial import parse_removal
    from skyclear.degrade.names import DEGRADATIONS

    if remove is not None and keep is not None:
        raise click.UsageError("--remove and --keep exclude each other")
    given, hint = (remove, "--remove") if remove is not None else (keep, "--keep")
    if given is None:
        return None
    try:
        named = parse_removal(given)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint=hint) from error
    return named if remove is not None else frozenset(DEGRADATIONS) - named
