"""The F2D-Net ablation ladder: each rung a set of config overrides on one preset.

The ladder adds one thing per rung, from deterministic flow matching to the full model,
then two controls ask whether the gain is the routing or merely the capacity:

=================  ========================================================================
``fm``             deterministic flow matching, backbone alone (``transport.b = 0``)
``stochastic``     + the stochastic transport (``transport.b`` as the preset)
``experts``        + four experts routed per pixel by the parser's maps, no time gate
``gate``           + the time gate: the full model, with the preset's gate
``gate_sigmoid``   the full model with the per-expert sigmoid gate
``gate_softmax``   the full model with the softmax gate shared across active experts
``image``          control: one weight per image and expert, no maps (MoCE-IR-style)
``wide``           control: no experts, backbone widened to the same parameter count
=================  ========================================================================

Every variant starts from the same base (the preset with the caller's changes: steps,
crop, batch size, ``--set``), so data, crops and budget are shared; ``wide`` starts from
the preset's capacity control ``NAME_wide`` with the same changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..config import ConfigError, TrainConfig, override, preset

__all__ = ["DEFAULT_VARIANTS", "PRESET_NAMES", "VARIANTS", "Variant", "variant_configs"]

#: The presets an ablation may start from.
PRESET_NAMES: tuple[str, ...] = ("tiny", "small", "paper")


@dataclass(frozen=True)
class Variant:
    """One rung of the ladder.

    Args:
        name: its key in every output.
        summary: what it is, in a line.
        overrides: ``key=value`` changes applied on the base config.
        wide: start from the preset's capacity control ``NAME_wide`` instead.
    """

    name: str
    summary: str
    overrides: tuple[str, ...]
    wide: bool = False


_FULL = ("model.experts=true", "model.routing=pixel")

#: Every variant, in ladder order (the controls last).
VARIANTS: dict[str, Variant] = {
    variant.name: variant
    for variant in (
        Variant(
            "fm",
            "deterministic flow matching, backbone alone",
            ("model.experts=false", "transport.b=0"),
        ),
        Variant("stochastic", "+ stochastic transport", ("model.experts=false",)),
        Variant("experts", "+ per-pixel experts, no time gate", (*_FULL, "model.gate=none")),
        Variant("gate", "+ time gate: the full model (the preset's gate)", _FULL),
        Variant("gate_sigmoid", "the full model, sigmoid gate", (*_FULL, "model.gate=sigmoid")),
        Variant("gate_softmax", "the full model, softmax gate", (*_FULL, "model.gate=softmax")),
        Variant(
            "image",
            "control: image-level routing, no maps",
            ("model.experts=true", "model.routing=image"),
        ),
        Variant("wide", "control: no experts, backbone widened to the same parameters", (), True),
    )
}

#: The ladder run when no variants are chosen: the top rung with each gate (``gate`` is
#: one of them, so it is left out), then the two controls.
DEFAULT_VARIANTS: tuple[str, ...] = (
    "fm",
    "stochastic",
    "experts",
    "gate_sigmoid",
    "gate_softmax",
    "image",
    "wide",
)


def variant_configs(
    config_name: str, changes: Sequence[str], names: Iterable[str] = DEFAULT_VARIANTS
) -> dict[str, TrainConfig]:
    """The training config of each named variant: the preset ``config_name``, then
    ``changes`` (``key=value``, as ``--set``), then the variant's overrides.

    Raises:
        ConfigError: an unknown preset, variant or key, a bad value, or two variants that
            are the same config here (``gate`` and ``gate_sigmoid`` under a sigmoid
            preset, ``stochastic`` and ``fm`` with ``transport.b=0``): one would be
            trained twice.
    """
    if config_name not in PRESET_NAMES:
        raise ConfigError(f"unknown config {config_name!r}; an ablation starts from {PRESET_NAMES}")
    chosen = list(dict.fromkeys(names))
    unknown = [name for name in chosen if name not in VARIANTS]
    if unknown or not chosen:
        what = f"unknown variant {unknown[0]!r}" if unknown else "no variant chosen"
        raise ConfigError(f"{what}; the variants are {', '.join(VARIANTS)}")
    bases = {
        False: override(preset(config_name), list(changes)),
        True: override(preset(f"{config_name}_wide"), list(changes)),
    }
    configs: dict[str, TrainConfig] = {}
    for name in chosen:
        variant = VARIANTS[name]
        try:
            config = override(bases[variant.wide], list(variant.overrides))
        except ConfigError as error:
            raise ConfigError(f"variant {name}: {error}") from error
        twin = next((other for other, seen in configs.items() if seen == config), None)
        if twin is not None:
            raise ConfigError(
                f"variants {twin} and {name} are the same config here; choose one of them"
            )
        configs[name] = config
    return configs
