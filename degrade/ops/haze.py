"""``Haze``: the operator class over ``functional.haze``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor

from .._validate import check_map
from ..color import srgb_to_linear
from ..functional.haze import geometric_depth, ground_depth, haze, uniform_depth
from ..names import DEPTH_PRIORS
from .base import Operator, Params, Range, _Draws

__all__ = ["Haze"]


@dataclass(frozen=True)
class Haze(Operator):
    """Haze by atmospheric scattering, ``I = J t + A (1 - t)``, ``t = exp(-beta d)``.

    Context: ``depth``, a ``(B, 1, H, W)`` (or ``(1, 1, H, W)``) tensor in metres. Without
    it, depth comes from the ``prior`` (an approximation, see ``functional.haze``):
    ``ground`` (default) a flat-ground geometry with a soft horizon where the photo looks
    open and ``distance`` elsewhere, following the photo's edges; ``uniform`` every pixel
    at ``distance``; ``flat`` the flat-ground geometry alone, with its hard horizon (as
    stores made before the ground prior were).

    Args:
        beta: extinction coefficient, 1/m (visibility 3.912 / beta); 0 turns haze off.
        airlight: grey level of the airlight, sRGB.
        tint: per-channel offset added to the airlight grey, sRGB.
        nonuniformity: strength of the spatial variation of beta (0 = homogeneous).
        horizon: horizon row of the depth prior, fraction of the height from the top.
        near: depth of the bottom row in the depth prior, metres.
        far: depth of the horizon and the sky in the depth prior, metres.
        distance: depth of a closed scene in the ``ground`` prior and of every pixel in
            the ``uniform`` one, metres.
        prior: the depth prior used without a depth map: ``ground``, ``uniform``, ``flat``.

    Example:
        >>> depth = torch.full((1, 1, 32, 32), 10.0)
        >>> out = Haze(beta=(0.1, 0.1))(torch.rand(1, 3, 32, 32), depth=depth)
        >>> round(float(out.mask.mean()), 4)  # 1 - exp(-0.1 * 10)
        0.6321
    """

    beta: Range = (0.04, 0.2)
    airlight: Range = (0.8, 1.0)
    tint: Range = (-0.02, 0.02)
    nonuniformity: Range = (0.0, 0.0)
    horizon: Range = (0.35, 0.5)
    near: Range = (2.0, 4.0)
    far: Range = (60.0, 150.0)
    distance: Range = (4.0, 12.0)
    prior: str = "ground"

    name: ClassVar[str] = "haze"
    param_names: ClassVar[tuple[str, ...]] = (
        "beta",
        "airlight",
        "nonuniformity",
        "horizon",
        "near",
        "far",
        "distance",
        "seed",
    )
    _BOUNDS: ClassVar[dict[str, tuple[float, float]]] = {
        "beta": (0.0, 100.0),
        "airlight": (0.0, 1.0),
        "tint": (-0.5, 0.5),
        "nonuniformity": (0.0, 3.0),
        "horizon": (0.0, 0.95),
        "near": (0.01, 1e5),
        "far": (0.01, 1e5),
        "distance": (0.01, 1e5),
    }
    _CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {"prior": DEPTH_PRIORS}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.near[1] > self.far[0]:
            raise ValueError(f"Haze.near {self.near} must lie below Haze.far {self.far}")

    def _draw(self, draw: _Draws) -> Params:
        grey = draw.uniform(self.airlight).view(-1, 1)
        airlight = (grey + draw.uniform(self.tint, 3)).clamp(0.0, 1.0)
        return {
            "beta": draw.uniform(self.beta),
            "airlight": airlight,
            "nonuniformity": draw.uniform(self.nonuniformity),
            "horizon": draw.uniform(self.horizon),
            "near": draw.uniform(self.near),
            "far": draw.uniform(self.far),
            "distance": draw.uniform(self.distance),
        }

    def depth_for(self, x: Tensor, params: Params, depth: Tensor | None) -> Tensor:
        """The depth the call uses: the caller's (checked) or the prior's, ``(B, 1, H, W)``.
        The ``ground`` prior reads the linear image ``x``: give it the clean photo."""
        if depth is not None:
            return check_map(depth, x, "depth")
        size = (x.shape[-2], x.shape[-1])
        if self.prior == "uniform":
            return uniform_depth(params["distance"], size, x.dtype, x.device)
        if self.prior == "flat":
            return geometric_depth(
                params["horizon"], params["near"], params["far"], size, x.dtype, x.device
            )
        return ground_depth(x, params["horizon"], params["near"], params["far"],
                            params["distance"])  # fmt: skip

    def apply_linear(
        self, x: Tensor, params: Params, depth: Tensor | None = None, **context: Any
    ) -> tuple[Tensor, Tensor]:
        if context:
            raise TypeError(f"Haze takes only the context 'depth', got {sorted(context)}")
        airlight = srgb_to_linear(params["airlight"].to(device=x.device, dtype=x.dtype))
        return haze(
            x,
            self.depth_for(x, params, depth),
            params["beta"],
            airlight,
            params["nonuniformity"],
            params["seed"],
        )
