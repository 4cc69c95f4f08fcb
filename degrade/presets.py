"""Named sets of operator ranges: ``physical`` (the default) and ``cdd11``.

``physical`` is the operators' own defaults (docs/physics.md), in the physical order.

``cdd11`` reproduces the severity of CDD-11 as its public synthesis script defines it, in
skyclear's physical parameters where the physics differs (docs/physics.md, *Presets*, and
``benchmarks/severity.py``, which measures both presets against CDD-11's own formula on the
same photos). CDD-11: low light, rain, snow, then haze, each on the previous output, in
sRGB values; haze ``t = exp(-beta d)`` with beta in [1, 2] on a relative depth clipped at
0.7 (so ``t`` in [0.25, 1]) and a grey airlight in [0.6, 0.9]; low light as Retinex
re-exposure with gamma in [2, 3] plus Gaussian noise of sigma 0.03 to 0.08; rain an
additive streak layer of mean about 0.12; snow white alpha compositing. Here:

* the order is CDD-11's (``order="cdd11"``);
* haze: the ``uniform`` prior at 8 to 30 m with beta in [0.012, 0.025] 1/m gives optical
  depths 0.1 to 0.75 over the whole frame (linear-light scattering hazes more than
  CDD-11's sRGB blend at the same ``t``); the airlight grey in [0.6, 0.9] (sRGB, as
  CDD-11's);
* low light: exposures of 0.12 to 0.4 in linear light and read noise whose standard
  deviation is, in sRGB at the darkened levels, about CDD-11's 0.03 to 0.08;
* rain: denser, more opaque streaks than the ``physical`` defaults and a veil, so the
  layer's mean contribution is near CDD-11's;
* snow: bright flakes without a veil, as CDD-11's white compositing, at a lower opacity
  (linear-light compositing shows a flake's soft edge more than sRGB compositing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importable without torch: the operators are imported where made
    from .compose import Composite

__all__ = ["PRESETS", "preset", "preset_defaults"]

#: The presets' names (the first is the default), with their order and depth prior.
_DEFAULTS: dict[str, tuple[str, str]] = {
    "physical": ("physical", "ground"),
    "cdd11": ("cdd11", "uniform"),
}
PRESETS: tuple[str, ...] = tuple(_DEFAULTS)


def preset_defaults(name: str) -> tuple[str, str]:
    """The composition order and the depth prior of preset ``name``."""
    if name not in _DEFAULTS:
        raise ValueError(f"preset must be one of {PRESETS}, got {name!r}")
    return _DEFAULTS[name]


def preset(name: str, depth_prior: str | None = None, order: str | None = None) -> Composite:
    """The composite of preset ``name``; ``depth_prior`` and ``order`` override its own."""
    from .compose import Composite
    from .ops.haze import Haze
    from .ops.lowlight import LowLight
    from .ops.rain import Rain
    from .ops.snow import Snow

    own_order, own_prior = preset_defaults(name)
    prior, chosen = depth_prior or own_prior, order or own_order
    if name == "physical":
        return Composite(haze=Haze(prior=prior), order=chosen)  # type: ignore[arg-type]
    return Composite(
        low=LowLight(exposure=(0.12, 0.4), spread=(0.0, 0.3), shot=(1e-4, 2e-3),
                     read=(2e-4, 2e-3)),
        haze=Haze(beta=(0.012, 0.025), airlight=(0.6, 0.9), tint=(0.0, 0.0),
                  distance=(8.0, 30.0), prior=prior),
        rain=Rain(density=(2000.0, 4000.0), opacity=(0.4, 0.7), brightness=(0.85, 1.0),
                  veil=(0.02, 0.08)),
        snow=Snow(brightness=(0.95, 1.0), opacity=(0.35, 0.6), veil=(0.0, 0.0)),
        order=chosen,  # type: ignore[arg-type]
    )  # fmt: skip
