"""Model configurations: frozen dataclasses, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["CONFIGS", "GATES", "ROUTINGS", "ModelConfig"]


ROUTINGS = ("pixel", "image")
GATES = ("softmax", "sigmoid", "none")


@dataclass(frozen=True)
class ModelConfig:
    """The factorised restorer's shape and its ablation switches.

    Args:
        width: channels of the backbone's first level (doubled at each level down).
        encoder_blocks: NAF blocks per encoder level (one level per entry).
        middle_blocks: NAF blocks at the bottom.
        decoder_blocks: NAF blocks per decoder level (as many as encoder levels).
        expert_width: hidden channels of each expert's full-resolution branch.
        expert_context: hidden channels of each expert's context branch on the backbone's
            bottleneck (0: none).
        parser_width: channels of the degradation parser (kept under 0.5 M parameters).
        time_dim: size of the time embedding.
        experts: four experts gated by the parser; False: the shared backbone alone.
        routing: ``pixel`` (each expert weighted per pixel by its parser map, the maps
            supervised by the masks) or ``image`` (one weight per image and expert, no
            maps: MoCE-IR-style routing).
        gate: how the parser's profile and the time allocate the experts: ``softmax``
            across the active experts, ``sigmoid`` per expert (unnormalised), or ``none``
            (the global weights alone, no time).
        widen: with ``experts`` False, widen the backbone to the parameter count of the
            model with experts (the capacity control).
        aux_channels: channels of an auxiliary input (ResFlow's ``y``) that a
            zero-initialised adapter adds to the state ``x_t``; 0: none.
        residual_condition: the auxiliary input, optional, is a transport residual
            (DA-RCOT's second pass), encoded at every scale of the backbone
            (``embedding.ResidualEmbedder``); without it the network runs unconditioned.
        removal: the network is told which degradations to remove (``remove``, a
            ``(B, 4)`` 0/1 vector; ``datasets.partial``): it enters the time embedding (the
            backbone's and every expert's conditioning) through a zero-initialised linear
            map, and multiplies the gate, so an expert of a kept degradation does not act.
            Needs the experts.
    """

    width: int = 16
    encoder_blocks: tuple[int, ...] = (1, 1)
    middle_blocks: int = 1
    decoder_blocks: tuple[int, ...] = (1, 1)
    expert_width: int = 6
    expert_context: int = 16
    parser_width: int = 16
    time_dim: int = 32
    experts: bool = True
    routing: str = "pixel"
    gate: str = "sigmoid"
    widen: bool = False
    aux_channels: int = 0
    residual_condition: bool = False
    removal: bool = False

    def __post_init__(self) -> None:
        if self.width < 4 or self.width % 2:
            raise ValueError(f"width must be an even number >= 4, got {self.width}")
        if len(self.encoder_blocks) != len(self.decoder_blocks) or not self.encoder_blocks:
            raise ValueError("encoder_blocks and decoder_blocks need the same, non-zero length")
        counts = (*self.encoder_blocks, *self.decoder_blocks, self.middle_blocks)
        if min(counts) < 0 or self.expert_width < 1 or self.expert_context < 0:
            raise ValueError("block counts and expert_context must be >= 0 and expert_width >= 1")
        if self.parser_width < 4 or self.time_dim < 8 or self.time_dim % 2:
            raise ValueError("parser_width must be >= 4 and time_dim an even number >= 8")
        if self.routing not in ROUTINGS:
            raise ValueError(f"routing must be one of {ROUTINGS}, got {self.routing!r}")
        if self.gate not in GATES:
            raise ValueError(f"gate must be one of {GATES}, got {self.gate!r}")
        if self.widen and self.experts:
            raise ValueError("widen is the capacity control of a model without experts")
        if self.aux_channels < 0:
            raise ValueError(f"aux_channels must be >= 0, got {self.aux_channels}")
        if self.residual_condition and self.aux_channels:
            raise ValueError("residual_condition and aux_channels are two methods' inputs")
        if self.removal and not self.experts:
            raise ValueError("removal gates the experts: it needs experts")

    @property
    def multiple(self) -> int:
        """Input sides are padded to a multiple of this."""
        return 2 ** len(self.encoder_blocks)

    @property
    def bottleneck(self) -> int:
        """Channels of the backbone's bottleneck."""
        return self.width * 2 ** len(self.encoder_blocks)

    def ablate(self, **switches: object) -> ModelConfig:
        """A copy with some fields changed, e.g. ``ablate(experts=False, widen=True)``."""
        return replace(self, **switches)  # type: ignore[arg-type]


_BASE: dict[str, ModelConfig] = {
    "tiny": ModelConfig(),
    "small": ModelConfig(
        width=24,
        encoder_blocks=(1, 1, 2),
        middle_blocks=2,
        decoder_blocks=(1, 1, 1),
        expert_width=8,
        expert_context=48,
        parser_width=24,
        time_dim=64,
    ),
    "paper": ModelConfig(
        width=32,
        encoder_blocks=(2, 2, 4, 8),
        middle_blocks=8,
        decoder_blocks=(2, 2, 2, 2),
        expert_width=16,
        expert_context=192,
        parser_width=32,
        time_dim=128,
    ),
}

#: The presets, and for each its capacity control ``NAME_wide``: no experts, the backbone
#: widened to the same parameter count.
CONFIGS: dict[str, ModelConfig] = {
    **_BASE,
    **{f"{name}_wide": config.ablate(experts=False, widen=True) for name, config in _BASE.items()},
}
