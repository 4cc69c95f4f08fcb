"""``restore export``: an ONNX file that onnxruntime runs like the network, at any size."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from skyclear.cli.restore_export import export
from skyclear.restore.checkpoint import save_checkpoint
from skyclear.restore.config import config_to_dict, override, preset
from skyclear.restore.inference import Restorer
from skyclear.restore.nn import F2DNet
from skyclear.restore.nn.blocks import TimeEmbedding

onnxruntime = pytest.importorskip("onnxruntime")


def _checkpoint(root: Path, method: str) -> Path:
    """A randomly initialised tiny restorer trained as ``method``; the layers that start at
    zero (DA-RCOT's residual heads) are drawn too, so that every pass counts."""
    torch.manual_seed(0)
    config = override(preset("tiny"), [f"method={method}"])
    model = F2DNet(config.model)
    with torch.no_grad():
        for parameter in model.parameters():
            if not parameter.any():
                parameter.normal_(0.0, 0.1)
    weights = model.state_dict()
    path = root / f"{method}.pt"
    save_checkpoint({"config": config_to_dict(config), "step": 0, "model": weights,
                     "ema": weights}, path)  # fmt: skip
    return path


def _invoke(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(export, [str(arg) for arg in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.mark.parametrize("method", ["f2d", "darcot"])
def test_the_exported_file_restores_like_the_network_at_any_size(
    tmp_path: Path, method: str
) -> None:
    ckpt = _checkpoint(tmp_path, method)
    out = tmp_path / "restorer.onnx"
    code, output = _invoke("--ckpt", ckpt, "--out", out)
    assert code == 0, output
    assert output.count(" ok") == 3 and "FAILED" not in output
    # Independently of the command's own check: a size it did not try, a batch of three.
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [node.name for node in session.get_inputs()] == ["degraded"]
    x = torch.rand(3, 3, 45, 70, generator=torch.Generator().manual_seed(2))
    got = session.run(None, {"degraded": x.numpy()})[0]
    expected = Restorer.from_checkpoint(ckpt, device="cpu")(x)[0].numpy()
    assert got.shape == (3, 3, 45, 70)
    assert float(np.abs(got - expected).mean()) < 1e-5


def test_noisy_samplers_and_torchscript_are_refused_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    out = tmp_path / "restorer.onnx"
    code, output = _invoke("--ckpt", _checkpoint(tmp_path, "resflow"), "--out", out)
    assert code == 2 and "draws noise" in output and not out.exists()
    code, output = _invoke("--ckpt", _checkpoint(tmp_path, "f2d"), "--out", out, "--steps", "3")
    assert code == 2 and "draws noise with 3" in output and not out.exists()
    code, output = _invoke(
        "--ckpt", _checkpoint(tmp_path, "f2d"), "--out", out, "--format", "torchscript"
    )
    assert code == 2 and "deprecated" in output and not out.exists()
    assert list(tmp_path.glob("*.partial")) == []


def test_an_existing_file_is_kept_without_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "restorer.onnx"
    out.write_bytes(b"someone's file")
    code, output = _invoke("--ckpt", _checkpoint(tmp_path, "f2d"), "--out", out)
    assert code == 2 and "--overwrite" in output
    assert out.read_bytes() == b"someone's file"


def test_the_time_embedding_compiles_with_torchscript() -> None:
    embedding = TimeEmbedding(32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(embedding)
    t = torch.tensor([0.0, 0.5])
    torch.testing.assert_close(scripted(t), embedding(t))
