"""The evaluation table: scores, groups, the input baseline, JSON and Markdown."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from skyclear.cli.restore import main
from skyclear.degrade.names import TIERS
from skyclear.restore.checkpoint import save_checkpoint
from skyclear.restore.config import config_to_dict, preset
from skyclear.restore.evaluate import (
    COLUMNS,
    DEGRADATION_COLUMNS,
    GROUPS,
    PIXEL_COLUMNS,
    Evaluation,
    evaluate,
    score_batch,
    summarize,
)
from skyclear.restore.nn import Aux, F2DNet
from skyclear.restore.report import to_markdown, write_report


def _records() -> list[dict]:
    records = []
    for i, tier in enumerate(TIERS):
        for k in range(2):
            records.append(
                {
                    "tier": tier,
                    "input_psnr": 10.0 + i,
                    "input_ssim": 0.5,
                    "psnr": 20.0 + i + k,
                    "ssim": 0.8,
                    "selectivity": 2.0,
                    "mask_mae": math.nan if tier == "snow" else 0.1,
                    "presence_accuracy": 1.0,
                }
            )
    return records


def test_groups_partition_the_tiers() -> None:
    assert sorted(sum(GROUPS.values(), ())) == sorted(TIERS)
    assert [len(tiers) for tiers in GROUPS.values()] == [4, 5, 2]


def test_summary_rows_and_means() -> None:
    rows = {row.name: row for row in summarize(_records())}
    assert list(rows) == [*TIERS, "single", "pair", "triple", "all"]
    assert rows["low"].count == 2 and rows["low"].scores["psnr"] == 20.5
    assert rows["single"].count == 8
    assert math.isclose(rows["single"].scores["psnr"], 20.5 + 1.5)
    assert math.isnan(rows["snow"].scores["mask_mae"])  # no masks: not a zero error
    assert math.isclose(rows["all"].scores["mask_mae"], 0.1)


def test_markdown_and_json(tmp_path: Path) -> None:
    rows = summarize(_records())
    table = to_markdown(rows)
    lines = table.strip().splitlines()
    assert lines[0].startswith("| tier | n | input PSNR | input SSIM | PSNR | SSIM |")
    assert len(lines) == 2 + len(rows) + 1
    assert lines[-1].startswith("| input (untouched) | 22 |")
    assert "| snow | 2 |" in table and "–" in table
    tiles = [np.zeros((8, 8, 3), np.uint8)] * 7
    evaluation = Evaluation(rows, _records(), {"low": tiles, "haze": tiles})
    json_path, md_path, picture = write_report(evaluation, {"split": "test"}, tmp_path)
    assert picture.name == "examples.png" and "(examples.png)" in md_path.read_text()
    document = json.loads(json_path.read_text())
    assert document["split"] == "test" and len(document["samples"]) == 22
    assert document["rows"][3]["mask_mae"] is None
    assert table in md_path.read_text()


def test_scores_of_a_perfect_restoration() -> None:
    clean = torch.rand(2, 3, 24, 24)
    degraded = clean * 0.5
    masks = torch.zeros(2, 4, 24, 24)
    masks[:, 0] = 1.0
    aux = Aux(masks.clone(), torch.tensor([[0.9, 0.1, 0.1, 0.1]] * 2), torch.full((2, 4), 0.5))
    presence = torch.tensor([[1.0, 0, 0, 0]] * 2)
    scores = score_batch(degraded, clean, clean, aux, masks, presence, torch.tensor([True, False]))
    assert torch.isinf(scores["psnr"]).all() and torch.allclose(
        scores["ssim"], torch.ones(2).double()
    )
    assert (scores["input_psnr"] < 20).all()
    assert scores["mask_mae"][0] == 0 and math.isnan(scores["mask_mae"][1])
    assert (scores["presence_accuracy"] == 1).all()
    assert (scores["selectivity"] > 1e6).all()  # only the present expert is active


def _rain_batch() -> dict[str, torch.Tensor]:
    """Two 16x16 rain samples, rain over the top half; the second without masks."""
    clean = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    masks = torch.zeros(2, 4, 16, 16)
    masks[:, 2, :8] = 1.0
    return {
        "degraded": clean * 0.5,
        "clean": clean,
        "masks": masks,
        "presence": torch.tensor([[0.0, 0, 1, 0]] * 2),
        "has_masks": torch.tensor([True, False]),
        "tier": torch.tensor([TIERS.index("rain")] * 2),
    }


def _scores(batch: dict[str, torch.Tensor], aux: Aux) -> dict[str, torch.Tensor]:
    keys = ("degraded", "clean", "clean", "masks", "presence", "has_masks")
    arguments = [batch[key] for key in keys]
    return score_batch(*arguments[:3], aux, *arguments[3:])


def test_pixel_scores_of_spatial_routing() -> None:
    batch = _rain_batch()
    maps = torch.zeros(2, 4, 16, 16)
    maps[:, 2] = torch.where(batch["masks"][:, 2] > 0.5, 1.0, 0.1)
    alpha = torch.tensor([[0.1, 0.1, 0.8, 0.1]] * 2)
    scores = _scores(batch, Aux(maps, torch.tensor([[0.1, 0.1, 0.9, 0.1]] * 2), alpha))
    assert list(scores) == [*COLUMNS, *DEGRADATION_COLUMNS]
    assert all(value.dtype == torch.float64 for value in scores.values())
    assert float(scores["pixel_selectivity"][0]) == pytest.approx(10.0)
    assert float(scores["pixel_selectivity_rain"][0]) == pytest.approx(10.0)
    assert math.isnan(scores["pixel_selectivity_snow"][0])  # absent
    assert float(scores["mask_iou"][0]) == 1.0
    assert float(scores["mask_mae"][0]) == pytest.approx(0.1 * 0.5 / 4)
    for column in PIXEL_COLUMNS:  # no masks: none of them is defined
        assert math.isnan(scores[column][1]), column
    image_level = 0.8 * 0.55  # alpha times the map's mean
    assert float(scores["most_over_least"][0]) == pytest.approx(image_level / 1e-12)
    assert float(scores["selectivity"][1]) == pytest.approx(image_level / 1e-12)


def test_image_level_routing_leaves_the_pixel_scores_undefined(tmp_path: Path) -> None:
    batch = _rain_batch()
    weights = torch.tensor([[0.1, 0.1, 0.9, 0.1]] * 2)
    alpha = torch.tensor([[0.1, 0.2, 0.8, 0.1]] * 2)

    def restore(spatial: bool) -> Callable[[torch.Tensor], tuple[torch.Tensor, Aux]]:
        def run(degraded: torch.Tensor) -> tuple[torch.Tensor, Aux]:
            return degraded, Aux(torch.ones(2, 4, 16, 16), weights, alpha, spatial)

        return run

    # The all-ones maps would score as uniform routing, and a perfect mask where the
    # masks are full: numbers, but not of a prediction.
    spatial = evaluate(restore(True), [batch])[0]
    assert spatial["pixel_selectivity"] == pytest.approx(1.0) and spatial["mask_mae"] > 0
    records = evaluate(restore(False), [batch])
    for record in records:
        assert all(math.isnan(record[column]) for column in PIXEL_COLUMNS)
        assert record["selectivity"] == pytest.approx(0.8 / ((0.1 + 0.2 + 0.1) / 3))
        assert record["most_over_least"] == pytest.approx(8.0)
        assert record["presence_accuracy"] == 1.0
    rows = summarize(records)
    table = to_markdown(rows)
    header, *lines = table.splitlines()
    everything = next(line for line in lines if line.startswith("| **all** |"))
    names, cells = (
        [c.strip() for c in line.strip("|").split("|")] for line in (header, everything)
    )
    shown = dict(zip(names, cells, strict=True))
    assert shown["pixel sel."] == shown["mask MAE"] == shown["mask IoU"] == "–"
    assert shown["image sel."] == "6.00" and shown["most/least"] == "8.00"
    assert "| **all** | – | – | – | – |" in table  # the per-degradation table
    json_path = write_report(Evaluation(rows, records, {}), {"split": "test"}, tmp_path)[0]
    document = json.loads(json_path.read_text())
    for entry in (document["rows"][-1], *document["samples"]):
        assert all(entry[column] is None for column in PIXEL_COLUMNS)
        assert entry["most_over_least"] == pytest.approx(8.0)


def test_eval_report_carries_the_routing_scores(store: Path, tmp_path: Path) -> None:
    config = preset("tiny")
    state = F2DNet(config.model).state_dict()
    checkpoint = tmp_path / "random.pt"
    save_checkpoint(
        {"config": config_to_dict(config), "step": 0, "model": state, "ema": state}, checkpoint
    )
    out = tmp_path / "e"
    arguments = ["eval", "--ckpt", str(checkpoint), "--data", str(store), "--device", "cpu"]
    result = CliRunner().invoke(main, [*arguments, "--out", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads((out / "eval.json").read_text())
    for entry in (*document["rows"], *document["samples"]):
        assert set(entry) >= {*COLUMNS, *DEGRADATION_COLUMNS}
    everything = document["rows"][-1]
    assert everything["name"] == "all" and everything["pixel_selectivity"] > 0
    assert 0 <= everything["mask_iou"] <= 1 and everything["most_over_least"] >= 1
    # Haze masks cover part of each image above 0.5: haze alone makes the tier's figure.
    haze = next(row for row in document["rows"] if row["name"] == "haze")
    assert haze["pixel_selectivity_haze"] > 0
    assert haze["pixel_selectivity"] == pytest.approx(haze["pixel_selectivity_haze"])
    assert haze["pixel_selectivity_snow"] is None  # snow is absent from the tier
    report = (out / "eval.md").read_text()
    for header in ("image sel.", "pixel sel.", "most/least", "mask MAE", "mask IoU"):
        assert f"| {header} |" in report, header
    assert "| group | low | haze | rain | snow |" in report
    assert all(f"| **{name}** |" in report for name in (*GROUPS, "all"))
