"""Haze: the atmospheric scattering model.

``I = J t + A (1 - t)``, ``t = exp(-beta d)`` (Koschmieder 1924; McCartney 1976; the model
of RESIDE, Li et al. 2019), in linear light. ``d`` is depth in metres, ``beta`` the
extinction coefficient in 1/m (meteorological visibility ``3.912 / beta``), ``A`` the
airlight colour. Non-homogeneous haze modulates ``beta`` by ``exp(s f) / mean(exp(s f))``
with ``f`` unit-variance fractal noise, so the mean extinction stays ``beta``.

The mask is the haze opacity ``1 - t``.

Depth priors for photos without a depth map (approximations, declared as such):

* ``geometric_depth`` (``flat``): a camera level over flat ground; everything above the
  horizon row is ``far``. Its haze ends in a hard band at the horizon.
* ``uniform_depth`` (``uniform``): every pixel ``distance`` metres away: uniform haze,
  physical for a close-up (a cat, a cup) seen through a hazy room or street.
* ``ground_depth`` (``ground``): the flat-ground geometry with a soft horizon, kept only as
  far as the photo looks open (a smooth band at its top, such as sky) and drawn toward
  ``distance`` elsewhere, then made to follow the photo's own edges by a guided filter.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .fields import fractal_field

__all__ = [
    "extinction_field",
    "geometric_depth",
    "ground_depth",
    "haze",
    "openness",
    "scatter",
    "transmission",
    "uniform_depth",
]

_LOG2_E = 1.0 / math.log(2.0)
_DENSITY_CELLS = 4
_STREAM_DENSITY = 21
#: Width of the ground prior's soft horizon, as a fraction of the height.
_SOFTNESS = 0.08
#: The ground prior reads the photo at this side (area-downscaled), its guided filter too.
_COARSE_SIDE = 64
#: Radius of the guided filter's window at that side, and its regulariser (the guide has
#: unit variance): a window whose guide varies less than this keeps the prior's depth.
_GUIDE_RADIUS = 4
_GUIDE_EPS = 0.05
#: Top band read for openness (fraction of the height), and the ratio of its mean local
#: contrast to the photo's at which a photo counts as fully open and as closed.
_TOP_BAND = 0.3
_OPEN_RATIO = (0.35, 0.7)


def transmission(beta: Tensor, depth: Tensor) -> Tensor:
    """``t = exp(-beta d)``; ``beta`` is ``(B,)`` or ``(B, 1, H, W)``, depth ``(B, 1, H, W)``."""
    if beta.ndim == 1:
        beta = beta.to(device=depth.device, dtype=depth.dtype).view(-1, 1, 1, 1)
    # exp(-s) as exp2(-s log2 e): exp2 costs a third of exp on a CPU.
    return torch.mul(beta, depth).mul_(-_LOG2_E).exp2_()


def scatter(x: Tensor, t: Tensor, airlight: Tensor) -> Tensor:
    """``J t + A (1 - t)`` for linear ``x`` (B, 3, H, W), ``t`` (B, 1, H, W), ``A`` (B, 3)."""
    light = airlight.to(device=x.device, dtype=x.dtype).view(-1, 3, 1, 1)
    if torch.is_grad_enabled() and (x.requires_grad or t.requires_grad or light.requires_grad):
        return light + (x - light) * t
    return torch.sub(x, light).mul_(t).add_(light)  # one image-sized tensor, not three


def extinction_field(
    beta: Tensor, nonuniformity: Tensor, seed: Tensor, size: tuple[int, int], dtype: torch.dtype
) -> Tensor:
    """Per-pixel extinction ``beta * exp(s f) / mean(exp(s f))``, shape ``(B, 1, H, W)``."""
    field = fractal_field(seed, size, _DENSITY_CELLS, _STREAM_DENSITY, dtype)
    strength = nonuniformity.to(device=field.device, dtype=dtype).view(-1, 1, 1, 1)
    log_density = field * strength
    log_density = log_density - log_density.amax(dim=(-2, -1), keepdim=True)
    density = log_density.mul_(_LOG2_E).exp2_()
    density = density / density.mean(dim=(-2, -1), keepdim=True)
    return density * beta.to(device=field.device, dtype=dtype).view(-1, 1, 1, 1)


def geometric_depth(
    horizon: Tensor,
    near: Tensor,
    far: Tensor,
    size: tuple[int, int],
    dtype: torch.dtype,
    device: torch.device,
) -> Tensor:
    """A flat-ground depth prior for photos without a depth map (an approximation).

    A camera looking level over flat ground sees the ground at image row ``v`` (0 at the
    top, 1 at the bottom) at depth ``d = near * (1 - h) / (v - h)`` below the horizon row
    ``h`` (the bottom row is ``near`` metres away); the horizon and everything above it
    (sky, or whatever stands there) is at ``far``. Depth is clipped to ``[near, far]``.
    It knows nothing of the scene's objects: a close subject gets the ground's depth.

    Args:
        horizon: ``(B,)`` horizon row as a fraction of the height.
        near: ``(B,)`` depth of the bottom row, metres.
        far: ``(B,)`` depth of the horizon and above, metres.
        size: ``(H, W)``.
    """
    height, width = size
    rows = (torch.arange(height, dtype=dtype, device=device) + 0.5) / height
    h = horizon.to(device=device, dtype=dtype).view(-1, 1)
    near_m = near.to(device=device, dtype=dtype).view(-1, 1)
    far_m = far.to(device=device, dtype=dtype).view(-1, 1)
    below = (rows.view(1, -1) - h).clamp_min(1e-6)
    depth = torch.minimum(near_m * (1.0 - h) / below, far_m).clamp_min(near_m)
    return depth.view(-1, 1, height, 1).expand(-1, 1, height, width)


def uniform_depth(
    distance: Tensor, size: tuple[int, int], dtype: torch.dtype, device: torch.device
) -> Tensor:
    """Every pixel ``distance`` ``(B,)`` metres away: ``(B, 1, H, W)``."""
    value = distance.to(device=device, dtype=dtype).view(-1, 1, 1, 1)
    return value.expand(-1, 1, *size)


def _luminance(image: Tensor) -> Tensor:
    """The square root of the linear luminance, ``(B, 1, H, W)``: close to how bright a
    pixel looks, so that contrast in shadows counts as it does in highlights."""
    weights = image.new_tensor([0.2126, 0.7152, 0.0722]).view(1, 3, 1, 1)
    return (image * weights).sum(1, keepdim=True).clamp_min(0.0).sqrt()


def _coarse(image: Tensor) -> Tensor:
    """``image`` area-downscaled so that its longer side is at most ``_COARSE_SIDE``."""
    height, width = image.shape[-2:]
    scale = _COARSE_SIDE / max(height, width)
    if scale >= 1.0:
        return image
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return torch.nn.functional.interpolate(image, size=size, mode="area")


def openness(image: Tensor) -> Tensor:
    """How open a scene looks, ``(B,)`` in [0, 1], from a linear image ``(B, 3, H, W)``.

    Open scenes (a landscape, a street under the sky) have a smooth top: sky, or distant
    haze. The statistic is the mean local contrast (absolute differences of neighbouring
    pixels of the luminance's square root, at ``_COARSE_SIDE`` pixels a side) of the top
    ``_TOP_BAND`` of the photo over that of the whole photo: at most ``_OPEN_RATIO[0]``
    the photo is fully open (1), at least ``_OPEN_RATIO[1]`` closed (0), linear between.
    A close-up's top is as detailed as the rest (the sample photos: cat 0.93, cup 0.90,
    astronaut 0.86, garage 1.14; the rocket at dusk 0.29).
    """
    return _openness(_coarse(_luminance(image)))


def _openness(lum: Tensor) -> Tensor:
    """``openness`` of the coarse luminance ``lum`` ``(B, 1, h, w)``."""
    rows = lum.shape[-2]
    dy = torch.nn.functional.pad((lum[..., 1:, :] - lum[..., :-1, :]).abs(), (0, 0, 0, 1))
    dx = torch.nn.functional.pad((lum[..., :, 1:] - lum[..., :, :-1]).abs(), (0, 1, 0, 0))
    contrast = dy + dx
    top = contrast[..., : max(1, round(rows * _TOP_BAND)), :].mean(dim=(1, 2, 3))
    ratio = top / contrast.mean(dim=(1, 2, 3)).clamp_min(1e-6)
    low, high = _OPEN_RATIO
    return ((high - ratio) / (high - low)).clamp(0.0, 1.0)


def _box(x: Tensor, radius: int) -> Tensor:
    """Mean over the ``2 radius + 1`` square window (the part inside the image)."""
    side = 2 * radius + 1
    return torch.nn.functional.avg_pool2d(x, side, 1, radius, count_include_pad=False)


def _linear_fit(guide: Tensor, source: Tensor, radius: int, eps: float) -> tuple[Tensor, Tensor]:
    """The guided filter's smoothed coefficients (He, Sun and Tang 2013): ``source`` made
    locally linear in ``guide``, ``q = a guide + b`` in each window with
    ``a = cov(guide, source) / (var(guide) + eps)``, so the output's edges follow the
    guide's and a window where the guide is flat keeps the source's mean."""
    mean_guide, mean_source = _box(guide, radius), _box(source, radius)
    covariance = _box(guide * source, radius) - mean_guide * mean_source
    variance = _box(guide.square(), radius) - mean_guide.square()
    a = covariance / (variance + eps)
    b = mean_source - a * mean_guide
    return _box(a, radius), _box(b, radius)


def _upsampled(a: Tensor, b: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """``a`` and ``b`` ``(B, 1, h, w)`` upsampled bilinearly to ``size``, in one call."""
    both = torch.nn.functional.interpolate(
        torch.cat([a, b], 1), size=size, mode="bilinear", align_corners=False
    )
    return both[:, :1], both[:, 1:]


def ground_depth(
    image: Tensor, horizon: Tensor, near: Tensor, far: Tensor, distance: Tensor
) -> Tensor:
    """The ``ground`` depth prior of a linear image ``(B, 3, H, W)``, ``(B, 1, H, W)`` metres.

    In inverse depth, flat ground is a ramp: ``1/d = (v - h) / (near (1 - h))`` below the
    horizon row ``h`` (``v`` the row, 0 at the top, 1 at the bottom), ``1/far`` above it.
    The ramp's corner is rounded over ``_SOFTNESS`` of the height (a softplus), so haze
    thickens smoothly toward the horizon instead of stopping at a row. That geometry is
    kept as far as the photo is open (``openness``) and replaced by ``distance`` metres as
    far as it is closed (blended in inverse depth), and the result follows the photo's
    own edges (a guided filter, fast form of He and Sun 2015: fitted at ``_COARSE_SIDE``
    pixels a side, applied to the full-resolution guide, the luminance's square root
    normalised per photo). Depth is kept within the range of the depths blended.

    The prior depends only on rows before the filter, so the filter's source is made at
    the coarse side directly, and the guide's normalisation is folded into ``a`` and ``b``:
    at full resolution only the luminance, one upsampling and one multiply-add are done.
    """
    height, width = image.shape[-2:]
    dtype, device = image.dtype, image.device

    def column(value: Tensor) -> Tensor:
        return value.to(device=device, dtype=dtype).view(-1, 1, 1, 1)

    h, near_m, far_m, distance_m = (column(v) for v in (horizon, near, far, distance))
    lum = _luminance(image)
    coarse = _coarse(lum)
    rows = ((torch.arange(height, dtype=dtype, device=device) + 0.5) / height).view(1, 1, -1, 1)
    ramp = torch.nn.functional.softplus((rows - h) / _SOFTNESS) * _SOFTNESS
    open_ = column(_openness(coarse))
    profile = open_ * (1.0 / far_m + ramp / (near_m * (1.0 - h))) + (1.0 - open_) / distance_m
    small = torch.nn.functional.interpolate(profile, size=(coarse.shape[-2], 1), mode="area")
    mean = coarse.mean(dim=(2, 3), keepdim=True)
    spread = coarse.std(dim=(2, 3), keepdim=True, correction=0).clamp_min(1e-3)
    a, b = _linear_fit((coarse - mean) / spread, small.expand_as(coarse), _GUIDE_RADIUS,
                       _GUIDE_EPS)  # fmt: skip
    a = a / spread  # q = a (g - mean) / spread + b = (a / spread) g + (b - a mean / spread)
    a, b = _upsampled(a, b - a * mean, (height, width))
    lowest = torch.minimum(1.0 / far_m, 1.0 / distance_m)
    highest = torch.maximum(profile.amax(dim=(2, 3), keepdim=True), 1.0 / distance_m)
    return torch.addcmul(b, a, lum).clamp_(lowest, highest).reciprocal_()


def haze(
    x: Tensor,
    depth: Tensor,
    beta: Tensor,
    airlight: Tensor,
    nonuniformity: Tensor,
    seed: Tensor,
) -> tuple[Tensor, Tensor]:
    """Haze a linear image ``x`` ``(B, 3, H, W)`` seen at ``depth`` ``(B, 1, H, W)`` metres.

    Args:
        beta: ``(B,)`` mean extinction coefficient, 1/m.
        airlight: ``(B, 3)`` airlight in linear light.
        nonuniformity: ``(B,)`` strength of the spatial variation of ``beta`` (0 = uniform).
        seed: ``(B,)`` seeds of that variation.

    Returns:
        ``(image, mask)`` with ``mask = 1 - t`` of shape ``(B, 1, H, W)``.
    """
    if bool((nonuniformity == 0).all()):
        t = transmission(beta, depth)  # homogeneous: skip the noise field entirely
    else:
        size = (x.shape[-2], x.shape[-1])
        t = transmission(extinction_field(beta, nonuniformity, seed, size, x.dtype), depth)
    image = scatter(x, t, airlight)
    if torch.is_grad_enabled() and (t.requires_grad or image.requires_grad):
        return image, 1.0 - t
    return image, t.neg_().add_(1.0)  # ``t`` is this call's own, and no longer needed
