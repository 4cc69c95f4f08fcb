"""Generator seeds derived from several integers, the same on every platform."""

from __future__ import annotations

import numpy as np

__all__ = ["entropy_seed"]


def entropy_seed(*entropy: int) -> int:
    """A 62-bit ``torch.Generator`` seed from non-negative integers (numpy ``SeedSequence``):
    distinct inputs give independent seeds, and no input order is ambiguous."""
    words = np.random.SeedSequence(list(entropy)).generate_state(2)
    return (int(words[0]) << 31) ^ int(words[1])
