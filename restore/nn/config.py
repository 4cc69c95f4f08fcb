"""Model configurations: frozen dataclasses, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["CONFIGS", "ModelConfig"]


@dataclass(frozen=True)
class ModelConfig:
    """The factorised restorer's shape.

    Args:
        width: channels of the backbone's first level (doubled at each level down).
        encoder_blocks: NAF blocks per encoder level (one level per entry).
        middle_blocks: NAF blocks at the bottom.
        decoder_blocks: NAF blocks per decoder level (as many as encoder levels).
        expert_width: hidden channels of each of the four expert branches.
        parser_width: channels of the degradation parser (kept under 0.5 M parameters).
        time_dim: size of the time embedding.
        factorized: four experts gated by the parser's maps; False: the shared backbone
            alone, widened so the parameter count stays about the same (ablation).
        time_gate: the experts' gate depends on time and the parser's global weights;
            False: the gate is the global weights alone (ablation).
    """

    width: int = 16
    encoder_blocks: tuple[int, ...] = (1, 1)
    middle_blocks: int = 1
    decoder_blocks: tuple[int, ...] = (1, 1)
    expert_width: int = 8
    parser_width: int = 16
    time_dim: int = 32
    factorized: bool = True
    time_gate: bool = True

    def __post_init__(self) -> None:
        if self.width < 4 or self.width % 2:
            raise ValueError(f"width must be an even number >= 4, got {self.width}")
        if len(self.encoder_blocks) != len(self.decoder_blocks) or not self.encoder_blocks:
            raise ValueError("encoder_blocks and decoder_blocks need the same, non-zero length")
        counts = (*self.encoder_blocks, *self.decoder_blocks, self.middle_blocks)
        if min(counts) < 0 or self.expert_width < 1:
            raise ValueError("block counts must be >= 0 and expert_width >= 1")
        if self.parser_width < 4 or self.time_dim < 8 or self.time_dim % 2:
            raise ValueError("parser_width must be >= 4 and time_dim an even number >= 8")

    @property
    def multiple(self) -> int:
        """Input sides are padded to a multiple of this."""
        return 2 ** len(self.encoder_blocks)

    def ablate(self, factorized: bool | None = None, time_gate: bool | None = None) -> ModelConfig:
        """A copy with ablation switches changed (``None`` keeps a switch as it is)."""
        return replace(
            self,
            factorized=self.factorized if factorized is None else factorized,
            time_gate=self.time_gate if time_gate is None else time_gate,
        )


CONFIGS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(),
    "small": ModelConfig(
        width=24,
        encoder_blocks=(1, 1, 2),
        middle_blocks=2,
        decoder_blocks=(1, 1, 1),
        expert_width=12,
        parser_width=24,
        time_dim=64,
    ),
    "paper": ModelConfig(
        width=32,
        encoder_blocks=(2, 2, 4, 8),
        middle_blocks=8,
        decoder_blocks=(2, 2, 2, 2),
        expert_width=16,
        parser_width=32,
        time_dim=128,
    ),
}
