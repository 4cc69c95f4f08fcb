"""The evaluation for people: a Markdown table, a JSON document and a picture."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image
from skyclear.degrade.outputs import check_output

from .evaluate import DEGRADATION_COLUMNS, GROUPS, Evaluation, Row, score_columns
from .visual import EXAMPLE_TITLES, image_grid

__all__ = [
    "HEADERS",
    "REPORT_FORMAT",
    "check_report_folder",
    "is_report_folder",
    "to_markdown",
    "write_report",
]

#: The ``format`` of ``eval.json``, by which a report folder is known for skyclear's own.
REPORT_FORMAT = "skyclear.eval/1"


#: Column headers of the score keys, shared by every table of scores.
HEADERS = {
    "input_psnr": "input PSNR",
    "input_ssim": "input SSIM",
    "input_lpips": "input LPIPS",
    "psnr": "PSNR",
    "ssim": "SSIM",
    "lpips": "LPIPS",
    "selectivity": "image sel.",
    "pixel_selectivity": "pixel sel.",
    "most_over_least": "most/least",
    "mask_mae": "mask MAE",
    "mask_iou": "mask IoU",
    "presence_accuracy": "presence acc.",
}
_RATIOS = ("selectivity", "pixel_selectivity", "most_over_least", *DEGRADATION_COLUMNS)
_DIGITS = {"psnr": 2, "input_psnr": 2, "fid": 2, "input_fid": 2, **dict.fromkeys(_RATIOS, 2)}


def _cell(column: str, value: float) -> str:
    if math.isnan(value):
        return "–"
    return f"{value:.{_DIGITS.get(column, 3)}f}"


def to_markdown(rows: Sequence[Row], fid: Mapping[str, float] | None = None) -> str:
    """The table in Markdown: restored scores per row, the untouched input's PSNR and SSIM
    (and LPIPS, where the rows have it) beside them, and a last ``input (untouched)``
    baseline row over all samples with the input's scores under the restored columns.
    Where the rows have ``DEGRADATION_COLUMNS``, a small table under it: the pixel
    selectivity of each degradation's expert per complexity group and over all samples.
    With ``fid`` (``Evaluation.fid``, when not empty), a line under the tables:
    ``FID restored vs clean: X (input: Y)``. A score that is not defined (NaN) shows
    ``–``."""
    columns = score_columns(key for row in rows for key in row.scores)
    header = ["tier", "n", *(HEADERS[c] for c in columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        name = f"**{row.name}**" if row.name in (*GROUPS, "all") else row.name
        cells = [_cell(c, row.scores.get(c, math.nan)) for c in columns]
        lines.append("| " + " | ".join([name, str(row.count), *cells]) + " |")
    everything = next((row for row in rows if row.name == "all"), None)
    if everything is not None:
        baseline = ["input (untouched)", str(everything.count)]
        for column in columns:
            if column.startswith("input_"):
                baseline.append("")
            elif f"input_{column}" in columns:
                baseline.append(_cell(column, everything.scores.get(f"input_{column}", math.nan)))
            else:
                baseline.append("–")
        lines.append("| " + " | ".join(baseline) + " |")
    lines += _degradation_table(rows)
    if fid:
        restored = _cell("fid", fid.get("fid", math.nan))
        untouched = _cell("input_fid", fid.get("input_fid", math.nan))
        lines += ["", f"FID restored vs clean: {restored} (input: {untouched})"]
    return "\n".join(lines) + "\n"


def _degradation_table(rows: Sequence[Row]) -> list[str]:
    """The lines (led by a blank one) of the per-degradation pixel selectivity of the group
    and ``all`` rows; none where the rows do not have it. Each cell is a mean over the
    samples where that degradation's figure is defined, fewer than the row's count."""
    chosen = [row for row in rows if row.name in (*GROUPS, "all")]
    if not any(column in row.scores for row in chosen for column in DEGRADATION_COLUMNS):
        return []
    names = [column.removeprefix("pixel_selectivity_") for column in DEGRADATION_COLUMNS]
    lines = [
        "",
        "Pixel selectivity per degradation (its expert inside its mask over outside):",
        "",
        "| group | " + " | ".join(names) + " |",
        "|" + "---|" * (1 + len(names)),
    ]
    for row in chosen:
        cells = [_cell(c, row.scores.get(c, math.nan)) for c in DEGRADATION_COLUMNS]
        lines.append("| " + " | ".join([f"**{row.name}**", *cells]) + " |")
    return lines


def is_report_folder(path: str | Path) -> bool:
    """True if ``path`` is a folder holding a report ``write_report`` wrote: its
    ``eval.json`` carries ``REPORT_FORMAT`` or, written before that key existed, has no
    ``format`` but the report's ``rows`` and ``samples`` lists."""
    try:
        document = json.loads((Path(path) / "eval.json").read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(document, dict):
        return False
    if "format" in document:
        return bool(document["format"] == REPORT_FORMAT)
    return isinstance(document.get("rows"), list) and isinstance(document.get("samples"), list)


def check_report_folder(out: Path, inputs: Iterable[Path | None] = ()) -> None:
    """Refuse a report folder that is, holds or lies inside one of ``inputs`` (the data,
    the checkpoint; through symlinks too), or that holds files but no earlier report.

    Raises:
        skyclear.degrade.outputs.OutputError: the reason (a ``ValueError``).
    """
    check_output(out, inputs=inputs, is_ours=is_report_folder, kind="a skyclear report folder")


def write_report(
    evaluation: Evaluation,
    meta: dict[str, Any],
    out: Path,
    inputs: Iterable[Path | None] = (),
) -> list[Path]:
    """Save ``out/eval.json`` (``format``, ``meta``, the split-wide ``fid`` and
    ``input_fid`` where computed, the rows and every sample's scores), ``out/examples.png``
    (one example per tier) and ``out/eval.md`` (the table and the picture); returns the
    paths written.

    ``out`` must be new, empty or an earlier report's folder, and apart from ``inputs``
    (``check_report_folder``): an earlier report is replaced, nothing else is touched.
    """
    check_report_folder(out, inputs)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "eval.json", out / "eval.md"]
    document = {
        "format": REPORT_FORMAT,
        **meta,
        **_finite(evaluation.fid),
        "rows": [{"name": r.name, "count": r.count, **_finite(r.scores)} for r in evaluation.rows],
        "samples": [_finite(record) for record in evaluation.records],
    }
    written[0].write_text(json.dumps(document, indent=1) + "\n")
    heading = ", ".join(f"{key}: `{value}`" for key, value in meta.items())
    text = f"# Evaluation\n\n{heading}\n\n{to_markdown(evaluation.rows, evaluation.fid)}"
    if evaluation.examples:
        rows = list(evaluation.examples.values())
        picture = out / "examples.png"
        grid = image_grid(rows, EXAMPLE_TITLES, row_titles=list(evaluation.examples))
        Image.fromarray(grid).save(picture)
        written.append(picture)
        text += (
            "\n![one test sample per tier: degraded, restored, clean and the parser's maps]"
            "(examples.png)\n"
        )
    written[1].write_text(text)
    return written


def _finite(values: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN or infinity: those become ``null``."""
    return {
        key: None if isinstance(value, float) and not math.isfinite(value) else value
        for key, value in values.items()
    }
