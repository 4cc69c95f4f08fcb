"""The ``restore`` command group: restoration of composite degradations."""

from __future__ import annotations

import click

from .restore_ablate import ablate
from .restore_analyze import analyze
from .restore_compare import compare
from .restore_eval import evaluate
from .restore_export import export
from .restore_run import run
from .restore_train import train


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="skyclear")
def main() -> None:
    """Restore photos that are dark, hazy, rainy and snowy at once.

    Start with `restore train --data data.zarr --out runs/tiny`, then
    `restore eval --ckpt runs/tiny/last.pt --data data.zarr --out runs/tiny/eval`, then
    `restore run --ckpt runs/tiny/best.pt --input photos/ --out restored/`.
    `restore ablate` trains and scores the ablation ladder; `restore compare` scores runs
    of any methods (`restore train --method`) side by side; `restore export` writes a
    checkpoint as an ONNX file that runs without skyclear; `restore analyze` shows what
    the restorer sees in photos and flags those unlike its training data.
    """


main.add_command(train)
main.add_command(evaluate)
main.add_command(run)
main.add_command(ablate)
main.add_command(compare)
main.add_command(export)
main.add_command(analyze)

if __name__ == "__main__":
    main()
