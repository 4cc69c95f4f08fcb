"""`restore compare`: runs of different methods scored side by side by one protocol."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from PIL import Image
from skyclear.cli.restore import main

from .test_restore_cli import QUICK


def test_compare_scores_each_method_at_its_own_nfe_and_notes_what_differs(
    store: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    quick = [*QUICK, "--set", "data.val_samples=1"]
    for name, extra in (("f2d", []), ("flow", ["--method", "irflow", "--set", "data.tiers=[low]"])):
        trained = runner.invoke(
            main, ["train", "--data", str(store), "--out", str(tmp_path / name), *quick, *extra]
        )
        assert trained.exit_code == 0, trained.output
    out = tmp_path / "cmp"
    runs_given = [str(tmp_path / "f2d"), str(tmp_path / "flow")]
    options = ["--also-nfe", "1", "--per-tier", "1", "--device", "cpu"]
    arguments = ["compare", *runs_given, "--data", str(store), "--out", str(out), *options]
    result = runner.invoke(main, arguments)
    assert result.exit_code == 0, result.output
    document = json.loads((out / "compare.json").read_text())
    assert document["samples"] == 11  # one per tier
    runs = {Path(run["run"]).name: run for run in document["runs"]}
    assert runs["f2d"]["method"] == "f2d" and runs["flow"]["method"] == "irflow"
    assert [s["nfe"] for s in runs["f2d"]["scores"]] == [1]  # its own NFE is 1 already
    assert [s["nfe"] for s in runs["flow"]["scores"]] == [4, 1]
    for run in runs.values():
        for scored in run["scores"]:
            assert set(scored["groups"]) == {"single", "pair", "triple", "all"}
            assert scored["ms_per_image"] > 0 and scored["groups"]["all"]["psnr"] > 0
    assert runs["f2d"]["notes"] == [] and runs["flow"]["notes"] == ["trained on the tiers low only"]
    assert "trained on the tiers low only" in (out / "compare.md").read_text()
    picture = Image.open(out / "compare.png")
    assert picture.width > 4 * 32 and picture.height > 3 * 32  # 3 groups x (input, 2 runs, clean)

    again = runner.invoke(main, arguments)  # an earlier comparison's folder is replaced
    assert again.exit_code == 0, again.output
    (out / "mine.txt").write_text("keep")
    refused = runner.invoke(main, arguments)
    assert refused.exit_code == 2 and (out / "mine.txt").read_text() == "keep"
