"""``restore ablate``: the F2D-Net ablation ladder, trained and scored under one protocol."""

from __future__ import annotations

import math
import re
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

import click

from ._params import PathOrURL
from .restore_train import _Progress

_PATH = click.Path(path_type=Path)
#: Flags that are shorthands for ``--set KEY=VALUE``.
_SHORTHANDS = {"crop": "data.crop", "batch_size": "data.batch_size", "workers": "data.workers"}
_DEFAULT_NFE = ("1,2,4",)


def _values(given: tuple[str, ...]) -> list[str]:
    """Values given as ``--opt a,b``, ``--opt "a b"`` or ``--opt a --opt b``."""
    return [value for text in given for value in re.split(r"[\s,]+", text) if value]


@click.command(context_settings={"allow_extra_args": True})
@click.option(
    "--data",
    required=True,
    type=PathOrURL(exists=True),
    help="Any data restore train accepts; every run trains on it and is scored on its test split.",
)
@click.option(
    "--out",
    required=True,
    type=_PATH,
    help="Ablation folder: new, empty, or an ablation of the same data, config and budget "
    "(continued).",
)
@click.option(
    "--config",
    "config_name",
    type=click.Choice(["tiny", "small", "paper"]),
    default="tiny",
    show_default=True,
    help="The preset every variant starts from.",
)
@click.option("--steps", required=True, type=click.IntRange(1), help="Optimizer steps per run.")
@click.option(
    "--seeds", required=True, type=click.IntRange(1), help="Runs per variant (seeds 0..K-1)."
)
@click.option("--crop", type=click.IntRange(8), help="Training crop side (default: the preset's).")
@click.option("--batch-size", type=click.IntRange(1), help="Samples per step (the preset's).")
@click.option(
    "--workers", type=click.IntRange(0), help="Loader processes for training and scoring."
)
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override one config value of every variant, e.g. --set optim.lr=5e-4 (repeatable).",
)
@click.option(
    "--nfe",
    "nfe_values",
    multiple=True,
    default=_DEFAULT_NFE,
    show_default=True,
    metavar="N[,N...]",
    help="Network evaluations per image at which each run is scored: --nfe 1,2,4 or "
    "--nfe 1 --nfe 2 --nfe 4.",
)
@click.option(
    "--variants",
    "variant_values",
    multiple=True,
    metavar="NAME[,NAME...]",
    help="Run only these variants (default: fm, stochastic, experts, gate_sigmoid, "
    "gate_softmax, image, wide).",
)
@click.option(
    "--latency-side",
    type=click.IntRange(8),
    default=256,
    show_default=True,
    help="Side of the square image whose one-step restoration is timed.",
)
@click.option(
    "--retime",
    is_flag=True,
    help="Time every run's one-step restoration again, finished runs too (nothing is "
    "trained or scored again): on a quiet machine, after runs timed while other work "
    "shared it.",
)
def ablate(
    data: Path | str,
    out: Path,
    config_name: str,
    steps: int,
    seeds: int,
    assignments: tuple[str, ...],
    nfe_values: tuple[str, ...],
    variant_values: tuple[str, ...],
    latency_side: int,
    retime: bool,
    **flags: Any,
) -> None:
    """Train the F2D-Net ablation ladder on the same data, crops and budget, then score
    every run under one protocol (restore eval's, on the test split).

    \b
    The ladder, each rung adding one thing (the last two are controls):
      fm            deterministic flow matching, backbone alone
                    (model.experts=false, transport.b=0)
      stochastic    + stochastic transport (model.experts=false; b as the preset)
      experts       + four experts routed per pixel, no time gate (model.gate=none)
      gate          + time gate: the full model with the preset's gate
      gate_sigmoid  the full model, per-expert sigmoid gate
      gate_softmax  the full model, softmax gate across the active experts
      image         control: one weight per image and expert (model.routing=image)
      wide          control: no experts, backbone widened to the same parameters
                    (the NAME_wide preset)

    Each variant is trained with seeds 0..K-1 in DIR/runs/VARIANT/seed_S (a restore
    train run folder), then its last.pt (the same budget for all; best.pt is chosen on the
    test split) is scored at each --nfe; its parameters and one-step latency are measured
    on the run's device. DIR/ablation.json
    holds every number, per seed and as mean ± std; DIR/ablation.md the tables.

    Run the same command again after a stop: finished runs are kept, a run stopped in
    training resumes from its last.pt. An --out holding another ablation (other data,
    config, steps, crop, batch size or --set) is refused.
    """
    from skyclear.restore.ablation import DEFAULT_VARIANTS, run_ablation
    from skyclear.restore.config import ConfigError
    from skyclear.restore.train import NonFiniteError, TrainingInterrupted

    context = click.get_current_context()
    if context.args:
        raise click.UsageError(
            f"unexpected {' '.join(context.args)}: give several values as --nfe 1,2,4 and "
            "--variants fm,gate_sigmoid (or repeat the option)"
        )
    try:
        nfe = [int(value) for value in _values(nfe_values)]
    except ValueError as error:
        raise click.BadParameter(f"{error}", param_hint="--nfe") from error
    if not nfe or min(nfe) < 1:
        raise click.BadParameter("give network evaluations >= 1", param_hint="--nfe")
    variants = _values(variant_values)
    shorthands = [f"{_SHORTHANDS[k]}={v}" for k, v in flags.items() if v is not None]
    changes = [*assignments, f"steps={steps}", *shorthands]
    progress = _Lines(nfe, retime)
    started = time.perf_counter()
    try:
        run_ablation(
            data,
            out,
            config_name,
            seeds,
            changes,
            variants or DEFAULT_VARIANTS,
            nfe=nfe,
            latency_side=latency_side,
            command=_command(context),
            progress=progress,
            report=progress.training,
            retime=retime,
        )
    except TrainingInterrupted as stopped:
        progress.bar.close()
        name = signal.Signals(stopped.signal_number).name
        click.echo(
            f"stopped by {name} at step {stopped.step}; run the same command again to continue",
            err=True,
        )
        sys.exit(128 + stopped.signal_number)
    except NonFiniteError as error:
        progress.bar.close()
        raise click.ClickException(str(error)) from error
    except (ConfigError, ValueError) as error:
        progress.bar.close()
        if progress.started:  # runs had begun: not a usage error
            raise click.ClickException(str(error)) from error
        raise click.UsageError(str(error)) from error
    seconds = time.perf_counter() - started
    click.echo(f"wrote {out / 'ablation.json'} and {out / 'ablation.md'} in {seconds:.1f} s")


def _command(context: click.Context) -> str:
    """The command line, options in a fixed order (what a rerun needs)."""
    words = ["restore", "ablate"]
    for param in context.command.params:
        value = context.params.get(param.name or "")
        if value is None or value == () or isinstance(value, bool) or not param.opts:
            continue  # a flag (--retime) changes no result a rerun needs
        for item in value if isinstance(value, tuple) else (value,):
            words += [param.opts[0], str(item)]
    return shlex.join(words)


class _Lines:
    """One line per run started and finished, the training's progress bar between."""

    def __init__(self, nfe: list[int], retime: bool = False) -> None:
        self.bar = _Progress()
        self.first = min(nfe)
        self.retime = retime
        self.started = False

    def training(self, event: str, record: dict[str, Any]) -> None:
        """``train``'s report: the progress bar, closed when training ends (scoring
        follows)."""
        self.bar(event, record)
        if event == "end":
            self.bar.close()

    def __call__(self, event: str, record: dict[str, Any]) -> None:
        self.started = True
        where = f"[{record['index']}/{record['total']}] {record['variant']} seed {record['seed']}"
        if event == "run":
            click.echo(f"{where}: running in {record['folder']}")
            return
        self.bar.close()
        if record["skipped"]:
            timed = ""
            if self.retime:
                milliseconds = record["result"]["latency"]["seconds"] * 1e3
                timed = f"; one step timed again: {milliseconds:.1f} ms"
            click.echo(f"{where}: done before ({record['folder']}/ablation_eval.json){timed}")
            return
        psnr = record["result"]["nfe"][str(self.first)]["rows"].get("all", {}).get("psnr")
        shown = f"{psnr:.2f} dB" if psnr is not None and math.isfinite(psnr) else "–"
        click.echo(f"{where}: done in {record['seconds']:.1f} s; PSNR {shown} at {self.first} NFE")
