"""The training loop: one function, ``train``, for one process or many (``torchrun``).

A step: draw ``t`` (for ``f2d`` and ``fm`` a share at exactly 0, the one-step inference
time) and the transport's noise, each sample's from a generator seeded by ``(seed, step,
its place in the global batch)``, so that the processes of a group draw what one process
would (a method's other draws come from one seeded by ``(seed, step, rank)``), let the
method (``config.method``) pose the network's input and target in closed form, regress
the network's output on it (for ``f2d`` the residual ``x_t - mu``) with the parser's maps
and weights supervised by the masks and the tier, clip the gradient, skip the step if the
gradient is not finite, step AdamW at the scheduled learning rate, update the EMA. An
adversarial method (``darcot``) first steps its critic (``adversary``), then the network on
its terms against the critic, with the same routing terms.

Everything random is a function of the seed and the step, so ``resume`` continues
exactly: a run stopped at step k and resumed equals an uninterrupted one bit for bit on
the CPU. Only the main process validates, logs and writes checkpoints.
"""

from __future__ import annotations

import functools
import gc
import json
import math
import pickle
import signal
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from skyclear.datasets import DegradedPhotos, Unpaired, as_float, degrade_batch
from skyclear.datasets.partial import Removal
from skyclear.degrade.location import identity, location
from skyclear.degrade.seeding import entropy_seed
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from ..checkpoint import (
    CheckpointError,
    link_checkpoint,
    load_checkpoint,
    save_checkpoint,
    train_config_of,
)
from ..config import TrainConfig, config_to_dict, method_of, save_config
from ..data import open_clean_crops, open_dataset
from ..inference import Restorer
from ..losses import restoration_loss
from ..nn import F2DNet
from ..nn.model import Aux
from ..runtime import autocast, resolve_device, use_bf16, use_channels_last
from ..transport.methods import DARCOT, Predictor
from .adversary import Adversary
from .distributed import Processes, start_processes
from .folder import RunFolder, check_run_folder
from .optim import EMA, learning_rate
from .sampling import StepSampler, training_loader
from .validate import validate, validation_indices

__all__ = ["NonFiniteError", "TrainingInterrupted", "train"]

Report = Callable[[str, dict[str, Any]], None]
_TRAIN_KEYS = ("degraded", "clean", "masks", "presence", "has_masks", "tier")
_REMOVAL_KEYS = ("target", "remove")  # with model.removal (datasets.partial)


class NonFiniteError(RuntimeError):
    """Training produced non-finite gradients too many steps in a row."""


class TrainingInterrupted(Exception):  # noqa: N818 - an outcome, not a failure
    """A signal stopped training after the checkpoint was saved."""

    def __init__(self, signal_number: int, step: int) -> None:
        super().__init__(f"stopped by signal {signal_number} at step {step}")
        self.signal_number = signal_number
        self.step = step


@dataclass
class _State:
    """What a checkpoint restores besides the weights and the optimizer."""

    step: int = 0
    best: float = -math.inf
    bad_steps: int = 0
    metrics: dict[str, float] = field(default_factory=dict)


class _Stop:
    """SIGINT/SIGTERM ask for a save-and-exit at the next step boundary; a second SIGINT
    (a person pressing Ctrl-C again) stops at once, the last complete checkpoint still on
    disk. Repeated SIGTERMs are expected (a scheduler and torchrun both forward theirs)
    and change nothing."""

    def __init__(self) -> None:
        self.signal_number = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Stop:
        for number in (signal.SIGINT, signal.SIGTERM):
            self._previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, number: int, frame: types.FrameType | None) -> None:
        if self.signal_number and number == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal_number = self.signal_number or number

    def __exit__(self, *exc: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)


def train(
    config: TrainConfig | None,
    data: str | Path,
    out: str | Path,
    resume: bool = False,
    report: Report | None = None,
    degraded: str | Path | None = None,
) -> dict[str, Any]:
    """Train a restorer on the data at ``data`` (see ``restore.data``) into the run folder
    ``out`` (``config.yaml``, ``last.pt``, ``best.pt``, ``log.jsonl``, ``val/*.png``).

    Args:
        config: the run's configuration. On resume, ``None`` continues with the
            checkpoint's (exactly); a config given replaces it (to change the learning
            rate, the workers or the device of a run, say).
        data: a make-cdd11 store, its HDF5 export, a CDD-11 folder or a folder of photos.
        out: the run folder.
        resume: continue from ``out/last.pt``.
        report: called with ``(event, record)`` for ``start``, ``train``, ``val``,
            ``checkpoint`` and ``end`` events (the main process only).
        degraded: a folder of real degraded photos, the degraded side of unpaired
            training (``config.data.unpaired``); ``data`` gives the clean side.

    Returns:
        The final record: ``step``, ``best`` and the last validation's ``metrics``.

    Raises:
        TrainingInterrupted: SIGINT or SIGTERM arrived; a checkpoint was written first.
        NonFiniteError: the gradient was not finite ``optim.max_bad_steps`` times in a row.
        FileExistsError: ``out`` already holds a run and ``resume`` is false.
        skyclear.degrade.outputs.OutputError: ``out`` is, holds or lies inside ``data``, or
            holds files but is not a skyclear run folder (see ``folder.check_run_folder``).
    """
    folder = RunFolder(Path(out))
    payload = None
    # Every process checks before any of them starts (and so before any writes).
    if resume:
        payload = load_checkpoint(folder.last)
        check_run_folder(folder.root, location(data), resumed=True)
        config = config or train_config_of(payload, folder.last)
    else:
        check_run_folder(folder.root, location(data))
    if not resume and folder.last.exists():
        raise FileExistsError(
            f"{folder.root} already holds a run; resume it or choose another folder"
        )
    if config is None:
        raise ValueError("a new run needs a config")
    if degraded is not None and not config.data.unpaired:
        raise ValueError("a folder of degraded photos is the degraded side of unpaired training")
    device = resolve_device(config.device)
    processes = start_processes(device.type)
    if processes.distributed and device.type == "cuda":
        device = torch.device("cuda", processes.local_rank)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)  # pinned memory and new tensors go there too
    trainer: _Trainer | None = None
    try:
        with _Stop() as stop:
            trainer = _Trainer(config, data, folder, device, processes, report, degraded)
            return trainer.run(payload, stop)
    finally:
        if processes.distributed:
            # DistributedDataParallel holds work of the group: free it (it is in reference
            # cycles) while the group lives, not when the interpreter shuts down, where
            # gloo's threads may abort the process after training succeeded. A traceback
            # may still hold the trainer, so its DDP wrapper is dropped from it first.
            if trainer is not None:
                trainer.network = trainer.model
            trainer = None
            gc.collect()
        processes.close()


class _Trainer:
    def __init__(
        self,
        config: TrainConfig,
        data: str | Path,
        folder: RunFolder,
        device: torch.device,
        processes: Processes,
        report: Report | None,
        degraded: str | Path | None = None,
    ) -> None:
        self.config, self.folder, self.device, self.processes = config, folder, device, processes
        self.report = report if report is not None and processes.main else None
        self.bf16 = use_bf16(device, config.amp)
        self.channels_last = use_channels_last(device, config.channels_last)
        self.method = method_of(config)
        torch.manual_seed(config.seed)
        self.model = F2DNet(config.model).to(device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.ema = EMA(self.model, config.optim.ema_decay)
        method = self.method
        self.adversary = Adversary(method, device) if isinstance(method, DARCOT) else None
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=config.optim.lr,
            betas=config.optim.betas,
            weight_decay=config.optim.weight_decay,
        )
        self.network: nn.Module = self.model
        if processes.distributed:
            ids = [device.index] if device.type == "cuda" else None
            self.network = DistributedDataParallel(self.model, device_ids=ids)
        crop, tiers, seed = config.data.crop, config.data.tiers, config.seed
        self.data_path = identity(data)  # recorded: comparisons check it
        # uint8 pixels between processes (and to the GPU); scaled to floats in _step.
        removal = Removal(config.data.partial) if config.model.removal else None
        self.on_device = config.data.synthesis == "device"  # degrade in the step
        self.train_data: Dataset[Any]
        if self.on_device:
            self.train_data = open_clean_crops(data, crop, tiers, seed)
        else:
            self.train_data = open_dataset(data, "train", crop, True, tiers, seed, uint8=True,
                                           removal=removal)  # fmt: skip
        if degraded is not None:
            real = DegradedPhotos(degraded, crop, True, uint8=True)
            self.train_data = Unpaired.between(real, self.train_data)
        elif config.data.unpaired:
            self.train_data = Unpaired.split(self.train_data, seed)
        self.degraded_path = None if degraded is None else str(Path(degraded).resolve())
        self.test_data = open_dataset(data, "test", config.data.val_crop, False, tiers, seed)
        self._check_data()
        self.state = _State()

    def _check_data(self) -> None:
        """Fail here, with the reason, rather than inside a loader worker."""
        try:  # on a copy: the dataset's own file handles must open in the workers
            pickle.loads(pickle.dumps(self.train_data))[0]
        except (ValueError, OSError) as error:
            raise ValueError(f"cannot draw a training sample: {error}") from error

    # -- checkpoints -------------------------------------------------------------------

    def _payload(self) -> dict[str, Any]:
        # The step's times and noise come from their own generator; torch's CPU state is
        # kept for anything else that draws. (Per-GPU states would tie a checkpoint to the
        # number of visible GPUs.)
        rng: dict[str, Any] = {"torch": torch.get_rng_state()}
        return {
            "config": config_to_dict(self.config),
            "step": self.state.step,
            "model": self.model.state_dict(),
            "ema": self.ema.shadow,
            "ema_updates": self.ema.updates,
            "optimizer": self.optimizer.state_dict(),
            "rng": rng,
            "best": self.state.best,
            "bad_steps": self.state.bad_steps,
            "metrics": self.state.metrics,
            "data": self.data_path,
            "degraded_data": self.degraded_path,
            **({} if self.adversary is None else self.adversary.state_dict()),
        }

    def _restore(self, payload: dict[str, Any]) -> None:
        try:
            self.model.load_state_dict(payload["model"])
            self.ema.load_state_dict(
                {"shadow": payload["ema"], "updates": payload.get("ema_updates", 0)}
            )
            self.optimizer.load_state_dict(payload["optimizer"])
            for group in self.optimizer.param_groups:  # the config's, if --resume changed them
                group["betas"] = self.config.optim.betas
                group["weight_decay"] = self.config.optim.weight_decay
            torch.set_rng_state(payload["rng"]["torch"])
            if self.adversary is not None:
                self.adversary.load_state_dict(payload)
        except (KeyError, TypeError, RuntimeError, ValueError) as error:
            raise CheckpointError(
                f"{self.folder.last}: cannot resume from it (missing or unfit {error})"
            ) from error
        self.state = _State(
            step=int(payload["step"]),
            best=float(payload.get("best", -math.inf)),
            bad_steps=int(payload.get("bad_steps", 0)),
            metrics=dict(payload.get("metrics", {})),
        )

    def _save(self, improved: bool = False, sync: bool = True) -> None:
        """Write ``last.pt`` (and ``best.pt``) from the main process; ``sync`` waits for
        the others (not when they may be stuck elsewhere)."""
        if self.processes.main:
            save_checkpoint(self._payload(), self.folder.last)
            if improved:
                link_checkpoint(self.folder.last, self.folder.best)
            self._emit("checkpoint", {"step": self.state.step, "path": str(self.folder.last)})
        if sync:
            self.processes.barrier()

    # -- logging -----------------------------------------------------------------------

    def _emit(self, event: str, record: dict[str, Any]) -> None:
        if self.report is not None:
            self.report(event, record)

    def _log(self, record: dict[str, Any]) -> None:
        if self.processes.main:
            with open(self.folder.log, "a") as log:
                log.write(json.dumps(record, allow_nan=True) + "\n")

    def _trim_log(self) -> None:
        """On resume, drop records written after the checkpoint (they are redone)."""
        if not self.processes.main or not self.folder.log.exists():
            return
        kept = []
        for line in self.folder.log.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short when the process was killed
            if isinstance(record, dict) and record.get("step", 0) <= self.state.step:
                kept.append(line)
        self.folder.log.write_text("".join(line + "\n" for line in kept))

    # -- the loop ----------------------------------------------------------------------

    def run(self, payload: dict[str, Any] | None, stop: _Stop) -> dict[str, Any]:
        config = self.config
        if payload is not None:
            self._restore(payload)
            self._trim_log()
        if self.processes.main:
            self.folder.claim()  # the marker goes in before any other file
            if payload is None:  # the log of a run stopped before its first checkpoint
                self.folder.log.unlink(missing_ok=True)
            save_config(config, self.folder.config)  # on resume, with any changes made
            for stale in self.folder.root.glob(".*.pt.*.tmp"):  # a save that was killed
                stale.unlink(missing_ok=True)
        sampler = StepSampler(
            len(self.train_data),  # type: ignore[arg-type]
            config.data.batch_size,
            config.seed,
            self.state.step,
            self.processes.rank,
            self.processes.world,
        )
        loader = training_loader(
            self.train_data, sampler, config.data.workers, self.device.type == "cuda", config.seed
        )
        self._emit(
            "start",
            {
                "step": self.state.step,
                "steps": config.steps,
                "device": str(self.device),
                "processes": self.processes.world,
                "synthesis_on_device": self.on_device,
                "train_samples": len(self.train_data),  # type: ignore[arg-type]
                "test_samples": len(self.test_data),  # type: ignore[arg-type]
                "parameters": self._parameters(),
            },
        )
        feed: list[Iterator[dict[str, Tensor]]] = [iter(loader)]
        try:
            self._loop(feed, stop)
        finally:
            feed.clear()  # stop the loader's workers now, not when a traceback is freed
        self._check_ranks_agree()
        result = {"step": self.state.step, "best": self.state.best, "metrics": self.state.metrics}
        self._emit("end", result)
        return result

    def _check_ranks_agree(self) -> None:
        """Raise if the processes' weights are not the same (DistributedDataParallel
        keeps them so; a difference means a process stepped on other gradients)."""
        if not self.processes.distributed:
            return
        with torch.no_grad():
            flat = torch.cat([p.detach().double().flatten() for p in self.model.parameters()])
            digest = torch.stack([flat.sum(), flat.square().sum(), flat.abs().max()])
            gathered = [torch.empty_like(digest) for _ in range(self.processes.world)]
            torch.distributed.all_gather(gathered, digest)
        if any(not torch.equal(gathered[0], other) for other in gathered[1:]):
            raise RuntimeError(
                f"the processes' weights differ after step {self.state.step}: "
                f"{[value.tolist() for value in gathered]}"
            )

    def _loop(self, feed: list[Iterator[dict[str, Tensor]]], stop: _Stop) -> None:
        config = self.config
        window: list[dict[str, Tensor]] = []
        started, done_before = time.perf_counter(), self.state.step
        while self.state.step < config.steps:
            try:
                batch = next(feed[0])
            except Exception:
                if not stop.signal_number:
                    raise
                batch = None  # the signal reached the loader's workers too; they are gone
            # Every process stops at the same step, or none does (DDP would hang).
            if self.processes.any(batch is None, self.device):
                self._save()
                raise TrainingInterrupted(stop.signal_number or signal.SIGTERM, self.state.step)
            assert batch is not None
            terms = self._step(batch)
            window.append(terms)
            step = self.state.step
            if step % config.log_every == 0 or step == config.steps:
                record = self._train_record(window, step, started, done_before)
                started, done_before, window = time.perf_counter(), step, []
                self._log(record)
                self._emit("train", record)
            validated = step % config.val_every == 0 or step == config.steps
            improved = self._validate() if validated else False
            if validated or step % config.ckpt_every == 0:
                self._save(improved)
            if self.processes.any(bool(stop.signal_number), self.device):
                if not (validated or step % config.ckpt_every == 0):
                    self._save()
                raise TrainingInterrupted(stop.signal_number or signal.SIGTERM, step)

    def _train_record(
        self, window: list[dict[str, Tensor]], step: int, started: float, done_before: int
    ) -> dict[str, Any]:
        means = {key: float(torch.stack([t[key] for t in window]).mean()) for key in window[0]}
        seconds = max(time.perf_counter() - started, 1e-9)
        samples = (step - done_before) * self.config.data.batch_size
        return {
            "kind": "train",
            "step": step,
            **means,
            "lr": learning_rate(step - 1, self.config.steps, self.config.optim),
            "samples_per_second": samples / seconds,
        }

    def _parameters(self) -> int:
        """The network's parameters, and the critic's where the method has one."""
        critic = 0 if self.adversary is None else self.adversary.parameters
        return sum(p.numel() for p in self.model.parameters()) + critic

    def _noise(self, degraded: Tensor) -> tuple[Tensor, Tensor, torch.Generator]:
        """Times and the transport's noise of this step, each sample's a function of
        (seed, step, the sample's place in the global batch), so that any number of
        processes draws the very noise one process would; and a generator for the
        method's other draws, seeded by (seed, step, rank)."""
        config, step, device = self.config, self.state.step, self.device
        batch = degraded.shape[0]
        first = self.processes.rank * batch  # this process's first sample in the step
        times, zeros, noises = [], [], []
        for index in range(first, first + batch):
            own = torch.Generator(device=device).manual_seed(
                entropy_seed(config.seed, 2, step, index)
            )
            times.append(torch.rand(1, generator=own, device=device))
            zeros.append(torch.rand(1, generator=own, device=device))
            noises.append(torch.randn(degraded.shape[1:], generator=own, device=device))
        t, at_zero, noise = torch.cat(times), torch.cat(zeros), torch.stack(noises)
        share = config.transport.t0_fraction if self.method.uses_t0 else 0.0
        t = torch.where(at_zero < share, torch.zeros_like(t), t)
        seed = entropy_seed(config.seed, 3, step, self.processes.rank)
        generator = torch.Generator(device=device).manual_seed(seed)
        return t, noise, generator

    def _step(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        device = self.device
        memory = torch.channels_last if self.channels_last else torch.contiguous_format
        if self.on_device:  # clean crops, their tiers and seeds: degraded here
            clean = batch["clean"].to(device, non_blocking=True)
            composite = self.train_data.composite  # type: ignore[attr-defined]
            on_device = degrade_batch({**batch, "clean": clean}, composite)
        else:
            keys = _TRAIN_KEYS + (_REMOVAL_KEYS if self.config.model.removal else ())
            on_device = as_float({key: batch[key].to(device, non_blocking=True) for key in keys})
        degraded, clean, masks, presence, has_masks, tier = (on_device[key] for key in _TRAIN_KEYS)
        degraded = degraded.contiguous(memory_format=memory)
        clean = clean.contiguous(memory_format=memory)
        removal: dict[str, Tensor] = {}
        if self.config.model.removal:  # regress on what is to remain, told what goes
            clean = on_device["target"].contiguous(memory_format=memory)
            removal = {"remove": on_device["remove"]}
        t, noise, generator = self._noise(degraded)
        method = self.method
        if self.adversary is not None:
            terms = self._adversarial_terms(degraded, clean, masks, presence, has_masks, tier,
                                            generator)  # fmt: skip
            return self._update(terms)
        draw = method.draw(degraded, clean, t, noise, generator)
        self.model.train()
        with autocast(device, self.bf16):
            kwargs = removal if draw.aux is None else {"aux": draw.aux, **removal}
            residual, aux = self.network(draw.x, draw.t, degraded, return_aux=True, **kwargs)
        transport = method.loss(residual, draw, degraded, clean)
        terms = self._loss(transport, aux, masks, presence, has_masks)
        predictor = functools.partial(self._predictor, remove=removal.get("remove"))
        extra = method.extra_terms(predictor, degraded, clean, generator)
        for name, (weight, value) in extra.items():
            terms[name] = value
            terms["loss"] = terms["loss"] + weight * value
        return self._update(terms)

    def _predictor(
        self, condition: Tensor, seen: list[Aux] | None = None, remove: Tensor | None = None
    ) -> Predictor:
        """The training network as a method's ``predict``, conditioned on the degraded
        images ``condition`` (and told to ``remove`` those degradations, the first rows of
        ``remove`` for a ``condition`` of the batch's first images, for a network
        with ``removal``); with ``seen``, each evaluation's routing is appended there."""

        def predict(x: Tensor, times: Tensor, extra: Tensor | None) -> Tensor:
            kwargs: dict[str, Tensor] = {} if extra is None else {"aux": extra}
            if remove is not None:
                kwargs["remove"] = remove[: x.shape[0]]
            with autocast(self.device, self.bf16):
                output, aux = self.network(x, times, condition, return_aux=True, **kwargs)
            if seen is not None:
                seen.append(aux)
            return output.float()

        return predict

    def _adversarial_terms(
        self,
        degraded: Tensor,
        clean: Tensor,
        masks: Tensor,
        presence: Tensor,
        has_masks: Tensor,
        tier: Tensor,
        generator: torch.Generator,
    ) -> dict[str, Tensor]:
        """The critic's update and the map's loss of one step (DA-RCOT): both passes of the
        map, the critic stepped on their restoration, then the map's terms against it."""
        assert self.adversary is not None
        config, device, adversary = self.config, self.device, self.adversary
        self.model.train()
        seen: list[Aux] = []  # the routing of each pass; the last pass's is trained
        restored = adversary.method.sample(self._predictor(degraded, seen), degraded)
        aux = seen[-1]
        critic_loss, critic_terms, diverged = adversary.critic_loss(clean, restored, generator)
        if self.processes.any(diverged, device):
            self._save()  # the weights before this step
            limit = adversary.method.critic_limit
            raise NonFiniteError(
                f"the critic diverged at step {self.state.step + 1} (loss "
                f"{float(critic_terms['critic']):.4g}, potentials up to "
                f"{float(critic_terms['potential']):.4g}, limit {limit:g}); "
                f"the last good weights are in {self.folder.last}. Lower the learning rate "
                "(--set optim.lr=...) and resume"
            )
        adversary.critic_update(critic_loss, learning_rate(self.state.step, config.steps,
                                                           config.optim))  # fmt: skip
        paired = None if config.data.unpaired else clean
        parts = adversary.map_terms(degraded, restored, paired, aux.embedding, tier)
        transport = parts.pop("transport")
        terms = self._loss(transport, aux, masks, presence, has_masks, tier >= 0)
        return {**terms, **parts, **critic_terms}

    def _loss(
        self,
        transport: Tensor,
        aux: Aux,
        masks: Tensor,
        presence: Tensor,
        has_masks: Tensor,
        has_presence: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """The method's ``transport`` loss plus the routing terms of the network's ``aux``."""
        return restoration_loss(
            maps=aux.maps if aux.spatial else None,
            weights=aux.weights if self.config.model.experts else None,
            masks=masks,
            presence=presence,
            has_masks=has_masks,
            loss_weights=self.config.loss,
            transport_loss=transport,
            has_presence=has_presence,
        )

    def _update(self, terms: dict[str, Tensor]) -> dict[str, Tensor]:
        """Step the map on ``terms["loss"]``: clip, skip a non-finite gradient, schedule."""
        config = self.config
        self.optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        clip = config.optim.grad_clip or math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        if torch.isfinite(grad_norm):
            for group in self.optimizer.param_groups:
                group["lr"] = learning_rate(self.state.step, config.steps, config.optim)
            self.optimizer.step()
            self.ema.update(self.model)
            self.state.bad_steps = 0
        else:
            self.optimizer.zero_grad(set_to_none=True)
            self.state.bad_steps += 1
            if self.state.bad_steps >= config.optim.max_bad_steps:
                bad, self.state.bad_steps = self.state.bad_steps, 0
                self._save()  # the weights before these steps, resumable with a lower lr
                raise NonFiniteError(
                    f"the gradient was not finite in {bad} steps in a row (up to step "
                    f"{self.state.step + 1}); the last good weights are in {self.folder.last}. "
                    f"Check the data, or resume with a lower learning rate (--resume --lr ...)"
                )
        self.state.step += 1
        return {
            **{key: value.detach() for key, value in terms.items()},
            "grad_norm": grad_norm.detach(),
        }

    def _validate(self) -> bool:
        """Score the EMA weights on the test samples; True when they are the best yet."""
        if not self.processes.main:
            return False
        if len(self.test_data) == 0:  # type: ignore[arg-type]
            return True  # nothing to score on: best.pt follows last.pt
        evaluated = F2DNet(self.config.model).to(self.device)
        if self.channels_last:
            evaluated.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        evaluated.load_state_dict(self.ema.shadow)
        restorer = Restorer(
            evaluated.eval(),
            self.method,
            self.config,
            self.device,
            self.bf16,
            self.channels_last,
        )
        indices = validation_indices(
            len(self.test_data),  # type: ignore[arg-type]
            self.config.data.val_samples,
            self.config.seed,
        )
        step = self.state.step
        grid = self.folder.grid(step) if self.config.data.grid_samples else None
        metrics = validate(restorer, self.test_data, indices, self.config.data.grid_samples, grid)
        self.state.metrics = metrics
        improved = metrics["psnr"] > self.state.best
        if improved:
            self.state.best = metrics["psnr"]
        record = {"kind": "val", "step": step, **metrics, "best_psnr": self.state.best}
        self._log(record)
        self._emit("val", {**record, "grid": str(grid) if grid else None})
        return improved
