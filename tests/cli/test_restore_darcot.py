"""DA-RCOT through the CLI: unpaired training from one store or from a folder of real
degraded photos, refusals, and a diverging critic that stops with a loadable checkpoint."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from skyclear.cli.restore import main
from skyclear.datasets import CDD11Zarr, DegradedPhotos, Unpaired
from skyclear.restore.checkpoint import load_checkpoint
from skyclear.restore.inference import Restorer
from skyclear.restore.nn.critic import Critic
from skyclear.restore.train.sampling import StepSampler, training_loader

from .test_restore_cli import QUICK

QUICKER = [*QUICK, "--set", "data.val_samples=1", "--method", "darcot"]


def _train(store: Path, run: Path, *extra: str) -> object:
    return CliRunner().invoke(
        main, ["train", "--data", str(store), "--out", str(run), *QUICKER, *extra]
    )


def test_no_unpaired_batch_pairs_a_degraded_image_with_its_own_photo(store: Path) -> None:
    dataset = CDD11Zarr(store, "train", 16, True)
    unpaired = Unpaired.split(dataset, seed=3)
    photos = dataset.photos()
    degraded_side = set(photos[unpaired.degraded_items])
    clean_side = set(photos[unpaired.clean_items])
    assert degraded_side and clean_side and not degraded_side & clean_side
    sampler = StepSampler(len(unpaired), 4, 0, 0, 0, 1)
    loader = training_loader(unpaired, sampler, 0, False, 0)
    batches = [batch for _, batch in zip(range(12), loader, strict=False)]
    assert len(batches) == 12
    for batch in batches:
        assert bool((batch["photo"] != batch["clean_photo"]).all())
        assert set(batch["clean_photo"].tolist()) <= clean_side
    with pytest.raises(ValueError, match="at least two photos"):
        Unpaired.split(CDD11Zarr(store, "test", 16, True))


def test_unpaired_darcot_trains_without_the_paired_term(store: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = _train(store, run, "--unpaired")
    assert result.exit_code == 0, result.output
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    steps = [record for record in log if record["kind"] == "train"]
    assert steps and all(record["paired"] == 0.0 for record in steps)
    assert all(math.isfinite(record["adversarial"]) for record in steps)
    payload = load_checkpoint(run / "last.pt")
    assert payload["config"]["data"]["unpaired"] is True
    assert "critic" in payload and "critic_optimizer" in payload
    resumed = CliRunner().invoke(
        main,
        ["train", "--data", str(store), "--out", str(run), "--resume", "--steps", "3"],
    )
    assert resumed.exit_code == 0, resumed.output
    out = tmp_path / "cmp"
    arguments = ["--per-tier", "1", "--device", "cpu"]
    compared = CliRunner().invoke(
        main, ["compare", str(run), "--data", str(store), "--out", str(out), *arguments]
    )
    assert compared.exit_code == 0, compared.output
    (entry,) = json.loads((out / "compare.json").read_text())["runs"]
    network = sum(p.numel() for p in Restorer.from_checkpoint(run / "last.pt").model.parameters())
    critic = sum(p.numel() for p in Critic().parameters())
    assert entry["parameters"] == network + critic  # the critic counts in the method's column
    assert [scored["nfe"] for scored in entry["scores"]] == [2]
    assert entry["notes"] == ["trained unpaired (degraded and clean images from disjoint photos)"]


def test_a_paired_method_is_refused_unpaired(store: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["train", "--data", str(store), "--out", str(tmp_path / "r"), *QUICK, "--unpaired"],
    )
    assert result.exit_code == 2 and "cannot train unpaired" in result.output
    assert "darcot" in result.output and not (tmp_path / "r").exists()


def test_real_degraded_photos_train_against_clean_ones(store: Path, tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    rng = np.random.default_rng(0)
    for index in range(3):
        pixels = rng.integers(0, 255, (40, 36, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(real / f"rainy{index}.png")
    (real / "notes.txt").write_text("not a photo")
    photos = DegradedPhotos(real, 32, True)
    sample = photos[0]
    assert len(photos) == 3 and int(sample["tier"]) == -1 and not bool(sample["has_masks"])
    run = tmp_path / "run"
    result = _train(store, run, "--data-degraded", str(real))
    assert result.exit_code == 0, result.output
    payload = load_checkpoint(run / "last.pt")
    assert payload["degraded_data"] == str(real.resolve())
    assert payload["config"]["data"]["unpaired"] is True


def test_a_diverging_critic_stops_with_the_last_good_weights(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    forward = Critic.forward

    def exploding(self: Critic, images: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        values = forward(self, images)
        return values * math.nan if len(calls) > 2 else values  # a NaN from the third call

    monkeypatch.setattr(Critic, "forward", exploding)
    run = tmp_path / "run"
    result = _train(store, run, "--steps", "4")
    assert result.exit_code == 1
    assert "the critic diverged at step 2" in result.output and "last.pt" in result.output
    payload = load_checkpoint(run / "last.pt")
    assert payload["step"] == 1
    restorer = Restorer.from_checkpoint(run / "last.pt", device="cpu")
    assert all(bool(torch.isfinite(p).all()) for p in restorer.model.parameters())
