"""The one list of operators every contract test runs over, with their 'off' settings."""

from __future__ import annotations

from skyclear.degrade import Haze, LowLight, Operator, Rain, Snow

# Dense settings so that every effect shows up even on small test images.
OPERATORS: dict[str, Operator] = {
    "low": LowLight(),
    "haze": Haze(),
    "rain": Rain(density=(4000.0, 6000.0)),
    "snow": Snow(density=(3000.0, 5000.0)),
}

ZERO: dict[str, Operator] = {
    "low": LowLight(exposure=(1, 1), spread=(0, 0), shot=(0, 0), read=(0, 0), bits=(0, 0)),
    "haze": Haze(beta=(0, 0)),
    "rain": Rain(density=(0, 0), veil=(0, 0)),
    "snow": Snow(density=(0, 0), veil=(0, 0)),
}

NAMES = list(OPERATORS)
