"""Which photos a restoration run reads, and where each result goes.

An input file gives ``OUT/STEM.png``; an input folder is walked recursively (sorted, hidden
files and folders left out, symlinked folders not followed) for files with an image suffix
(``IMAGE_SUFFIXES``, any case), and each gives ``OUT/SUB/FOLDERS/STEM.png``, mirroring its
place under the input. With maps, ``STEM_maps.png`` goes beside it. An output folder inside
the input folder is not walked, so a second run does not restore the first one's results.

Two inputs that would write the same file (``a.jpg`` and ``a.png``, or names differing only
in case, which many file systems do not tell apart) are not both restored: the first in
sorted order is, the others are refused with the reason. So is an input whose result would
replace the input itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["IMAGE_SUFFIXES", "Job", "Plan", "plan_run"]

#: File suffixes taken as photos when an input folder is walked.
IMAGE_SUFFIXES = frozenset(
    {".bmp", ".gif", ".jpeg", ".jpg", ".pbm", ".pgm", ".png", ".pnm", ".ppm", ".tif", ".tiff",
     ".webp"}
)  # fmt: skip


@dataclass(frozen=True)
class Job:
    """One photo to restore: where it is, its name for people, and its outputs."""

    source: Path
    name: str
    output: Path
    maps: Path | None = None

    @property
    def outputs(self) -> tuple[Path, ...]:
        return (self.output,) if self.maps is None else (self.output, self.maps)


@dataclass(frozen=True)
class Plan:
    """A run's photos: those to restore, those whose outputs are already there (kept unless
    overwriting), and those refused before reading (name and reason)."""

    todo: list[Job] = field(default_factory=list)
    existing: list[Job] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Every photo found."""
        return len(self.todo) + len(self.existing) + len(self.refused)


def plan_run(source: Path, out: Path, save_maps: bool = False, overwrite: bool = False) -> Plan:
    """The photos under ``source`` (a file or a folder) and their outputs under ``out``.

    Raises:
        ValueError: ``source`` does not exist, or ``out`` is the input folder itself.
    """
    if source.is_file():
        names = [source.name]
        root = source.parent
    elif source.is_dir():
        if out.resolve() == source.resolve():
            raise ValueError(f"the output folder {out} is the input folder; choose another")
        root = source
        names = _walk(source, out)
    else:
        raise ValueError(f"{source}: no such file or folder")
    plan = Plan()
    claimed: dict[str, str] = {}
    for name in names:
        stem = Path(name).with_suffix("")
        job = Job(
            root / name,
            name,
            out / stem.with_suffix(".png"),
            out / stem.with_name(f"{stem.name}_maps.png") if save_maps else None,
        )
        keys = [os.path.normcase(path.as_posix()).casefold() for path in job.outputs]
        taken = [claimed[key] for key in keys if key in claimed]
        if taken:
            written = stem.with_suffix(".png").as_posix()
            plan.refused.append((name, f"its output {written} is also that of {taken[0]}"))
            continue
        claimed.update(dict.fromkeys(keys, name))
        if job.output.exists() and job.output.resolve() == job.source.resolve():
            plan.refused.append((name, "its output would replace the input itself"))
        elif not overwrite and all(path.exists() for path in job.outputs):
            plan.existing.append(job)
        else:
            plan.todo.append(job)
    return plan


def _walk(source: Path, out: Path) -> list[str]:
    """Relative POSIX paths of the image files under ``source``, sorted, outside ``out``."""
    skip = out.resolve()
    names = []
    for folder, dirs, files in os.walk(source, followlinks=False):
        here = Path(folder)
        dirs[:] = sorted(
            name for name in dirs if not name.startswith(".") and (here / name).resolve() != skip
        )
        for name in files:
            path = here / name
            if name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            names.append(path.relative_to(source).as_posix())
    return sorted(names)
