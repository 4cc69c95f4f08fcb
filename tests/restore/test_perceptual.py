"""LPIPS from local weight files, the Fréchet distance, and LPIPS in ``restore eval``."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from skyclear.cli.restore import main
from skyclear.restore.checkpoint import save_checkpoint
from skyclear.restore.config import config_to_dict, preset
from skyclear.restore.evaluate import (
    COLUMNS,
    DEGRADATION_COLUMNS,
    LPIPS_COLUMNS,
    score_batch,
    score_columns,
    summarize,
)
from skyclear.restore.nn import Aux, F2DNet
from skyclear.restore.perceptual import (
    LPIPS,
    LPIPS_MIN_SIZE,
    feature_statistics,
    fid,
    frechet_distance,
)
from skyclear.restore.report import to_markdown

CHANNELS = (64, 192, 384, 256, 256)
#: torchvision's ``alexnet().features``: index, (out, in, kernel), stride, padding.
ALEXNET = ((0, (64, 3, 11), 4, 2), (3, (192, 64, 5), 1, 2), (6, (384, 192, 3), 1, 1),
           (8, (256, 384, 3), 1, 1), (10, (256, 256, 3), 1, 1))  # fmt: skip


def _alexnet_state(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for index, (c_out, c_in, k), _, _ in ALEXNET:
        fan_in = c_in * k * k
        state[f"features.{index}.weight"] = (
            torch.randn(c_out, c_in, k, k, generator=g) / fan_in**0.5
        )
        state[f"features.{index}.bias"] = 0.01 * torch.randn(c_out, generator=g)
    state["classifier.1.weight"] = torch.randn(4, 9, generator=g)  # ignored
    return state


def _lin_state(seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1, generator=g)
        for i, c in enumerate(CHANNELS)
    }


@pytest.fixture
def weights(tmp_path: Path) -> tuple[Path, Path]:
    alexnet, lin = tmp_path / "alexnet.pth", tmp_path / "alex.pth"
    torch.save(_alexnet_state(), alexnet)
    # the released alex.pth predates torch's zip format: the legacy format must load too
    torch.save(_lin_state(), lin, _use_new_zipfile_serialization=False)
    return alexnet, lin


@pytest.fixture
def lpips(weights: tuple[Path, Path]) -> LPIPS:
    return LPIPS.from_files(*weights)


def _reference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """LPIPS written out layer by layer from the two state dicts (Zhang et al. 2018)."""
    alexnet, lins = _alexnet_state(), _lin_state()
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    xs = [((2 * x - 1) - shift) / scale for x in (a, b)]
    total = torch.zeros(len(a))
    for layer, (index, _, stride, padding) in enumerate(ALEXNET):
        if index in (3, 6):
            xs = [F.max_pool2d(x, 3, 2) for x in xs]
        w, bias = alexnet[f"features.{index}.weight"], alexnet[f"features.{index}.bias"]
        xs = [F.relu(F.conv2d(x, w, bias, stride, padding)) for x in xs]
        unit = [x / (x.norm(dim=1, keepdim=True) + 1e-10) for x in xs]
        weighted = F.conv2d((unit[0] - unit[1]) ** 2, lins[f"lin{layer}.model.1.weight"])
        total += weighted.mean(dim=(1, 2, 3))
    return total


def _images(batch: int = 2, size: int = 40, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_lpips_matches_the_layer_by_layer_formula(lpips: LPIPS) -> None:
    a, b = _images(seed=0), _images(seed=1)
    distance = lpips(a, b)
    assert distance.shape == (2,)
    torch.testing.assert_close(distance, _reference(a, b), rtol=1e-4, atol=1e-6)


def test_lpips_of_an_image_with_itself_is_zero(lpips: LPIPS) -> None:
    x = _images()
    assert torch.equal(lpips(x, x), torch.zeros(2))


def test_lpips_grows_with_noise(lpips: LPIPS) -> None:
    clean = _images(batch=1) * 0.6 + 0.2
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(3))
    distances = [float(lpips((clean + s * noise).clamp(0, 1), clean)) for s in (0.02, 0.08, 0.2)]
    assert 0 < distances[0] < distances[1] < distances[2]


def test_lpips_is_batch_invariant_and_symmetric(lpips: LPIPS) -> None:
    a, b = _images(batch=3, seed=4), _images(batch=3, seed=5)
    together = lpips(a, b)
    alone = torch.cat([lpips(a[i : i + 1], b[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(lpips(b, a), together, rtol=1e-5, atol=1e-7)


def test_lpips_is_frozen_but_differentiable_in_the_image(lpips: LPIPS) -> None:
    assert not any(p.requires_grad for p in lpips.parameters()) and not lpips.training
    a = _images(batch=1).requires_grad_(True)
    lpips(a, _images(batch=1, seed=9)).sum().backward()
    assert a.grad is not None and a.grad.abs().sum() > 0


def test_lpips_refuses_bad_images(lpips: LPIPS) -> None:
    x = _images(size=LPIPS_MIN_SIZE)
    lpips(x, x)  # the smallest size works
    small = _images(size=LPIPS_MIN_SIZE - 1)
    for a, b, message in [
        (small, small, "at least 31"),
        (x, _images(batch=1, size=LPIPS_MIN_SIZE), "one shape"),
        (x * 2, x, "[0, 1]"),
        (x[:, :1], x[:, :1], "(B, 3, H, W)"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            lpips(a, b)


def test_unusable_weight_files_raise_naming_the_file(
    tmp_path: Path, weights: tuple[Path, Path]
) -> None:
    alexnet, lin = weights
    wrong_key = tmp_path / "renamed.pth"
    torch.save(
        {k.replace("features.3", "features.4"): v for k, v in _alexnet_state().items()}, wrong_key
    )
    wrong_shape = tmp_path / "shape.pth"
    torch.save({**_lin_state(), "lin2.model.1.weight": torch.rand(1, 256, 1, 1)}, wrong_shape)
    not_a_dict = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], not_a_dict)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    cases = [
        (tmp_path / "absent.pth", lin, "no such weight file"),
        (wrong_key, lin, "missing keys ['features.3.weight', 'features.3.bias']"),
        (alexnet, wrong_shape, "lin2.model.1.weight has shape (1, 256, 1, 1), expected (1, 384"),
        (alexnet, alexnet, "missing keys ['lin0.model.1.weight'"),  # the files swapped
        (not_a_dict, lin, "holds a list"),
        (garbage, lin, "not a readable torch weight file"),
    ]  # fmt: skip
    for first, second, message in cases:
        bad = first if first not in weights else second
        with pytest.raises(ValueError) as caught:
            LPIPS.from_files(first, second)
        assert str(bad) in str(caught.value) and message in str(caught.value)


class _RunsCode:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("this ran while unpickling",))


@pytest.mark.parametrize("zip_format", [True, False])
def test_a_pickle_that_would_run_code_is_refused(
    tmp_path: Path, weights: tuple[Path, Path], zip_format: bool
) -> None:
    trap = tmp_path / "trap.pth"
    payload = {**_lin_state(), "extra": _RunsCode()}
    torch.save(payload, trap, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(ValueError, match=r"refused.*run arbitrary code") as caught:
        LPIPS.from_files(weights[0], trap)
    assert str(trap) in str(caught.value) and "print" in str(caught.value)


def test_frechet_distance_of_equal_statistics_is_zero() -> None:
    features = np.random.default_rng(0).normal(size=(50, 6))
    mu, sigma = feature_statistics(features)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6
    np.testing.assert_allclose(sigma, np.cov(features, rowvar=False))


def test_frechet_distance_of_diagonal_gaussians() -> None:
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([0.5, 1.0, 1.0])
    var1, var2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    value = frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2))
    assert math.isclose(value, expected, rel_tol=1e-10)  # 9.25 + 4 + 1


def test_frechet_distance_is_symmetric() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(40, 5)), rng.normal(size=(30, 5)) @ rng.normal(size=(5, 5)) + 1
    first, second = feature_statistics(a), feature_statistics(torch.from_numpy(b))
    there, back = frechet_distance(*first, *second), frechet_distance(*second, *first)
    assert there > 1 and math.isclose(there, back, rel_tol=1e-9)


def test_frechet_distance_refuses_bad_statistics() -> None:
    mu, eye = np.zeros(2), np.eye(2)
    with pytest.raises(ValueError, match="sigma2 must be"):
        frechet_distance(mu, eye, mu, np.eye(3))
    with pytest.raises(ValueError, match="sigma1 is not symmetric"):
        frechet_distance(mu, np.array([[1.0, 0.5], [0.0, 1.0]]), mu, eye)
    with pytest.raises(ValueError, match="N >= 2"):
        feature_statistics(np.zeros((1, 4)))


def test_fid_with_a_given_extractor() -> None:
    def extract(images: torch.Tensor) -> torch.Tensor:
        return images.mean(dim=(2, 3))

    first = [_images(batch=8, size=8, seed=s) for s in range(3)]
    assert fid(extract, first, first) < 1e-6
    assert fid(extract, first, [x * 0.5 for x in first]) > 0.1


def test_score_batch_adds_lpips_only_when_given(lpips: LPIPS) -> None:
    clean = _images(size=32)
    masks = torch.zeros(2, 4, 32, 32)
    aux = Aux(masks, torch.full((2, 4), 0.5), torch.full((2, 4), 0.5))
    presence = torch.tensor([[1.0, 0, 0, 0]] * 2)
    arguments = (clean * 0.5, clean, clean, aux, masks, presence, torch.tensor([True, True]))
    assert set(score_batch(*arguments)) == {*COLUMNS, *DEGRADATION_COLUMNS}
    scores = score_batch(*arguments, lpips=lpips)
    assert set(scores) == {*COLUMNS, *DEGRADATION_COLUMNS, *LPIPS_COLUMNS}
    assert torch.equal(scores["lpips"], torch.zeros(2, dtype=torch.float64))
    assert (scores["input_lpips"] > 0).all()


def test_score_columns_and_table_with_lpips() -> None:
    assert score_columns() == COLUMNS
    records = [
        {"tier": "low", **dict.fromkeys(COLUMNS, 0.5), "input_lpips": 0.4, "lpips": 0.1},
    ]
    rows = summarize(records)
    assert rows[-1].scores["lpips"] == 0.1
    lines = to_markdown(rows).splitlines()
    assert lines[0].startswith(
        "| tier | n | input PSNR | input SSIM | input LPIPS | PSNR | SSIM | LPIPS |"
    )
    assert lines[-1] == "| input (untouched) | 1 |  |  |  | 0.50 | 0.500 | 0.400 |" + " – |" * 6


def test_eval_cli_with_lpips(store: Path, tmp_path: Path, weights: tuple[Path, Path]) -> None:
    config = preset("tiny")
    state = F2DNet(config.model).state_dict()
    checkpoint = tmp_path / "random.pt"
    save_checkpoint(
        {"config": config_to_dict(config), "step": 0, "model": state, "ema": state}, checkpoint
    )
    base = ["eval", "--ckpt", str(checkpoint), "--data", str(store), "--device", "cpu"]
    runner = CliRunner()
    plain = runner.invoke(main, base)
    assert plain.exit_code == 0, plain.output
    assert "LPIPS" not in plain.output

    alexnet, lin = weights
    out = tmp_path / "e"
    result = runner.invoke(
        main, [*base, "--lpips-alexnet", str(alexnet), "--lpips-lin", str(lin), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "| input LPIPS |" in result.output and "| LPIPS |" in result.output
    samples = json.loads((out / "eval.json").read_text())["samples"]
    assert all(s["lpips"] >= 0 and s["input_lpips"] > 0 for s in samples)

    alone = runner.invoke(main, [*base, "--lpips-lin", str(lin)])
    assert alone.exit_code == 2 and "go together" in alone.output
    swapped = runner.invoke(main, [*base, "--lpips-alexnet", str(lin), "--lpips-lin", str(lin)])
    assert swapped.exit_code == 2 and "missing keys" in swapped.output
    help_text = " ".join(runner.invoke(main, ["eval", "--help"]).output.split())
    assert "nothing is downloaded" in help_text
