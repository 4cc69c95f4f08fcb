"""A trained restorer as one ONNX file that runs without skyclear (onnxruntime or any
ONNX runtime).

The exported graph is the method's own deterministic sampler unrolled over its network
evaluations (one for ``f2d`` and ``fm``, two passes for ``darcot``, four steps for
``irflow``): ``restored = clamp(sample(degraded), 0, 1)`` for float32 ``(B, 3, H, W)``
images in [0, 1], at any batch size and image size (the network pads to its multiple and
crops back inside the graph). Samplers that draw noise (``irsde``, ``resflow``, ``f2d``
with more than one step) are refused: a graph cannot replay a seeded generator.

One difference from ``restore run``: a photo's image-level statistics (the parser's global
weights, the channel attentions' means) come from the whole image as given, where
``restore run`` takes them from a copy downscaled to 512 pixels a side for larger photos.
Up to 512 pixels the two agree to float precision.

TorchScript is not offered: ``torch.jit.script`` and ``torch.jit.trace`` are deprecated in
torch 2.13 (both warn, pointing to ``torch.export``), and a trace fixes the image size (the
padding to the network's multiple is computed from it). A strict ``torch.export`` program
is not offered either: its shape solver cannot prove the padding's arithmetic for every
size and refuses; the ONNX exporter, built on the same tracer, records the general graph,
and ``verify`` checks it on sizes that need padding and sizes that do not.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from .inference import Restorer

__all__ = [
    "FORMATS",
    "REFUSED",
    "ExportError",
    "OneShot",
    "Verification",
    "deployable",
    "export",
    "exported_steps",
    "verify",
]

FORMATS: tuple[str, ...] = ("onnx",)
#: Why a format users ask for is not written.
REFUSED: dict[str, str] = {
    "torchscript": "TorchScript is deprecated in torch 2.13 (torch.jit.script and "
    "torch.jit.trace warn and point to torch.export), and a trace would fix the image size; "
    "export onnx and run it with onnxruntime (docs/restore.md#export)",
}
#: The sizes a verification runs at (batch, height, width): odd sides, none a multiple of
#: the network's padding, and a batch of two.
VERIFY_SIZES: tuple[tuple[int, int, int], ...] = ((1, 61, 83), (2, 48, 40), (1, 97, 128))
#: The largest mean absolute difference a verification accepts, in [0, 1] units.
TOLERANCE = 1e-3
_EXAMPLE = (2, 3, 67, 91)  # traced at sides that need padding, so padding stays symbolic
_MAX_SIDE = 16384


class ExportError(ValueError):
    """The checkpoint cannot be exported as asked (the message says why)."""


class OneShot(nn.Module):
    """The restorer's network and deterministic sampler as one module of ``degraded``."""

    def __init__(self, restorer: Restorer, steps: int) -> None:
        super().__init__()
        self.model = restorer.model
        self.method = restorer.method
        self.steps = steps

    def forward(self, degraded: Tensor) -> Tensor:
        def predict(x_t: Tensor, t: Tensor, extra: Tensor | None) -> Tensor:
            if extra is None:
                return self.model(x_t, t, degraded)
            return self.model(x_t, t, degraded, aux=extra)

        return self.method.sample(predict, degraded, self.steps, None).clamp(0.0, 1.0)


@dataclass(frozen=True)
class Verification:
    """The exported file against the network in torch, on one input size."""

    shape: tuple[int, int, int, int]
    mean_error: float
    max_error: float

    @property
    def passed(self) -> bool:
        return self.mean_error <= TOLERANCE


def exported_steps(restorer: Restorer, steps: int | None = None) -> int:
    """The network evaluations an export unrolls; ``ExportError`` where the sampler draws
    noise with them."""
    count = restorer.method.steps_of(steps)
    if restorer.method.draws_noise(count):
        raise ExportError(
            f"the {restorer.method.name} sampler draws noise with {count} step(s); an exported "
            "graph cannot replay a seeded generator (export f2d or fm at 1 step, darcot at "
            "its 2 passes, or irflow)"
        )
    return count


def deployable(restorer: Restorer, steps: int | None = None) -> OneShot:
    """``OneShot`` of ``restorer`` in float32 on the CPU (see ``exported_steps``)."""
    count = exported_steps(restorer, steps)
    restorer.model.float().to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    restorer.model.to("cpu").eval()
    # float32 on the CPU, as the graph runs: the reference ``verify`` compares against too
    restorer.device, restorer.bf16, restorer.channels_last = torch.device("cpu"), False, False
    return OneShot(restorer, count).eval()


def export(restorer: Restorer, path: Path, fmt: str = "onnx", steps: int | None = None) -> None:
    """Write ``restorer`` to ``path`` as ``fmt`` (``onnx``), atomically: a failed export
    leaves no file."""
    if fmt in REFUSED:
        raise ExportError(REFUSED[fmt])
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; the formats are {', '.join(FORMATS)}")
    module = deployable(restorer, steps)
    example = torch.rand(*_EXAMPLE, generator=torch.Generator().manual_seed(0))
    smallest = max(8, restorer.config.model.multiple)  # reflect padding needs a side >= pad
    batch = torch.export.Dim("batch", min=1, max=1024)
    height = torch.export.Dim("height", min=smallest, max=_MAX_SIDE)
    width = torch.export.Dim("width", min=smallest, max=_MAX_SIDE)
    shapes = {"degraded": {0: batch, 2: height, 3: width}}
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with torch.no_grad(), _quiet():
            torch.onnx.export(
                module,
                (example,),
                str(temporary),
                dynamo=True,
                dynamic_shapes=shapes,
                input_names=["degraded"],
                output_names=["restored"],
                external_data=False,
            )
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def verify(restorer: Restorer, path: Path, steps: int | None = None) -> list[Verification]:
    """Run the exported file in onnxruntime against ``restorer`` itself (as ``restore run``
    applies it) on ``VERIFY_SIZES``; ``ImportError`` without onnxruntime."""
    import onnxruntime

    count = restorer.method.steps_of(steps)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(x: Tensor) -> Tensor:
        return torch.from_numpy(session.run(None, {"degraded": x.numpy()})[0])

    results = []
    generator = torch.Generator().manual_seed(1)
    for batch, height, width in VERIFY_SIZES:
        x = torch.rand(batch, 3, height, width, generator=generator)
        with torch.no_grad():
            expected, got = restorer(x, count)[0], run(x)
        difference = (got.float() - expected).abs()
        results.append(
            Verification(
                (batch, 3, height, width), float(difference.mean()), float(difference.max())
            )
        )
    return results


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter prints its progress and warns about its own internals; keep the
    command's output to what it says itself."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
