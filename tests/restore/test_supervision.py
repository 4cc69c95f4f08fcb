"""The masks supervise the parser's maps: the gradient reaches it and training moves the
maps toward the masks."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from skyclear.restore.losses import LossWeights, restoration_loss
from skyclear.restore.nn import build_model
from skyclear.restore.train import train

from .runs import quick_config


def test_the_mask_term_moves_the_parsers_maps_toward_the_masks() -> None:
    torch.manual_seed(0)
    model = build_model("tiny")
    x = torch.rand(2, 3, 16, 16)
    masks = torch.zeros(2, 4, 16, 16)
    masks[:, 2, :, :8] = 1.0  # rain on the left half
    masks[:, 1] = 0.6  # an even haze
    weights = LossWeights(mask_weight=1.0, presence_weight=0.0)
    optimizer = torch.optim.SGD(model.parser.parameters(), lr=0.3)

    def mask_loss() -> torch.Tensor:
        _, aux = model(x, torch.zeros(2), x, return_aux=True)
        terms = restoration_loss(torch.zeros_like(x), torch.zeros_like(x), aux.maps,
                                 masks=masks, loss_weights=weights)  # fmt: skip
        return terms["loss"]

    before = mask_loss()
    before.backward()
    grads = [p.grad for p in model.parser.parameters()]
    assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0, "it reaches the parser"
    for _ in range(20):
        optimizer.step()
        optimizer.zero_grad()
        mask_loss().backward()
    with torch.no_grad():
        assert float(mask_loss()) < 0.8 * float(before)


def _mask_error(run: Path) -> float:
    """The maps' cross-entropy against the masks over the last logged training steps."""
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    maps = [r["maps"] for r in records if r["kind"] == "train"]
    return sum(maps[-3:]) / 3


def test_training_with_the_mask_term_fits_the_masks(store: Path, tmp_path: Path) -> None:
    """Two runs alike but for the mask weight: the supervised maps end nearer the masks."""
    common = ["steps=30", "optim.lr=3e-3", "log_every=2", "val_every=30", "ckpt_every=30"]
    train(quick_config(*common, "loss.mask_weight=1.0"), store, tmp_path / "with")
    train(quick_config(*common, "loss.mask_weight=0.0"), store, tmp_path / "without")
    supervised, unsupervised = _mask_error(tmp_path / "with"), _mask_error(tmp_path / "without")
    assert 0 < supervised < 0.8 * unsupervised, (supervised, unsupervised)
