"""Depth for haze from a monocular depth model saved on disk (Hugging Face ``transformers``).

The model is one the user downloaded and saved (``save_pretrained``): a folder with its
``config.json``, its weights and its image processor's ``preprocessor_config.json``, loaded
with ``AutoModelForDepthEstimation`` and ``AutoImageProcessor`` from that folder alone
(``local_files_only``: skyclear never downloads). ``transformers`` is the optional extra
``skyclear[depth]``; this is the only module that imports it.

Models predict one of two things:

* **inverse** depth, relative (DPT, Depth Anything's relative models): larger is nearer, up
  to an unknown scale and shift. It is never used as depth. It becomes metres through a
  declared scene scale: within each photo the 2nd percentile of the prediction is taken as
  ``far`` metres and the 98th as ``near`` metres, and inverse depth is mapped linearly
  between ``1/far`` and ``1/near`` (clipped): ``1/d = 1/far + u (1/near - 1/far)``,
  ``u = (r - r_2) / (r_98 - r_2)``. The farthest part of the photo comes out ``far``, the
  nearest ``near``; a prediction without spread (no depth cue) is ``far`` everywhere.
  The scale is a declaration about the scene, not a measurement: relative models know
  the order of depths, not their metres.
* **metric** depth in metres (GLPN, ZoeDepth, Depth Anything's metric models): used as it
  is, floored at 1 cm.

Which one a model predicts is read from its config (``depth_estimation_type: metric``, or
a model type known to be metric) unless given (``kind="inverse"`` or ``"metric"``).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["DEPTH_KINDS", "DepthModel", "declared_kind", "inverse_to_metres"]

#: What a depth model predicts: relative inverse depth, or metres.
DEPTH_KINDS: tuple[str, ...] = ("inverse", "metric")
#: Model types whose published checkpoints predict metres.
_METRIC_TYPES = frozenset({"glpn", "zoedepth"})
#: Percentiles of the prediction taken as the farthest and the nearest depth.
_PERCENTILES = (2.0, 98.0)
_FLOOR_M = 0.01


def _check_scale(near: float, far: float) -> None:
    if not 0 < near < far:
        raise ValueError(f"the scene scale needs 0 < near < far metres, got {near}, {far}")


def inverse_to_metres(
    inverse: NDArray[np.floating], near: float, far: float
) -> NDArray[np.float32]:
    """Relative inverse depth ``(H, W)`` (larger is nearer) to metres in ``[near, far]``.

    The 2nd percentile maps to ``far``, the 98th to ``near``, linearly in inverse depth
    between them, clipped outside; a map without spread is ``far`` everywhere.
    """
    _check_scale(near, far)
    values = np.asarray(inverse, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("the depth model predicted non-finite values")
    low, high = np.percentile(values, _PERCENTILES)
    spread = high - low
    fraction = np.clip((values - low) / spread, 0.0, 1.0) if spread > 0 else np.zeros_like(values)
    return (1.0 / (1.0 / far + fraction * (1.0 / near - 1.0 / far))).astype(np.float32)


def declared_kind(config: Any) -> str:
    """``metric`` where a model's config says it predicts metres, else ``inverse``."""
    if getattr(config, "depth_estimation_type", None) == "metric":
        return "metric"
    return "metric" if getattr(config, "model_type", None) in _METRIC_TYPES else "inverse"


@dataclass(frozen=True)
class DepthModel:
    """A depth model in a local folder, and how its output becomes metres.

    Picklable (the model is loaded on first use, once per process): a worker process or a
    DataLoader worker loads its own copy.

    Args:
        path: folder saved with ``save_pretrained`` (model and image processor).
        kind: ``inverse`` or ``metric``; ``None`` reads it from the model's config.
        near: metres of the nearest part of a photo, for inverse depth.
        far: metres of the farthest part of a photo, for inverse depth.
    """

    path: str
    kind: str | None = None
    near: float = 2.0
    far: float = 150.0

    def __post_init__(self) -> None:
        if self.kind is not None and self.kind not in DEPTH_KINDS:
            raise ValueError(f"depth kind must be one of {DEPTH_KINDS}, got {self.kind!r}")
        _check_scale(self.near, self.far)
        if not Path(self.path).is_dir():
            raise ValueError(f"depth model {self.path}: not a folder")

    def _loaded(self) -> tuple[Any, Any, str]:
        cached = _LOADED.get(self)
        if cached is None:
            cached = _load(Path(self.path), self.kind)
            _LOADED[self] = cached
        return cached

    def check(self) -> None:
        """Load the model and its image processor now (``ValueError`` if they do not
        load), so that a bad folder stops a command before it writes anything."""
        self._loaded()

    @property
    def resolved_kind(self) -> str:
        """``inverse`` or ``metric``: given, or declared by the model."""
        return self.kind or declared_kind(_config(Path(self.path)))

    def describe(self) -> dict[str, Any]:
        """What a store records of the model (not its path)."""
        kind = self.resolved_kind
        record: dict[str, Any] = {"model_type": _config(Path(self.path)).model_type, "kind": kind}
        if kind == "inverse":
            record |= {"near": self.near, "far": self.far}
        return record

    def __call__(self, photo: NDArray[np.uint8]) -> NDArray[np.float32]:
        """Depth in metres ``(H, W)`` of an ``(H, W, 3)`` uint8 photo."""
        import torch

        model, processor, kind = self._loaded()
        if photo.ndim != 3 or photo.shape[-1] != 3 or photo.dtype != np.uint8:
            raise ValueError(f"a photo must be (H, W, 3) uint8, got {photo.shape} {photo.dtype}")
        inputs = processor(images=photo, return_tensors="pt")
        with torch.no_grad():
            outputs = model(**inputs)
        resized = _to_photo(processor, outputs, photo.shape[:2])
        if kind == "metric":
            if not np.isfinite(resized).all():
                raise ValueError(f"depth model {self.path} predicted non-finite depth")
            return np.maximum(resized, _FLOOR_M).astype(np.float32)
        return inverse_to_metres(resized, self.near, self.far)


_LOADED: dict[DepthModel, tuple[Any, Any, str]] = {}


def _to_photo(processor: Any, outputs: Any, size: tuple[int, int]) -> NDArray[np.float32]:
    """The prediction at the photo's ``size``, through the image processor's own
    post-processing where it has one (ZoeDepth's removes the padding it added before
    resizing; the others resize), else resized bilinearly."""
    import torch

    post = getattr(processor, "post_process_depth_estimation", None)
    if post is not None:
        extra = {}
        if "source_sizes" in inspect.signature(post).parameters:
            extra["source_sizes"] = [size]
        depth = post(outputs, target_sizes=[size], **extra)[0]["predicted_depth"]
        return np.asarray(depth.float().reshape(size).numpy(), dtype=np.float32)
    predicted = outputs.predicted_depth
    if predicted.ndim == 3:
        predicted = predicted[:, None]
    resized = torch.nn.functional.interpolate(
        predicted.float(), size=size, mode="bilinear", align_corners=False
    )
    return np.asarray(resized[0, 0].numpy(), dtype=np.float32)


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as error:
        raise ImportError(
            "a depth model needs Hugging Face transformers: pip install 'skyclear[depth]'"
        ) from error
    return transformers


def _config(path: Path) -> Any:
    try:
        return _transformers().AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as error:
        raise ValueError(f"depth model {path}: cannot read its config ({error})") from error


def _load(path: Path, kind: str | None) -> tuple[Any, Any, str]:
    transformers = _transformers()
    try:
        model = transformers.AutoModelForDepthEstimation.from_pretrained(
            path, local_files_only=True
        )
        processor = transformers.AutoImageProcessor.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"depth model {path}: cannot load a depth-estimation model and its image "
            f"processor ({error})"
        ) from error
    return model.eval(), processor, kind or declared_kind(model.config)
