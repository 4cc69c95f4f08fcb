"""The evaluation table: scores, groups, the input baseline, JSON and Markdown."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from skyclear.degrade.names import TIERS
from skyclear.restore.evaluate import GROUPS, Evaluation, score_batch, summarize
from skyclear.restore.nn import Aux
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
