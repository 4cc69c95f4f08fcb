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

Every PNG a run writes records what made it (the checkpoint's digest and the options that
change pixels) in a tEXt chunk, ``PROVENANCE_KEY``. A file already at an output's place is
kept when a run of the same checkpoint and options wrote it, restored again when another
one did, and never touched when no restoration run wrote it (that photo is refused, with
the reason): nothing a run did not write is replaced, ``--overwrite`` or not.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "IMAGE_SUFFIXES",
    "PROVENANCE_KEY",
    "Job",
    "Plan",
    "find_photos",
    "plan_run",
    "provenance_of",
]

#: The tEXt chunk of a restored PNG that records what made it (JSON).
PROVENANCE_KEY = "skyclear.restore"

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
    """A run's photos: those to restore, those whose outputs are already there from the
    same checkpoint and options (kept unless overwriting), and those refused before reading
    (name and reason). ``redo`` counts the photos of ``todo`` whose outputs another
    checkpoint or other options made."""

    todo: list[Job] = field(default_factory=list)
    existing: list[Job] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    redo: int = 0

    @property
    def total(self) -> int:
        """Every photo found."""
        return len(self.todo) + len(self.existing) + len(self.refused)


def provenance_of(path: Path) -> str | None:
    """What a restoration run recorded in the PNG at ``path`` as having made it; ``None``
    for any file no run wrote (or that cannot be read)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            value = opened.info.get(PROVENANCE_KEY) if opened.format == "PNG" else None
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    return value if isinstance(value, str) else None


def plan_run(
    source: Path,
    out: Path,
    save_maps: bool = False,
    overwrite: bool = False,
    provenance: str = "",
) -> Plan:
    """The photos under ``source`` (a file or a folder) and their outputs under ``out``.

    ``provenance`` is what this run records in its PNGs; outputs already there are kept
    when it matches theirs (unless ``overwrite``), redone when another run's differs, and
    their photo refused when no run wrote them.

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
    todo: list[Job] = []
    existing: list[Job] = []
    refused: list[tuple[str, str]] = []
    redo = 0
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
            refused.append((name, f"its output {written} is also that of {taken[0]}"))
            continue
        claimed.update(dict.fromkeys(keys, name))
        there = [path for path in job.outputs if path.exists() or path.is_symlink()]
        made_by = [provenance_of(path) if not path.is_symlink() else None for path in there]
        if job.output.exists() and job.output.resolve() == job.source.resolve():
            refused.append((name, "its output would replace the input itself"))
        elif None in made_by:
            foreign = there[made_by.index(None)]
            refused.append((name, f"{foreign} is there and no restoration run wrote it; it "
                                  "is left as it is (choose another --out)"))  # fmt: skip
        elif any(made != provenance for made in made_by):
            redo += 1
            todo.append(job)
        elif not overwrite and len(there) == len(job.outputs):
            existing.append(job)
        else:
            todo.append(job)
    return Plan(todo, existing, refused, redo)


def find_photos(source: Path, out: Path) -> list[Path]:
    """The image files of ``source`` (itself, or those under a folder, walked as
    ``plan_run`` walks it: sorted, hidden files and ``out`` left out)."""
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise ValueError(f"{source}: no such file or folder")
    return [source / name for name in _walk(source, out)]


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
