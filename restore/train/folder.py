"""The run folder: its files, the marker that says skyclear made it, and who may reuse it.

A run writes into ``--out`` only if the folder is new or empty, or is a skyclear run
folder (``skyclear.json`` holding ``RUN_FORMAT``, written before anything else), and only
if it keeps clear of the data (``skyclear.degrade.outputs``). Files a person put there are
never overwritten or deleted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from skyclear.degrade.outputs import check_output

__all__ = ["RUN_FORMAT", "RunFolder", "check_run_folder", "is_run_folder"]

#: The ``format`` in a run folder's ``skyclear.json``.
RUN_FORMAT = "skyclear.run/1"


@dataclass(frozen=True)
class RunFolder:
    """The files of a run."""

    root: Path

    @property
    def marker(self) -> Path:
        return self.root / "skyclear.json"

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def last(self) -> Path:
        return self.root / "last.pt"

    @property
    def best(self) -> Path:
        return self.root / "best.pt"

    @property
    def log(self) -> Path:
        return self.root / "log.jsonl"

    def grid(self, step: int) -> Path:
        return self.root / "val" / f"step_{step:07d}.png"

    def claim(self) -> None:
        """Create the folder if need be and mark it as a run's, before any other file."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not is_run_folder(self.root):
            self.marker.write_text(json.dumps({"format": RUN_FORMAT}) + "\n")


def is_run_folder(path: str | Path) -> bool:
    """True if ``path`` is a folder whose ``skyclear.json`` says a skyclear run made it."""
    try:
        marker = json.loads((Path(path) / "skyclear.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("format") == RUN_FORMAT


def check_run_folder(root: Path, data: Path | str, *, resumed: bool = False) -> None:
    """Refuse a run folder that is, holds or lies inside the data (through symlinks too),
    or that holds files but is not a skyclear run folder.

    Args:
        root: the run folder (``--out``).
        data: the training data (``--data``; a str is a URL, which no folder meets).
        resumed: ``root/last.pt`` was read as a skyclear checkpoint, which makes the folder
            a run's even without its marker (runs made before the marker existed).

    Raises:
        skyclear.degrade.outputs.OutputError: the reason (a ``ValueError``).
    """
    check_output(
        root,
        inputs=[data],
        is_ours=lambda path: resumed or is_run_folder(path),
        kind="a skyclear run folder",
    )
