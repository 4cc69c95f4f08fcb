"""``restore analyze``: what a restorer sees in photos, and whether they are unlike its data."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ._params import PathOrURL
from ._restore_options import load_restorer, weights_option

if TYPE_CHECKING:
    from skyclear.restore.analysis import Analysis, Calibration
    from skyclear.restore.inference import Restorer
    from torch import Tensor

__all__ = ["analyze"]

_SHEET_ROWS = 24  # photos per contact sheet
# A tEXt chunk of every contact sheet and every maps file written: what a later analysis
# into the same folder may replace.
_MARK = "skyclear.analysis"
_SHEET_MARK = (_MARK, "contact sheet")
_MAPS_MARK = (_MARK, "maps")
_SHEET_NAME = re.compile(r"contact(-\d{2,})?\.png")
# While a run works: the earlier maps it may remove (written at its start) and each maps
# file it writes (added before the file), one JSON string a line; removed once the stale
# maps are. What a run cut short at any point may leave is known to the next one.
_PENDING = ".analysis-pending"


@click.command(name="analyze", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("photos", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--ckpt",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Checkpoint written by `restore train`.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for analysis.jsonl, the maps (STEM_maps.png) and contact sheets "
    "(contact.png): new, empty or an earlier analysis's, whose files are replaced (its "
    "maps and sheets that this run does not write are removed; nothing else is).",
)
@click.option(
    "--calibrate-on",
    "calibrate_on",
    type=PathOrURL(exists=True),
    help="A store (or any --data of restore train) to calibrate the unusual-photo flag on: "
    "feature statistics of its train split, the threshold at --quantile of its test split. "
    "Writes OUT/calibration.json for later runs (--calibration).",
)
@click.option(
    "--calibration",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A calibration.json an earlier `restore analyze --calibrate-on` wrote for this "
    "checkpoint.",
)
@click.option(
    "--quantile",
    type=click.FloatRange(0.5, 1.0, max_open=True),
    default=0.95,
    show_default=True,
    help="With --calibrate-on: the share of held-out images scored under the threshold.",
)
@click.option(
    "--calibration-images",
    type=click.IntRange(2),
    default=256,
    show_default=True,
    help="With --calibrate-on: at most this many images of each split, evenly spread.",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@weights_option
@click.option(
    "--max-pixels",
    type=click.IntRange(1),
    help="Open photos of up to N pixels (default: Pillow's decompression-bomb limit).",
)
def analyze(
    photos: tuple[Path, ...],
    ckpt: Path,
    out: Path,
    calibrate_on: Path | str | None,
    calibration: Path | None,
    quantile: float,
    calibration_images: int,
    device: str,
    weights: str,
    max_pixels: int | None,
) -> None:
    """Show what the restorer sees in PHOTOS (files or folders).

    Per photo: the parser's four maps in colour (OUT/STEM_maps.png), its global weights
    (presence), the share of the frame each degradation covers, and, once calibrated, a
    score of how unlike the training data the photo is, flagged above the threshold. One
    JSON line per photo in OUT/analysis.jsonl; contact sheets in OUT/contact.png. The
    statistic and its calibration: docs/restore.md#analysing-photos-restore-analyze.
    """
    from skyclear.degrade.outputs import OutputError, check_output
    from skyclear.restore.analysis import ANALYSIS_FILE, Calibration
    from skyclear.restore.checkpoint import checkpoint_digest

    if calibrate_on is not None and calibration is not None:
        raise click.UsageError("--calibrate-on and --calibration exclude each other")
    # The calibration an earlier analysis left in --out is read, never written over here.
    own = calibration is not None and calibration.resolve() == (out / "calibration.json").resolve()
    inputs = [ckpt, *photos, calibrate_on, None if own else calibration]
    try:
        check_output(out, inputs=inputs, kind="an earlier analysis",
                     is_ours=lambda path: ((path / ANALYSIS_FILE).is_file()
                                           or _pending_names(path) is not None))  # fmt: skip
    except OutputError as error:
        raise click.BadParameter(str(error), param_hint="--out") from error
    pending = out / _PENDING
    if (pending.exists() or pending.is_symlink()) and (
        pending.is_symlink() or not pending.is_file() or _pending_names(out) is None
    ):
        raise click.BadParameter(
            f"{pending} is not a list that an analysis wrote; move it away", param_hint="--out"
        )
    restorer = load_restorer(ckpt, device, weights)
    model = restorer.config.model
    if not model.experts or model.routing != "pixel":
        raise click.BadParameter(
            f"{ckpt} has no per-pixel parser maps (experts: {model.experts}, routing: "
            f"{model.routing}); there is nothing to analyse",
            param_hint="--ckpt",
        )
    digest = f"{checkpoint_digest(ckpt)}:{weights}"  # a calibration is of one set of weights
    calibrated: Calibration | None = None
    if calibration is not None:
        try:
            calibrated = Calibration.load(calibration)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--calibration") from error
        if calibrated.checkpoint != digest:
            raise click.BadParameter(
                f"{calibration} was made for checkpoint {calibrated.checkpoint}, not {ckpt} "
                f"({digest}); calibrate again with --calibrate-on",
                param_hint="--calibration",
            )
    out.mkdir(parents=True, exist_ok=True)
    if calibrate_on is not None:
        calibrated = _calibrate(restorer, calibrate_on, digest, quantile, calibration_images)
        calibrated.save(out / "calibration.json")
        click.echo(
            f"calibrated on {calibrated.train_images} training and {calibrated.held_out_images} "
            f"held-out images of {calibrate_on}: threshold {calibrated.threshold:.3g} (held-out "
            f"scores {calibrated.held_out_scores['min']:.3g} to "
            f"{calibrated.held_out_scores['max']:.3g}); wrote {out / 'calibration.json'}"
        )
    elif calibrated is None:
        click.echo("not calibrated: no unusual-photo flag (--calibrate-on STORE gives one)")
    failed = _analyse_all(restorer, photos, out, calibrated, max_pixels)
    if failed:
        click.get_current_context().exit(1)


def _calibrate(
    restorer: Restorer, data: Path | str, digest: str, quantile: float, most: int
) -> Calibration:
    from skyclear.restore.analysis import calibrate, spread
    from skyclear.restore.data import open_dataset

    def images(split: str) -> Iterator[Tensor]:
        dataset: Any = open_dataset(data, split, None, False)
        for index in spread(len(dataset), most):
            yield dataset[index]["degraded"][None].float()

    try:
        return calibrate(restorer, images("train"), images("test"), digest, quantile)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--calibrate-on") from error


def _analyse_all(
    restorer: Restorer,
    sources: tuple[Path, ...],
    out: Path,
    calibration: Calibration | None,
    max_pixels: int | None,
) -> int:
    """Analyse every photo under ``sources``; write the maps, the JSON lines and the
    contact sheets; return how many photos failed and sheets were not written (each
    reported on one line)."""
    from skyclear.degrade.outputs import replace_text
    from skyclear.restore.analysis import (
        ANALYSIS_FILE,
        analyse,
        contact_sheet,
        pages,
        save_maps,
        sheet_row,
        thumbnail,
    )
    from skyclear.restore.batch import find_photos
    from skyclear.restore.images import UnusableImageError, read_photo, save_png
    from tqdm import tqdm

    found: list[tuple[Path, str]] = []
    for source in sources:
        root = source.parent if source.is_file() else source
        found += [(path, path.relative_to(root).as_posix()) for path in find_photos(source, out)]
    if not found:
        raise click.UsageError("no photos among the PHOTOS given")
    # The maps an earlier run listed (or began to write, if cut short): once this run's
    # list is in, those of them it did not write go, and so do those it began and failed.
    # Written down whole first, so that a run cut short, even once its list is in, leaves
    # none that the next cannot find.
    candidates = _earlier_maps(out)
    replace_text(out / _PENDING, "".join(json.dumps(name) + "\n" for name in sorted(candidates)))
    # Per photo, only its record and its contact-sheet row are kept (its maps are written
    # and let go): a folder of thousands of photos fits in memory.
    records, rows, flagged, failed = [], [], 0, 0
    claimed: dict[str, str] = {}
    bar = tqdm(found, desc="analysing", unit=" photos", file=sys.stderr,
               disable=len(found) < 2, dynamic_ncols=True)  # fmt: skip
    for path, name in bar:
        maps_file = _maps_name(name)
        if maps_file.casefold() in claimed:
            other = claimed[maps_file.casefold()]
            bar.write(f"failed {name}: its maps file {maps_file} is also that of {other}",
                      file=sys.stderr)  # fmt: skip
            failed += 1
            continue
        claimed[maps_file.casefold()] = name
        try:
            photo = read_photo(path, max_pixels)
        except UnusableImageError as error:
            bar.write(f"failed {name}: {error.reason}", file=sys.stderr)
            failed += 1
            continue
        for note in photo.notes:
            bar.write(note, file=sys.stderr)
        analysis = analyse(restorer, name, photo.image, calibration)
        if not _replaceable(out / maps_file, _MAPS_MARK):
            bar.write(f"failed {name}: {out / maps_file} is there and is not maps that an "
                      "analysis wrote; move it away", file=sys.stderr)  # fmt: skip
            failed += 1
            continue
        _add_pending(out, maps_file)  # before the file: a kill may follow
        candidates.add(maps_file)
        save_maps(out / maps_file, analysis.maps, analysis.weights, dict([_MAPS_MARK]))
        records.append(analysis.record(maps_file))
        rows.append(sheet_row(analysis, thumbnail(photo.image)))
        flagged += bool(analysis.unusual)
        bar.write(_line(analysis))
    replace_text(out / ANALYSIS_FILE, "".join(json.dumps(record) + "\n" for record in records))
    # The maps an earlier analysis listed and this one did not write would pass for this
    # one's: those that carry the mark go.
    _remove_stale_maps(out, candidates, [out / record["maps"] for record in records])
    (out / _PENDING).unlink(missing_ok=True)
    sheets = list(pages(rows, _SHEET_ROWS))
    written, unwritten = set(), 0
    for number, page in enumerate(sheets, start=1):
        name = "contact.png" if len(sheets) == 1 else f"contact-{number:02d}.png"
        written.add(name)
        if not _replaceable(out / name, _SHEET_MARK):
            click.echo(f"not written: {out / name} is there and is not a contact sheet that "
                       "an analysis wrote; move it away", err=True)  # fmt: skip
            unwritten += 1
            continue
        save_png(out / name, contact_sheet(page), None, dict([_SHEET_MARK]))
    # The sheets of an earlier, longer analysis would pass for this one's: those that
    # carry the mark go; anything else of the name stays.
    for path in sorted(out.iterdir()):
        if (path.name not in written and _SHEET_NAME.fullmatch(path.name)
                and _is_marked(path, _SHEET_MARK)):  # fmt: skip
            path.unlink()
    click.echo(
        f"analysed {len(records)} of {len(found)} photos into {out}; {failed} failed"
        + (f"; {flagged} unusual" if calibration is not None else "")
        + (f"; {unwritten} contact sheets not written" if unwritten else "")
    )
    return failed + unwritten


def _maps_name(photo: str) -> str:
    """The maps file of a photo (its name relative to what was given)."""
    return Path(photo).with_suffix("").as_posix() + "_maps.png"


def _pending_names(out: Path) -> list[str] | None:
    """The names in the pending list of a run cut short in ``out`` (empty: killed before
    its first maps); ``None`` where there is none, or it is not one: every line a maps
    file's name, but for a last one cut short by a kill (no end of line, begun as a name)
    after at least one whole."""
    try:
        text = (out / _PENDING).read_text()
    except (OSError, UnicodeDecodeError):
        return None
    lines = text.splitlines()
    names = []
    for number, line in enumerate(lines, start=1):
        try:
            name = json.loads(line)
        except ValueError:
            torn = number == len(lines) > 1 and not text.endswith("\n") and line[:1] == '"'
            if torn:
                continue
            return None
        if not isinstance(name, str) or not name.endswith("_maps.png"):
            return None
        names.append(name)
    return names if names or not text else None


def _add_pending(out: Path, name: str) -> None:
    """Add ``name`` to the pending list of this run (written at its start: never through
    a link)."""
    descriptor = os.open(out / _PENDING, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
    with os.fdopen(descriptor, "a") as pending:
        pending.write(json.dumps(name) + "\n")


def _earlier_maps(out: Path) -> set[str]:
    """The maps files, relative to ``out``, that the analysis before this one listed in
    ``out`` and that a run cut short there began to write (its pending list): lines
    that cannot be read name nothing."""
    from skyclear.restore.analysis import ANALYSIS_FILE

    names: list[object] = list(_pending_names(out) or [])
    try:
        for line in (out / ANALYSIS_FILE).read_text().splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                names.append(record.get("maps") if isinstance(record, dict) else None)
    except (OSError, UnicodeDecodeError):
        pass
    return {name for name in names if isinstance(name, str) and name.endswith("_maps.png")}


def _remove_stale_maps(out: Path, names: set[str], written: list[Path]) -> None:
    """Remove those of ``names`` (relative to ``out``) that are maps an analysis wrote (its
    mark) inside ``out``, and none of the files this run wrote (``written``) under another
    spelling of its name: another case, ``./``, a linked folder. Each is checked just
    before it is removed."""
    kept = set()
    for path in written:
        with contextlib.suppress(OSError):
            kept.add((path.stat().st_dev, path.stat().st_ino))
    root = out.resolve()
    for name in sorted(names):
        relative = Path(name)
        # Only names of the form an analysis gives, inside --out (no folder linked
        # elsewhere on the way): a list edited by hand cannot point outside it.
        if not name.endswith("_maps.png") or relative.is_absolute() or ".." in relative.parts:
            continue
        path = out / relative
        try:
            inside = path.resolve().is_relative_to(root)
            identity = (path.stat().st_dev, path.stat().st_ino)
        except (OSError, ValueError):  # gone, unreadable, or no name a file can have
            continue
        if inside and identity not in kept and _is_marked(path, _MAPS_MARK):
            path.unlink(missing_ok=True)


def _replaceable(path: Path, mark: tuple[str, str]) -> bool:
    """Whether an analysis may write ``path``: nothing is there, or what is there carries
    ``mark`` (an analysis wrote it)."""
    return not (path.exists() or path.is_symlink()) or _is_marked(path, mark)


def _is_marked(path: Path, mark: tuple[str, str]) -> bool:
    """Whether ``path`` is a PNG that an analysis wrote: it carries its tEXt ``mark``."""
    from PIL import Image, UnidentifiedImageError

    if path.is_symlink() or not path.is_file():
        return False
    try:
        with Image.open(path) as opened:
            return opened.format == "PNG" and opened.info.get(mark[0]) == mark[1]
    except (OSError, UnidentifiedImageError, ValueError):
        return False


def _line(analysis: Analysis) -> str:
    """One photo for people: presence weights, coverage, the flag."""
    from skyclear.degrade.names import DEGRADATIONS

    parts = [f"{name} {float(w):.2f}/{float(c):.0%}"
             for name, w, c in zip(DEGRADATIONS, analysis.weights, analysis.coverage,
                                   strict=True)]  # fmt: skip
    flag = "" if analysis.unusual is None else (
        f"  score {analysis.score:.3g} " + ("UNUSUAL" if analysis.unusual else "ok"))  # fmt: skip
    return f"{analysis.name}: " + ", ".join(parts) + flag
