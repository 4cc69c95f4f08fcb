"""The ``restore`` command group: restoration of composite degradations."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="skyclear")
def main() -> None:
    """Restore photos that are dark, hazy, rainy and snowy at once.

    The restorer's commands (train, run, eval) are added here as they are built.
    """
