"""``restore train``: train the restorer on a store, a CDD-11 folder or clean photos."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import click

from ._params import PathOrURL

_PATH = click.Path(path_type=Path)

#: Flags that are shorthands for ``--set KEY=VALUE``.
_SHORTHANDS = {
    "steps": "steps",
    "batch_size": "data.batch_size",
    "crop": "data.crop",
    "lr": "optim.lr",
    "device": "device",
    "workers": "data.workers",
    "seed": "seed",
    "method": "method",
    "unpaired": "data.unpaired",
    "synthesis": "data.synthesis",
}


@click.command()
@click.option(
    "--data",
    required=True,
    type=PathOrURL(exists=True),
    help="A make-cdd11 store (.zarr), its HDF5 export, a CDD-11 folder (the original "
    "release included), or a folder of clean photos degraded on the fly.",
)
@click.option(
    "--out",
    required=True,
    type=_PATH,
    help="Run folder (runs/NAME): new, empty or a skyclear run's; apart from --data.",
)
@click.option(
    "--config",
    "config_name",
    default="tiny",
    show_default=True,
    help="A preset (tiny, small, paper) or a YAML file such as a run's config.yaml.",
)
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override one config value, e.g. --set optim.ema_decay=0.99 (repeatable).",
)
@click.option(
    "--method",
    help="How the network is trained and sampled: f2d (default: residual-scaled stochastic "
    "transport, one step), fm (flow matching), irsde (IR-SDE, 100 steps), irflow (IR-Flow, "
    "4 steps), resflow (ResFlow, 4 steps), darcot (DA-RCOT, two passes, adversarial); the "
    "same backbone for all (docs/transport.md).",
)
@click.option(
    "--unpaired",
    is_flag=True,
    default=None,
    help="Train without pairs (darcot only): degraded and clean images from disjoint photos "
    "of --data, never a degraded image with its own clean one.",
)
@click.option(
    "--data-degraded",
    "degraded",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A folder of real degraded photos with no clean counterpart, the degraded side of "
    "unpaired training (implies --unpaired); --data then gives the clean side and the "
    "validation data.",
)
@click.option(
    "--synthesis",
    type=click.Choice(["loader", "device"]),
    help="Where a --data folder of clean photos is degraded: loader (default: each sample "
    "in a loader worker) or device (the workers load clean crops; each batch is degraded at "
    "once on the training device, a GPU say, inside the step).",
)
@click.option("--steps", type=click.IntRange(1), help="Optimizer steps in all.")
@click.option("--batch-size", type=click.IntRange(1), help="Samples per step (all processes).")
@click.option("--crop", type=click.IntRange(8), help="Training crop side, pixels.")
@click.option("--lr", type=click.FloatRange(0, min_open=True), help="Peak learning rate.")
@click.option("--device", help="auto (CUDA when present), cpu, cuda or cuda:N.")
@click.option("--workers", type=click.IntRange(0), help="Loader processes per training process.")
@click.option("--seed", type=click.IntRange(0), help="Seed of weights, data order and noise.")
@click.option("--resume", is_flag=True, help="Continue the run in --out exactly where it stopped.")
def train(
    data: Path | str,
    out: Path,
    config_name: str,
    assignments: tuple[str, ...],
    resume: bool,
    degraded: Path | None,
    **flags: Any,
) -> None:
    """Train the restorer: AdamW with warm-up and cosine decay, EMA weights, validation
    on the test split with image grids, checkpoints last.pt and best.pt.

    The same command runs on many GPUs or machines under torchrun, e.g.
    `torchrun --nproc_per_node 4 -m skyclear.cli.restore train ...`.
    SIGINT or SIGTERM saves a checkpoint and exits (130 or 143); --resume continues.
    """
    from skyclear.restore.checkpoint import CheckpointError
    from skyclear.restore.config import ConfigError, load_config, override, preset
    from skyclear.restore.train import NonFiniteError, TrainingInterrupted
    from skyclear.restore.train import train as run_training

    if degraded is not None:
        flags["unpaired"] = True
    shorthands = [f"{_SHORTHANDS[k]}={v}" for k, v in flags.items() if v is not None]
    changes = [*assignments, *shorthands]
    if resume and _named_config():
        raise click.UsageError(
            "--resume continues the run with its saved config; --config cannot replace it "
            "(--set and the shorthand flags can change single values)"
        )
    try:
        if resume:
            config = _resumed_config(out, changes)
        elif Path(config_name).suffix in (".yaml", ".yml"):
            config = override(load_config(config_name), changes)
        else:
            config = override(preset(config_name), changes)
    except (ConfigError, CheckpointError) as error:
        raise click.UsageError(str(error)) from error

    reporter = _Progress()
    try:
        result = run_training(config, data, out, resume=resume, report=reporter, degraded=degraded)
    except TrainingInterrupted as stopped:
        reporter.close()
        if not reporter.started:
            sys.exit(128 + stopped.signal_number)  # another process of the group reports
        name = signal.Signals(stopped.signal_number).name
        click.echo(
            f"stopped by {name} at step {stopped.step}; checkpoint {out / 'last.pt'}. "
            f"Continue with: restore train --data {data} --out {out} --resume"
            + (f" --data-degraded {degraded}" if degraded is not None else ""),
            err=True,
        )
        sys.exit(128 + stopped.signal_number)
    except NonFiniteError as error:
        reporter.close()
        raise click.ClickException(str(error)) from error
    except (ConfigError, CheckpointError, FileExistsError, ValueError) as error:
        reporter.close()
        if reporter.started:  # training had begun: not a usage error
            raise click.ClickException(str(error)) from error
        raise click.UsageError(str(error)) from error
    reporter.close()
    if not reporter.started:
        return  # another process of a torchrun group reports
    best = result["best"]
    click.echo(
        f"trained {result['step']} steps into {out}"
        + (f"; best validation PSNR {best:.2f} dB (best.pt)" if best > float("-inf") else "")
    )


def _named_config() -> bool:
    """Whether --config was given (its default is the tiny preset)."""
    source = click.get_current_context().get_parameter_source("config_name")
    return source is not None and source.name != "DEFAULT"


def _resumed_config(out: Path, changes: list[str]) -> Any:
    """The saved config of the run in ``out``, with ``changes`` applied (None: as saved)."""
    from skyclear.restore.checkpoint import load_checkpoint, train_config_of
    from skyclear.restore.config import override

    if not changes:
        return None
    last = out / "last.pt"
    saved = train_config_of(load_checkpoint(last), last)
    config = override(saved, changes)
    if config.method != saved.method:
        raise click.UsageError(
            f"the run in {out} trains {saved.method}; --resume cannot switch it to "
            f"{config.method} (start a new run)"
        )
    return config


class _Progress:
    """A progress bar over the steps, with the loss and the last validation."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.started = False

    def __call__(self, event: str, record: dict[str, Any]) -> None:
        from tqdm import tqdm

        if event == "start":
            self.started = True
            click.echo(
                f"training {record['parameters'] / 1e6:.2f} M parameters on {record['device']}"
                f" x{record['processes']}: {record['train_samples']} training and "
                f"{record['test_samples']} test samples"
                + (" (degraded on the device in each step)" if record["synthesis_on_device"]
                   else "")
            )  # fmt: skip
            self.bar = tqdm(
                total=record["steps"], initial=record["step"], unit=" steps", dynamic_ncols=True
            )
        elif event == "train" and self.bar is not None:
            self.bar.update(record["step"] - self.bar.n)
            self.bar.set_postfix(
                loss=f"{record['loss']:.4f}",
                lr=f"{record['lr']:.2e}",
                rate=f"{record['samples_per_second']:.1f}/s",
            )
        elif event == "val" and self.bar is not None:
            self.bar.write(
                f"step {record['step']}: PSNR {record['psnr']:.2f} dB (input "
                f"{record['input_psnr']:.2f}), SSIM {record['ssim']:.3f}, mask MAE "
                f"{record['mask_mae']:.3f}, presence {record['presence_accuracy']:.2f}"
                + (f"; grid {record['grid']}" if record.get("grid") else "")
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
