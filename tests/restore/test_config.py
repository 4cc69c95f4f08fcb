"""Training configs: presets, strict YAML, --set overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
from skyclear.restore.config import (
    PRESETS,
    ConfigError,
    TrainConfig,
    load_config,
    override,
    preset,
    save_config,
)

CONFIGS = Path(__file__).parents[2] / "configs"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_yaml_round_trip(name: str, tmp_path: Path) -> None:
    save_config(preset(name), tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == preset(name)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_shipped_yaml_matches_the_preset(name: str) -> None:
    assert load_config(CONFIGS / f"{name}.yaml") == preset(name)


def test_overrides_parse_literals() -> None:
    config = override(
        preset("tiny"),
        [
            "optim.lr=3e-3",
            "data.tiers=[low, haze]",
            "data.val_crop=null",
            "model.experts=false",
            "optim.betas=[0.8, 0.95]",
            "steps=7",
        ],
    )
    assert config.optim.lr == 3e-3 and config.steps == 7
    assert config.data.tiers == ("low", "haze") and config.data.val_crop is None
    assert config.model.experts is False and config.optim.betas == (0.8, 0.95)


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("optim.lrr=1", "unknown key 'optim.lrr'"),
        ("nothing.here=1", "unknown key 'nothing'"),
        ("steps=1.5", "steps must be int"),
        ("model.experts=1", "model.experts must be bool"),
        ("model.gate=maybe", "gate must be one of"),
        ("data.tiers=[fog]", "data.tiers"),
        ("optim.betas=[0.9]", "optim.betas must have 2 items"),
        ("steps", "key=value"),
        ("amp=fp8", "amp must be"),
        ("__import__('os').system('true')=1", "unknown key"),
    ],
)
def test_bad_overrides_raise_naming_the_key(assignment: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        override(preset("tiny"), [assignment])


def test_yaml_is_strict(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: 1e-3\n  momentum: 0.9\n")
    with pytest.raises(ConfigError, match=r"unknown key 'optim\.momentum'"):
        load_config(path)
    path.write_text("steps: 12\n")
    assert load_config(path) == TrainConfig(steps=12)
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)
    path.write_text("!!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError):
        load_config(path)


def test_yaml_reads_values_as_a_person_means_them(tmp_path: Path) -> None:
    config = override(preset("tiny"), ["amp=off", "channels_last=on", "optim.lr=2e-3"])
    assert config.amp == "off" and config.channels_last == "on" and config.optim.lr == 2e-3
    path = tmp_path / "c.yaml"
    path.write_text("amp: off\noptim:\n  min_lr: 1e-6\nmodel:\n  experts: false\n")
    loaded = load_config(path)
    assert loaded.amp == "off" and loaded.optim.min_lr == 1e-6
    assert loaded.model.experts is False


def test_configs_saved_with_earlier_key_names_still_load(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(
        "model:\n  factorized: true\n  time_gate: false\nloss:\n  maps: 0.3\n  presence: 0.2\n"
    )
    loaded = load_config(path)
    assert loaded.model.experts is True and loaded.model.gate == "none"
    assert loaded.loss.mask_weight == 0.3 and loaded.loss.presence_weight == 0.2
    path.write_text("model:\n  time_gate: true\n")
    assert load_config(path).model.gate == "sigmoid"
