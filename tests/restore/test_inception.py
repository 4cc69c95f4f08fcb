"""The FID Inception-v3 from a local weight file, standard FID, and FID in ``restore eval``."""

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
from skyclear.restore.checkpoint import save_checkpoint
from skyclear.restore.config import config_to_dict, preset
from skyclear.restore.evaluate import Evaluation, fid_scores, summarize
from skyclear.restore.inception import FEATURES, InceptionFeatures
from skyclear.restore.nn import F2DNet
from skyclear.restore.perceptual import (
    feature_statistics,
    features_frechet_distance,
    fid_from_file,
    frechet_distance,
)
from skyclear.restore.report import to_markdown, write_report


def _state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights in the file's key layout, scaled so activations neither vanish nor
    explode through the 94 convolutions (He-normal weights, BatchNorm near identity), and
    without the ``num_batches_tracked`` counters, which the released file may lack."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in InceptionFeatures().state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        if key.endswith("conv.weight"):
            fan_in = value[0].numel()
            value = torch.randn(value.shape, generator=g) * (2.0 / fan_in) ** 0.5
        elif key.endswith("running_var"):
            value = 0.5 + torch.rand(value.shape, generator=g)
        elif key.endswith(("running_mean", "bn.bias")):
            value = 0.1 * torch.randn(value.shape, generator=g)
        elif key.endswith("bn.weight"):
            value = 0.8 + 0.4 * torch.rand(value.shape, generator=g)
        state[key] = value
    return state


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("inception") / "pt_inception.pth"
    torch.save(_state(), path)
    return path


@pytest.fixture(scope="module")
def inception(weights: Path) -> InceptionFeatures:
    return InceptionFeatures.from_file(weights)


def _images(batch: int, size: int = 40, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_the_key_layout_is_that_of_the_released_file() -> None:
    state = InceptionFeatures().state_dict()
    convolutions = [k for k in state if k.endswith("conv.weight")]
    assert len(convolutions) == 94
    assert state["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
    assert state["Mixed_5b.branch_pool.conv.weight"].shape == (32, 192, 1, 1)
    assert state["Mixed_6b.branch7x7_2.conv.weight"].shape == (128, 128, 1, 7)
    assert state["Mixed_7c.branch3x3dbl_3b.conv.weight"].shape == (384, 384, 3, 1)
    assert state["Mixed_7c.branch_pool.bn.running_var"].shape == (192,)
    assert state["fc.weight"].shape == (1008, FEATURES) and state["fc.bias"].shape == (1008,)
    assert not any(k.startswith("AuxLogits") for k in state)
    parameters = sum(v.numel() for k, v in state.items() if "num_batches" not in k)
    assert parameters == 23_885_392


def test_features_are_frozen_batch_invariant_and_exact(
    inception: InceptionFeatures, weights: Path
) -> None:
    assert not inception.training and not any(p.requires_grad for p in inception.parameters())
    loaded = inception.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in torch.load(weights).items())
    images = _images(3)
    together = inception(images)
    assert together.shape == (3, FEATURES) and together.dtype == torch.float32
    assert torch.isfinite(together).all() and together.std() > 1e-3
    apart = torch.cat([inception(images[:1]), inception(images[1:])])
    torch.testing.assert_close(apart, together, rtol=1e-4, atol=1e-5)
    # FID of a set with itself, batched two different ways, is zero
    spread = float(together.var(dim=0).sum())
    assert features_frechet_distance(together, apart) < 1e-6 * spread


def test_fid_grows_with_noise(weights: Path) -> None:
    clean = _images(2, seed=1) * 0.6 + 0.2
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(2))
    noisy = (clean + 0.3 * noise).clamp(0, 1)
    value = fid_from_file(weights, [clean[:1], clean[1:]], [noisy])
    assert value > 1e-3 * float(InceptionFeatures.from_file(weights)(clean).var(dim=0).sum())


def test_the_sample_space_distance_equals_the_covariance_one() -> None:
    rng = np.random.default_rng(3)
    mixing = rng.normal(size=(6, 6))
    for sizes in [(3, 5), (4, 4), (2, 6), (5, 9), (40, 30)]:  # N <= D, then N > D
        a = rng.normal(size=(sizes[0], 6)) @ mixing
        b = rng.normal(size=(sizes[1], 6)) @ mixing + 0.5
        expected = frechet_distance(*feature_statistics(a), *feature_statistics(b))
        # for N <= D the D x D route takes square roots of round-off-sized eigenvalues
        # (~1e-15 gives ~3e-8): that route, not the sample-space one, limits the agreement
        assert math.isclose(features_frechet_distance(a, b), expected, rel_tol=1e-7)
        assert features_frechet_distance(a, a) < 1e-12 * float(np.sum(a**2))
    with pytest.raises(ValueError, match="one width"):
        features_frechet_distance(np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="second must be"):
        features_frechet_distance(np.zeros((3, 4)), np.zeros((1, 4)))


def test_images_outside_the_contract_are_refused(inception: InceptionFeatures) -> None:
    for images, message in [
        (_images(1) * 2, r"\[0, 1\]"),
        (_images(1)[:, :1], r"\(B, 3, H, W\)"),
    ]:
        with pytest.raises(ValueError, match=message):
            inception(images)
    with pytest.raises(TypeError, match="floating-point"):
        inception((_images(1) * 255).to(torch.uint8))


def test_unusable_weight_files_raise_naming_the_file_and_keys(tmp_path: Path) -> None:
    first = "Conv2d_1a_3x3.conv.weight"
    renamed = tmp_path / "renamed.pth"
    torch.save({"Conv2d_1a_3x3.weight": torch.zeros(32, 3, 3, 3)}, renamed)
    shape = tmp_path / "shape.pth"
    torch.save({first: torch.zeros(32, 3, 5, 5)}, shape)
    torchvision = tmp_path / "torchvision.pth"
    torch.save({"AuxLogits.fc.weight": torch.zeros(1000, 768)}, torchvision)
    not_a_dict = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], not_a_dict)
    cases = [
        (tmp_path / "absent.pth", "no such weight file"),
        (renamed, f"missing keys ['{first}', 'Conv2d_1a_3x3.bn.weight'"),
        (renamed, "unexpected keys ['Conv2d_1a_3x3.weight']"),
        (renamed, "more"),
        (shape, f"{first} has shape (32, 3, 5, 5), expected (32, 3, 3, 3)"),
        (torchvision, "torchvision's Inception-v3 weights are another network"),
        (not_a_dict, "holds a list"),
    ]
    for path, message in cases:
        with pytest.raises(ValueError) as caught:
            InceptionFeatures.from_file(path)
        assert str(path) in str(caught.value) and message in str(caught.value)


class _RunsCode:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("this ran while unpickling",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path: Path) -> None:
    trap = tmp_path / "trap.pth"
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 3, 3), "x": _RunsCode()}, trap)
    with pytest.raises(ValueError, match=r"refused.*run arbitrary code") as caught:
        InceptionFeatures.from_file(trap)
    assert str(trap) in str(caught.value) and "print" in str(caught.value)


def test_fid_scores_and_their_report(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    clean = torch.from_numpy(rng.normal(size=(20, 4)))
    scores = fid_scores(clean + 1.0, clean, clean)
    assert scores["fid"] < 1e-9 and math.isclose(scores["input_fid"], 4.0, rel_tol=1e-9)

    records = [{"tier": "low", "input_psnr": 20.0, "psnr": 30.0}]
    plain = to_markdown(summarize(records))
    assert "FID" not in plain
    lines = to_markdown(summarize(records), {"fid": 12.345, "input_fid": 40.0}).splitlines()
    assert lines[-2:] == ["", "FID restored vs clean: 12.35 (input: 40.00)"]
    evaluation = Evaluation(summarize(records), records, {}, {"fid": 1.5, "input_fid": math.nan})
    write_report(evaluation, {"fid_inception": "w.pth"}, tmp_path)
    document = json.loads((tmp_path / "eval.json").read_text())
    assert document["fid"] == 1.5 and document["input_fid"] is None
    assert document["fid_inception"] == "w.pth"
    assert "FID restored vs clean: 1.50 (input: –)" in (tmp_path / "eval.md").read_text()


def _cdd11_folder(root: Path, tiers: tuple[str, ...]) -> Path:
    """A CDD-11 folder layout with one 32x32 photo per tier in its test split."""
    rng = np.random.default_rng(0)
    for i, tier in enumerate(tiers):
        for folder in ("clear", tier):
            (root / "test" / folder).mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "test" / folder / f"p{i}.png")
    return root


def test_eval_cli_with_fid(tmp_path: Path, weights: Path) -> None:
    config = preset("tiny")
    state = F2DNet(config.model).state_dict()
    checkpoint = tmp_path / "random.pt"
    save_checkpoint(
        {"config": config_to_dict(config), "step": 0, "model": state, "ema": state}, checkpoint
    )
    data = _cdd11_folder(tmp_path / "two", ("haze", "rain"))
    base = ["eval", "--ckpt", str(checkpoint), "--device", "cpu", "--fid-inception", str(weights)]
    runner = CliRunner()
    out = tmp_path / "e"
    result = runner.invoke(main, [*base, "--data", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "FID restored vs clean: " in result.output
    document = json.loads((out / "eval.json").read_text())
    assert document["fid_inception"] == str(weights)
    assert document["fid"] >= 0 and document["input_fid"] > 0
    assert "FID restored vs clean" in (out / "eval.md").read_text()

    one = _cdd11_folder(tmp_path / "one", ("haze",))
    alone = runner.invoke(main, [*base, "--data", str(one)])
    assert alone.exit_code == 2 and "at least 2 samples" in alone.output
    wrong = runner.invoke(main, [*base[:-1], str(checkpoint), "--data", str(data)])
    assert wrong.exit_code == 2 and "missing keys" in wrong.output
    help_text = " ".join(runner.invoke(main, ["eval", "--help"]).output.split())
    assert "--fid-inception" in help_text
