"""Presets: the physical defaults and the CDD-11-calibrated ranges, as a store records them."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import zarr
from click.testing import CliRunner
from skyclear.cli.degrade import main
from skyclear.degrade import TIERS, Composite
from skyclear.degrade.presets import PRESETS, preset, preset_defaults

from ..photos import write_photos


def test_the_physical_preset_is_the_operators_defaults() -> None:
    assert PRESETS[0] == "physical"
    assert preset("physical") == Composite()


def test_the_cdd11_preset_keeps_cdd11s_order_and_haze_range(image: torch.Tensor) -> None:
    """CDD-11's order and transmission at least exp(-0.025 * 30) ~ 0.47 everywhere (its
    script's t ranges over [0.25, 1] on relative depth; ours is uniform over the frame)."""
    composite = preset("cdd11")
    assert composite.order == "cdd11" and composite.haze.prior == "uniform"
    assert preset_defaults("cdd11") == ("cdd11", "uniform")
    for tier in TIERS:
        out = composite(image, tier, torch.Generator().manual_seed(TIERS.index(tier)))
        if "haze" in tier:
            assert float(out.masks[:, 1].max()) <= 1 - math.exp(-0.025 * 30) + 1e-5
    assert preset("cdd11", depth_prior="ground", order="physical").order == "physical"
    with pytest.raises(ValueError, match="preset must be one of"):
        preset("heavy")


def test_a_store_records_its_preset_and_what_it_implies(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_photos(src, count=2)
    runner = CliRunner()
    out = tmp_path / "c.zarr"
    args = ["make-cdd11", "--src", str(src), "--out", str(out), "--size", "32", "--tiers", "haze"]
    result = runner.invoke(main, [*args, "--preset", "cdd11"])
    assert result.exit_code == 0, result.output
    attrs = dict(zarr.open_group(str(out), mode="r").attrs)
    assert (attrs["preset"], attrs["order"], attrs["depth_prior"]) == ("cdd11", "cdd11", "uniform")
    mixed = tmp_path / "m.zarr"
    result = runner.invoke(
        main, [*args[:4], str(mixed), *args[5:], "--preset", "cdd11", "--order", "physical"]
    )
    assert result.exit_code == 0, result.output
    attrs = dict(zarr.open_group(str(mixed), mode="r").attrs)
    assert (attrs["preset"], attrs["order"]) == ("cdd11", "physical")
    bad = runner.invoke(main, [*args[:4], str(tmp_path / "x.zarr"), "--preset", "heavy"])
    assert bad.exit_code == 2 and "--preset" in bad.output
