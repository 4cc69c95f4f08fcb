"""Partial targets: a sample's clean photo degraded by the degradations it keeps.

A sample of tier ``T`` with recorded parameters ``P``, asked to remove ``R`` (a subset of
low, haze, rain, snow), keeps ``K = T - R``; its *partial target* is the clean photo
degraded by ``K`` alone with the same ``P``: an exact replay (``Composite.apply`` of the
tier ``K`` on the whole clean photo, then the sample's crop), so the rain that stays is the
very rain of the degraded image, only without the haze that was removed in front of it.
``K`` empty gives the clean photo; ``K = T`` the degraded image itself. The masks stay
those of the sample (the parser reports what is there, whatever is removed).

The network is told what to remove as a 4-vector ``remove`` (1: remove that degradation,
0: keep it). A degradation the photo does not have is neither kept nor removed: its bit
is random in training, so that the network learns to ignore it, and whatever the user
says at inference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from skyclear.degrade.names import DEGRADATIONS, TIERS
from torch import Tensor

_UNREAD_DISTANCE = 10.0  # metres; any value in Haze's bounds

__all__ = [
    "Removal",
    "keep_tier",
    "parse_removal",
    "partial_target",
    "record_params",
    "removal_vector",
]


def parse_removal(names: str) -> frozenset[str]:
    """``"rain,snow"`` as a set of degradations; ``ValueError`` naming the four."""
    chosen = [name.strip() for name in names.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(DEGRADATIONS))
    if unknown or not chosen:
        got = ", ".join(unknown) if unknown else "nothing"
        raise ValueError(
            f"unknown degradation {got}: name one or more of {', '.join(DEGRADATIONS)}, "
            "separated by commas"
        )
    return frozenset(chosen)


def removal_vector(remove: frozenset[str]) -> Tensor:
    """The ``(4,)`` float vector of ``remove`` (order low, haze, rain, snow)."""
    return torch.tensor([float(name in remove) for name in DEGRADATIONS])


def keep_tier(present: tuple[str, ...], remove: frozenset[str]) -> str | None:
    """The tier of the degradations of ``present`` not in ``remove`` (``None``: none)."""
    kept = [name for name in DEGRADATIONS if name in present and name not in remove]
    if not kept:
        return None
    tier = "_".join(kept)
    if tier not in TIERS:  # every subset of a CDD-11 tier is one; guard the contract
        raise ValueError(f"keeping {kept} of {present} gives no tier")
    return tier


def record_params(text: str | bytes) -> tuple[str, dict[str, dict[str, Tensor]], str]:
    """``(tier, params as (1,) tensors, depth_source)`` of a store's ``params`` row."""
    record = json.loads(text.decode() if isinstance(text, bytes) else str(text))
    params = {
        name: {key: torch.tensor([value]) for key, value in values.items()}
        for name, values in record["params"].items()
    }
    if "haze" in params and "distance" not in params["haze"]:
        # Stores made before the ground prior: their flat prior never read it (format.md).
        params["haze"]["distance"] = torch.tensor([_UNREAD_DISTANCE])
    return record["tier"], params, record.get("depth_source", "prior")


@dataclass(frozen=True)
class Removal:
    """What the targets of a dataset remove.

    Attributes:
        probability: training: the share of samples given a random proper subset of their
            degradations to remove (uniform over the non-empty proper subsets); the others
            remove everything. Absent degradations get random bits.
        remove: evaluation: remove exactly these (the others present are kept; the bits
            are the set's own, as a user gives them).
    """

    probability: float = 0.0
    remove: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability must lie in [0, 1], got {self.probability}")
        if self.remove is not None and not self.remove <= set(DEGRADATIONS):
            raise ValueError(f"remove must name degradations of {DEGRADATIONS}")

    def choose(self, present: tuple[str, ...]) -> tuple[frozenset[str], Tensor]:
        """The degradations of ``present`` to remove and the ``(4,)`` vector the network
        is given (torch's RNG: seeded per loader worker, as the crops are)."""
        if self.remove is not None:
            return self.remove & set(present), removal_vector(self.remove)
        removed = frozenset(present)
        if len(present) > 1 and float(torch.rand(())) < self.probability:
            mask = 1 + int(torch.randint(2 ** len(present) - 2, ()))  # a proper subset
            removed = frozenset(name for bit, name in enumerate(present) if mask >> bit & 1)
        bits = torch.randint(0, 2, (len(DEGRADATIONS),)).float()
        vector = torch.tensor([
            float(name in removed) if name in present else float(bits[index])
            for index, name in enumerate(DEGRADATIONS)
        ])  # fmt: skip
        return removed, vector


def partial_target(
    composite: Any,
    clean: Tensor,
    present: tuple[str, ...],
    removed: frozenset[str],
    params: dict[str, dict[str, Tensor]],
    depth: Tensor | None,
) -> NDArray[np.uint8] | None:
    """The whole ``(S, S, 3)`` uint8 partial target of a sample (see the module
    docstring), or ``None`` where it is the clean photo (everything removed)."""
    from skyclear.degrade.store.writer import to_uint8

    tier = keep_tier(present, removed)
    if tier is None:
        return None
    kept = {name: params[name] for name in DEGRADATIONS if name in tier.split("_")}
    with torch.no_grad():
        result = composite.apply(clean, tier, kept, depth)
    return np.asarray(to_uint8(result.image[0].permute(1, 2, 0)))
