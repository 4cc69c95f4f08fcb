"""Training configuration: frozen dataclasses, validated on construction.

YAML is only their saved form. ``load_config`` reads it strictly (an unknown or mistyped
key raises ``ConfigError`` naming it) and ``override`` applies ``a.b=value`` strings whose
values are parsed as YAML literals (numbers, booleans, ``null``, lists), never executed.

Example:
    >>> config = override(preset("tiny"), ["optim.lr=5e-4", "data.crop=96"])
    >>> save_config(config, "runs/a/config.yaml")
    >>> assert load_config("runs/a/config.yaml") == config
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml
from skyclear.degrade.names import TIERS

from .losses import LossWeights
from .nn.config import CONFIGS, ModelConfig
from .transport import PowerSchedule
from .transport.methods import F2D, METHODS, FlowMatching, Method, method_named

__all__ = [
    "PRESETS",
    "ConfigError",
    "DataConfig",
    "OptimConfig",
    "TrainConfig",
    "TransportConfig",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "method_of",
    "override",
    "preset",
    "save_config",
]


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the key."""


class _Loader(yaml.SafeLoader):
    """YAML with the 1.2 core schema's scalars: only ``true``/``false`` are booleans (so
    ``amp: off`` stays a string) and ``1e-3`` is a float, as a person means them."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)$"),
    list("-+0123456789."),
)


def _parse(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


@dataclass(frozen=True)
class TransportConfig:
    """The transport's ``PowerSchedule`` (``b = 0`` is deterministic flow matching).

    Args:
        a: drift strength of the schedule.
        b: noise strength of the schedule (``0 <= b < 2a``).
        t0_fraction: share of training samples drawn at ``t = 0``, the time of one-step
            inference; the rest are uniform on [0, 1) and train the multi-step path.
    """

    a: float = 1.0
    b: float = 0.5
    t0_fraction: float = 0.25

    def __post_init__(self) -> None:
        self.schedule()  # the schedule validates a and b
        if not 0 <= self.t0_fraction <= 1:
            raise ConfigError(f"transport.t0_fraction must lie in [0, 1], got {self.t0_fraction}")

    def schedule(self) -> PowerSchedule:
        return PowerSchedule(a=self.a, b=self.b)


#: Where training samples are degraded (``DataConfig.synthesis``).
SYNTHESIS = ("loader", "device")


@dataclass(frozen=True)
class DataConfig:
    """How training batches are drawn.

    Args:
        batch_size: samples per optimizer step, over all processes together (it must be
            divisible by the number of processes).
        crop: side of the random square crop of each training sample.
        workers: DataLoader worker processes per training process (one thread each).
        tiers: train on these tiers only (``None``: every tier in the data).
        val_samples: test-split samples scored at each validation (a fixed random choice).
        val_crop: centre crop of the validation samples (``None``: full images).
        grid_samples: samples drawn in the validation image grid.
        unpaired: train without pairs: degraded and clean images from disjoint photos
            (``datasets.Unpaired``); only for a method that learns so (``darcot``).
        partial: the share of training samples given a random proper subset of their
            degradations to remove, their target the clean photo degraded by the rest
            (``datasets.partial``); needs ``model.removal`` and a store's parameters.
        synthesis: where a folder of clean photos is degraded: ``loader`` (each sample in
            a DataLoader worker, as ``datasets.OnlineSynthesis``) or ``device`` (the
            workers load clean crops only, and each batch is degraded at once on the
            training device inside the step, ``datasets.degrade_batch``).
    """

    batch_size: int = 8
    crop: int = 128
    workers: int = 2
    tiers: tuple[str, ...] | None = None
    val_samples: int = 44
    val_crop: int | None = None
    grid_samples: int = 4
    unpaired: bool = False
    partial: float = 0.0
    synthesis: str = "loader"

    def __post_init__(self) -> None:
        _positive(self, "batch_size", "crop", "val_samples")
        if self.synthesis not in SYNTHESIS:
            raise ConfigError(
                f"data.synthesis must be one of {', '.join(SYNTHESIS)}, got {self.synthesis!r}"
            )
        if not 0.0 <= self.partial <= 1.0:
            raise ConfigError(f"data.partial must lie in [0, 1], got {self.partial}")
        if self.workers < 0 or self.grid_samples < 0:
            raise ConfigError("data.workers and data.grid_samples must be >= 0")
        if self.val_crop is not None and self.val_crop < 1:
            raise ConfigError(f"data.val_crop must be >= 1 or null, got {self.val_crop}")
        if self.tiers is not None:
            unknown = [tier for tier in self.tiers if tier not in TIERS]
            if unknown or not self.tiers:
                raise ConfigError(f"data.tiers must be a non-empty subset of {TIERS}")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warm-up and cosine decay, gradient clipping and EMA weights.

    Args:
        lr: peak learning rate.
        min_lr: learning rate at the end of the cosine.
        warmup_steps: steps of linear warm-up from zero.
        weight_decay: AdamW's decoupled weight decay.
        betas: AdamW's moment decay rates.
        grad_clip: clip the global gradient norm to this (0: no clipping).
        ema_decay: decay of the exponential moving average of the weights.
        max_bad_steps: stop after this many consecutive steps with a non-finite gradient.
    """

    lr: float = 1e-3
    min_lr: float = 1e-5
    warmup_steps: int = 100
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    max_bad_steps: int = 5

    def __post_init__(self) -> None:
        if not self.lr > 0 or not 0 <= self.min_lr <= self.lr:
            raise ConfigError(f"need 0 <= optim.min_lr <= optim.lr and lr > 0, got {self}")
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ConfigError("optim.warmup_steps, weight_decay and grad_clip must be >= 0")
        if len(self.betas) != 2 or not all(0 <= beta < 1 for beta in self.betas):
            raise ConfigError(f"optim.betas must be two numbers in [0, 1), got {self.betas}")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"optim.ema_decay must lie in [0, 1), got {self.ema_decay}")
        _positive(self, "max_bad_steps")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (saved as ``config.yaml`` in the run folder).

    Args:
        model: the network's shape.
        method: how the network is trained and sampled (``transport.methods``): ``f2d``,
            ``fm``, ``irsde``, ``irflow`` or ``resflow``; the backbone is the same.
        transport: the schedule of ``f2d`` (``fm`` takes its ``a`` with ``b = 0``) and the
            share of their training draws at ``t = 0``.
        loss: weights of the routing terms.
        data: batches, crops and validation samples.
        optim: the optimiser.
        steps: optimizer steps in all.
        seed: seeds the weights, the data order, the crops and the transport's noise.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
        amp: ``auto`` (bf16 autocast on CUDA, none on CPU), ``bf16`` or ``off``.
        channels_last: ``auto`` (on CUDA), ``on`` or ``off``.
        log_every: steps between training-loss records in the log.
        val_every: steps between validations (and best-checkpoint updates).
        ckpt_every: steps between checkpoints (one is always written at the end).
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    method: str = "f2d"
    transport: TransportConfig = field(default_factory=TransportConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    steps: int = 2000
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    channels_last: str = "auto"
    log_every: int = 10
    val_every: int = 250
    ckpt_every: int = 250

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(
                f"unknown method {self.method!r}; the methods are {', '.join(METHODS)}"
            )
        method = METHODS[self.method]
        wanted, residual = method.aux_channels, method.residual_condition
        model = self.model
        if model.aux_channels != wanted or model.residual_condition != residual:
            # the method decides the network's inputs
            model = model.ablate(aux_channels=wanted, residual_condition=residual)
            object.__setattr__(self, "model", model)
        if self.data.unpaired and not method.adversarial:
            unpaired = ", ".join(name for name, kind in METHODS.items() if kind.adversarial)
            raise ConfigError(
                f"{self.method} regresses on pairs and cannot train unpaired; "
                f"the unpaired methods are {unpaired}"
            )
        if self.model.removal and (method.adversarial or self.data.unpaired):
            raise ConfigError(f"model.removal trains on partial targets, pairs that "
                              f"{self.method} does not regress on")  # fmt: skip
        if self.data.synthesis == "device" and (self.data.unpaired or self.model.removal):
            raise ConfigError(
                "data.synthesis=device trains on pairs of a clean crop and its degradation; "
                "unpaired training and partial targets (model.removal) take their samples "
                "from the loader (data.synthesis=loader)"
            )
        if self.data.partial > 0 and not self.model.removal:
            raise ConfigError(
                "data.partial gives samples a remove-set the network must be told: set "
                "model.removal=true as well"
            )
        _positive(self, "steps", "log_every", "val_every", "ckpt_every")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        if self.amp not in ("auto", "bf16", "off"):
            raise ConfigError(f"amp must be auto, bf16 or off, got {self.amp!r}")
        if self.channels_last not in ("auto", "on", "off"):
            raise ConfigError(f"channels_last must be auto, on or off, got {self.channels_last!r}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")


def method_of(config: TrainConfig) -> Method:
    """The method a config trains and samples with: ``f2d`` on ``transport``'s schedule,
    ``fm`` on its ``a`` with ``b = 0``, the others with their papers' settings."""
    if config.method == "f2d":
        return F2D(config.transport.schedule())
    if config.method == "fm":
        return FlowMatching(PowerSchedule(a=config.transport.a, b=0.0))
    return method_named(config.method)


def _positive(config: object, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if value < 1:
            raise ConfigError(f"{name} must be >= 1, got {value}")


_PRESETS: dict[str, TrainConfig] = {
    "tiny": TrainConfig(model=CONFIGS["tiny"]),
    "small": TrainConfig(
        model=CONFIGS["small"],
        data=DataConfig(batch_size=8, crop=192),
        optim=OptimConfig(lr=5e-4),
        steps=20000,
        val_every=1000,
        ckpt_every=1000,
    ),
    "paper": TrainConfig(
        model=CONFIGS["paper"],
        data=DataConfig(batch_size=16, crop=256, workers=8),
        optim=OptimConfig(lr=2e-4, min_lr=1e-6, warmup_steps=2000, ema_decay=0.9995),
        steps=300000,
        val_every=5000,
        ckpt_every=5000,
    ),
}

#: The presets, and for each its capacity control ``NAME_wide`` (no experts, the backbone
#: widened to the same parameter count; everything else as ``NAME``).
PRESETS: dict[str, TrainConfig] = {
    **_PRESETS,
    **{
        f"{name}_wide": dataclasses.replace(config, model=CONFIGS[f"{name}_wide"])
        for name, config in _PRESETS.items()
    },
}


def preset(name: str) -> TrainConfig:
    """A preset by name (``tiny``, ``small``, ``paper``, or one of them with ``_wide``)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown config {name!r}; the presets are {sorted(PRESETS)}")
    return PRESETS[name]


def config_to_dict(config: Any) -> dict[str, Any]:
    """A nested dict of plain values (tuples as lists), ready for YAML or JSON."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple | list):
            return [plain(item) for item in value]
        return value

    return {key: plain(value) for key, value in dataclasses.asdict(config).items()}


def _renamed(cls: type[Any], data: dict[str, Any]) -> dict[str, Any]:
    """A saved config's keys of earlier releases under today's names: ``model.factorized``
    is ``model.experts``, ``model.time_gate`` true/false is ``model.gate`` sigmoid/none,
    ``loss.maps`` and ``loss.presence`` are ``loss.mask_weight`` and
    ``loss.presence_weight``. A key given under both names keeps today's."""
    data = dict(data)
    if cls is ModelConfig:
        if "factorized" in data:
            data.setdefault("experts", data.pop("factorized"))
        if "time_gate" in data:
            gate = data.pop("time_gate")
            data.setdefault(
                "gate", ("sigmoid" if gate else "none") if isinstance(gate, bool) else gate
            )
    if cls is LossWeights:
        for old, new in (("maps", "mask_weight"), ("presence", "presence_weight")):
            if old in data:
                data.setdefault(new, data.pop(old))
    return data


def config_from_dict(data: Any, cls: type[Any] = TrainConfig, where: str = "") -> Any:
    """Build ``cls`` from a nested dict strictly: unknown keys and wrong types raise."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'the config'} must be a mapping, got {data!r}")
    data = _renamed(cls, data)
    hints = typing.get_type_hints(cls)
    known = {item.name for item in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"unknown key {_join(where, unknown[0])!r}; the keys here are {sorted(known)}"
        )
    values = {key: _coerce(value, hints[key], _join(where, key)) for key, value in data.items()}
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where or 'config'}: {error}") from error


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _coerce(value: Any, kind: Any, where: str) -> Any:
    if dataclasses.is_dataclass(kind):
        return config_from_dict(value, typing.cast(type, kind), where)
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        (inner,) = [arg for arg in args if arg is not type(None)]
        return _coerce(value, inner, where)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        items = args[:1] * len(value) if args[-1] is Ellipsis else args
        if len(items) != len(value):
            raise ConfigError(f"{where} must have {len(items)} items, got {value!r}")
        return tuple(
            _coerce(item, sub, f"{where}[{i}]")
            for i, (item, sub) in enumerate(zip(value, items, strict=True))
        )
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind in (int, str, bool) and type(value) is kind:
        return value
    raise ConfigError(f"{where} must be {getattr(kind, '__name__', kind)}, got {value!r}")


def override(config: TrainConfig, assignments: list[str] | tuple[str, ...]) -> TrainConfig:
    """Apply ``a.b=value`` assignments (values parsed as YAML literals)."""
    data = config_to_dict(config)
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set needs key=value, got {assignment!r}")
        try:
            value = _parse(text) if text.strip() else ""
        except yaml.YAMLError as error:
            raise ConfigError(f"{key}: cannot parse {text!r} ({error})") from error
        node = data
        *parents, leaf = key.strip().split(".")
        for depth, part in enumerate(parents):
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"unknown key {'.'.join(parents[: depth + 1])!r}")
            node = node[part]
        if leaf not in node:
            raise ConfigError(f"unknown key {key.strip()!r}; the keys here are {sorted(node)}")
        node[leaf] = value
    return typing.cast(TrainConfig, config_from_dict(data))


def save_config(config: TrainConfig, path: str | Path) -> None:
    """Write ``config`` as YAML."""
    text = yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=False)
    Path(path).write_text(f"# skyclear training config (keys: docs/training.md)\n{text}")


def load_config(path: str | Path) -> TrainConfig:
    """Read a YAML config strictly; keys left out take their defaults."""
    path = Path(path)
    try:
        data = _parse(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: {error}") from error
    try:
        return typing.cast(TrainConfig, config_from_dict(data or {}))
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from error
