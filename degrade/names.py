"""The names the rest of skyclear shares, importable without torch."""

from __future__ import annotations

__all__ = ["DEGRADATIONS", "DEPTH_PRIORS", "ORDERS", "TIERS"]

#: The four degradations, in the fixed order of every mask stack.
DEGRADATIONS: tuple[str, ...] = ("low", "haze", "rain", "snow")

#: The 11 CDD-11 tiers, with CDD-11's names, in CDD-11's order.
TIERS: tuple[str, ...] = (
    "low",
    "haze",
    "rain",
    "snow",
    "low_haze",
    "low_rain",
    "low_snow",
    "haze_rain",
    "haze_snow",
    "low_haze_rain",
    "low_haze_snow",
)

#: Composition orders: ``physical`` (default) and CDD-11's original ``cdd11``.
ORDERS: tuple[str, ...] = ("physical", "cdd11")

#: Haze depth priors for photos without depth (see ``functional.haze``); the first is
#: the default.
DEPTH_PRIORS: tuple[str, ...] = ("ground", "uniform", "flat")
