"""The pieces the training loop (loop.py) is built from, each one job: the budget (how long
to train, the learning-rate schedule), the position (steps, batches, seconds), the phase step
(one phase's loss, backward pass and optimizer step, under autocast, DDP and the non-finite
policy) and the stop signals (log.py holds the meter, validation.py --validation).

Losses stay on the device and are read back only on logging steps, so the loop never waits on
the host in between.

May import, of this package: config, data, dist, errors, files, models.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import dist
from ..config import TrainConfig
from ..data import Batch, Examples, InMemoryLoader
from ..errors import PushforwardError
from ..files import read_json
from ..models import Model

_NONE_BAD = 2**62  # "no non-finite loss" in the earliest-over-ranks reduction


@dataclass
class Budget:
    """How long a run trains: ``total`` steps (from --steps, or --epochs of the data), or until
    --minutes run out (``total`` None until then); and the learning rate over the run."""

    total: int | None
    minutes: float | None
    cosine: bool
    planned: int | None = None  # the schedule's length (a patience stop ends a run before it)
    deadline: float = math.inf  # the perf_counter time --minutes ends the run at

    @staticmethod
    def check(tcfg: TrainConfig) -> None:
        """Refuse a budget that cannot run, before anything is written (each number's own
        bounds are checked where the options are built, config.Options)."""
        if tcfg.steps is not None and tcfg.epochs is not None:
            raise PushforwardError("give --steps or --epochs, not both")
        if tcfg.lr_schedule == "cosine" and tcfg.steps is None and tcfg.minutes is not None:
            # the clock, not a number of steps, ends such a run (even with --epochs)
            raise PushforwardError(
                "--lr-schedule cosine decays to 0 at the last step: give --epochs or --steps"
            )

    @classmethod
    def of(cls, tcfg: TrainConfig, batches_per_epoch: int, phases_per_step: int) -> Budget:
        total: int | None = tcfg.steps
        if total is None and tcfg.minutes is None:
            if tcfg.epochs is None:
                raise PushforwardError("give --steps, --epochs or --minutes")
            total = math.ceil(tcfg.epochs * batches_per_epoch / phases_per_step)
        return cls(total, tcfg.minutes, tcfg.lr_schedule == "cosine", total)

    def start(self, opts: dict[str, torch.optim.Optimizer], clock: float) -> None:
        """Start the clock (``clock``: when the run began, earlier processes counted) and
        note each optimizer's initial rate, which a resumed run's groups already carry."""
        if self.minutes is not None:
            self.deadline = clock + 60 * self.minutes
        for opt in opts.values():
            for group in opt.param_groups:
                group.setdefault("initial_lr", float(group["lr"]))

    def more(self, step: int) -> bool:
        return self.total is None or step < self.total

    def out_of_time(self) -> bool:
        return time.perf_counter() >= self.deadline

    def set_lr(self, opts: dict[str, torch.optim.Optimizer], step: int) -> None:
        """This step's rate, from the step alone, so a resumed run continues it exactly."""
        if not self.cosine or self.planned is None:
            return
        factor = 0.5 * (1 + math.cos(math.pi * (step - 1) / self.planned))
        for opt in opts.values():
            for group in opt.param_groups:
                lr = float(group["initial_lr"]) * factor
                if torch.is_tensor(group["lr"]):  # --compile: changed in place, no recompile
                    group["lr"].fill_(lr)
                else:
                    group["lr"] = lr


@dataclass
class Position:
    """Where a run is: steps taken, batches consumed and seconds trained, a resumed run's
    earlier processes included; what its checkpoint records."""

    per_epoch: int  # batches in an epoch
    step: int = 0
    batches: int = 0
    elapsed: float = 0.0  # seconds trained before this process
    started: float | None = None  # perf_counter time the run began, earlier processes counted

    def start_clock(self) -> float:
        self.started = time.perf_counter() - self.elapsed
        return self.started

    @property
    def seconds(self) -> float:
        return self.elapsed if self.started is None else time.perf_counter() - self.started

    @property
    def epoch(self) -> float:
        return self.batches / self.per_epoch

    def checkpoint(self, total: int | None, best: dict[str, Any]) -> dict[str, Any]:
        """The JSON of a checkpoint at this position (``total``: the budget's steps)."""
        return {
            "step": self.step,
            "epoch": self.epoch,
            "batches": self.batches,
            "seconds": self.seconds,
            "finished": self.step == total,
            "total_steps": total,
            "best": best,
        }


def shard_loader(
    x: Examples,
    tcfg: TrainConfig,
    labels: torch.Tensor | None = None,
    device: torch.device | None = None,
) -> InMemoryLoader:
    """This process's share of the training examples x [N, *shape] (with their labels [N], for
    a conditional model), in seeded batches on ``device``."""
    return InMemoryLoader(
        x,
        tcfg.batch_size,
        tcfg.seed,
        rank=dist.rank(),
        world=dist.world_size(),
        dynamic_binarize=tcfg.binarize == "dynamic",
        labels=labels,
        device=device,
    )


def batches(loader: InMemoryLoader, consumed: int = 0) -> Iterator[Batch]:
    """An endless stream of batches, epoch after epoch, starting after the first ``consumed``
    (so a resumed run sees exactly the batches an uninterrupted one would)."""
    epoch, skip = divmod(consumed, len(loader))
    while True:
        yield from loader.epoch(epoch, skip)
        epoch, skip = epoch + 1, 0


def train_only(model: Model, phase: str) -> None:
    """Gradients flow into this phase's modules only (the G step must not train D)."""
    for p in model.phases:
        for m in model.phase_modules(p):
            m.requires_grad_(p == phase)


class _PhaseLoss(torch.nn.Module):
    """One phase's loss as a module holding only that phase's networks, so DDP wraps the
    generator and the discriminator separately and all-reduces only the gradients of the phase
    that steps."""

    def __init__(self, model: Model, phase: str) -> None:
        super().__init__()
        self.parts = torch.nn.ModuleList(model.phase_modules(phase))
        self.__dict__["model"] = model  # not registered: its other networks stay out of DDP
        self.phase = phase

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        model: Model = self.__dict__["model"]
        # a model that is not conditional is called as (x, phase), so it need not take labels
        return model.loss(x, self.phase) if y is None else model.loss(x, self.phase, y)


def _phase_losses(model: Model, device: torch.device) -> dict[str, torch.nn.Module]:
    """phase -> module(x, y) -> loss dict: the model's own loss in one process, a DDP-wrapped one
    under torchrun."""
    if not dist.active():
        return {p: _PhaseLoss(model, p) for p in model.phases}
    from torch.nn.parallel import DistributedDataParallel

    # every tensor, not only the wrapped ones, starts as rank 0's (the EMA copy of G included)
    for t in model.state_dict().values():
        torch.distributed.broadcast(t, 0)
    ids = [device.index] if device.type == "cuda" else None
    return {p: DistributedDataParallel(_PhaseLoss(model, p), device_ids=ids) for p in model.phases}


def _step_unless(opt: torch.optim.Optimizer, bad: torch.Tensor) -> None:
    """Step unless ``bad``: the fused kernel takes the flag on the device (GradScaler's
    found_inf), so skipping costs no host sync; other optimizers read it back."""
    if opt.defaults.get("fused"):
        opt.found_inf = bad.float()  # type: ignore[attr-defined]
        opt.step()
        opt.found_inf = None  # type: ignore[attr-defined]
    elif not bool(bad):
        opt.step()


class PhaseStep:
    """One phase of a step: its loss (under bf16 autocast when asked, DDP-wrapped under
    torchrun), the backward pass, and the update: the non-finite check and its optimizer's step.
    Under --nan-policy skip a non-finite loss skips the step on every rank; under stop the first
    one is remembered on the device and reported by :meth:`stop_on_nonfinite`. A step is
    non-finite when its loss or any of its gradients is.

    --compile compiles the loss (its backward pass with it) and the update as two functions;
    on a GPU with mode "reduce-overhead", which captures each as a CUDA graph and replays it, so
    a step costs a few graph launches instead of hundreds of kernel launches from Python. Every
    number that changes from step to step reaches them as a device tensor (the step's code, the
    learning rate), so nothing is baked into a graph or forces a recompile."""

    def __init__(
        self,
        model: Model,
        opts: dict[str, torch.optim.Optimizer],
        device: torch.device,
        tcfg: TrainConfig,
    ) -> None:
        self.model, self.opts, self.skip = model, opts, tcfg.nan_policy == "skip"
        self.losses: dict[str, Callable[..., dict[str, torch.Tensor]]] = dict(
            _phase_losses(model, device)
        )
        self.update: Callable[[str, torch.Tensor], torch.Tensor] = self._update
        self.compiled = tcfg.compile
        if tcfg.compile:
            mode = "reduce-overhead" if device.type == "cuda" else None  # CUDA graphs
            self.losses = {
                p: f if model.double_backward(p) else torch.compile(f, mode=mode)
                for p, f in self.losses.items()
            }
            self.update = torch.compile(self._update, mode=mode)
        self.autocast: contextlib.AbstractContextManager[Any] = (
            torch.autocast(device.type, dtype=torch.bfloat16)
            if tcfg.precision == "bf16"
            else contextlib.nullcontext()
        )
        self.first_bad = torch.tensor(-1, device=device)  # step * phases + phase of the first
        self.code = torch.zeros((), dtype=torch.long, device=device)  # this phase's
        # each phase's parameters, whose gradients are checked as well as the loss: a finite
        # loss can still overflow its gradients (--lr 1e6), and those would reach the weights
        self.params = {
            p: [q for g in opt.param_groups for q in g["params"]] for p, opt in opts.items()
        }

    def __call__(
        self, phase: str, batch: Batch, step: int, i: int
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """(the loss dict, a device flag: the loss was not finite) of the ``i``-th phase of
        step ``step`` (counted from 1), on a batch of examples and their labels (or None)."""
        self.code.fill_(step * len(self.model.schedule) + i)
        train_only(self.model, phase)
        if self.compiled:
            _lr_as_tensors(self.opts[phase], self.code.device)
        with self.autocast:
            out = self.losses[phase](*batch)
        self.opts[phase].zero_grad(set_to_none=True)
        out["loss"].backward()
        bad = self.update(phase, out["loss"].detach())
        self.model.after_step(phase, step)
        return out, bad

    def _update(self, phase: str, loss: torch.Tensor) -> torch.Tensor:
        """The non-finite flag of this phase's loss and gradients, and its optimizer's step
        (skipped on the flag under --nan-policy skip), all on the device."""
        opt = self.opts[phase]
        bad = ~torch.isfinite(loss)  # on the device: no sync
        grads = [q.grad for q in self.params[phase] if q.grad is not None]
        if grads:
            bad = bad | ~_all_finite(grads)
        if self.skip:
            bad = dist.any_across(bad)  # DDP averages one rank's NaN into every rank
            _step_unless(opt, bad)
        else:
            opt.step()
            self.first_bad.copy_(torch.where(bad & (self.first_bad < 0), self.code, self.first_bad))
        return bad

    def check_state(self, step: int, checkpoint: Path) -> None:
        """Refuse to checkpoint weights or optimizer moments that are not finite: finite losses
        and gradients bound them, but the guarantee that nothing non-finite is ever saved
        should not rest on that (one norm per tensor group, at checkpoints only)."""
        states = [s for o in self.opts.values() for s in o.state.values()]
        groups = {
            "weights": list(self.model.state_dict().values()),
            "optimizer state": [t for s in states for t in s.values() if torch.is_tensor(t)],
        }
        for what, tensors in groups.items():
            floats = [t.detach() for t in tensors if t.is_floating_point() and t.numel()]
            if floats and not bool(_all_finite(floats)):
                raise PushforwardError(
                    f"the {what} became non-finite by step {step} ({_kept(checkpoint)}); lower --lr"
                )

    def stop_on_nonfinite(self, checkpoint: Path) -> None:
        """--nan-policy stop: one line naming the first non-finite loss, before a checkpoint
        could hold it (the last one, ``checkpoint``, is kept)."""
        code = int(self.first_bad)
        if dist.active():  # the earliest over ranks, so that every rank stops at this same check
            code = -dist.max_across(-code if code >= 0 else -_NONE_BAD)
        if code < 0 or code >= _NONE_BAD:
            return
        schedule = self.model.schedule
        step, phase = divmod(code, len(schedule))
        raise PushforwardError(
            f"non-finite loss or gradients at step {step}, phase {schedule[phase]} "
            f"({_kept(checkpoint)}); "
            "lower --lr, or "
            "give --nan-policy skip to skip such steps"
        )


def _lr_as_tensors(opt: torch.optim.Optimizer, device: torch.device) -> None:
    """A compiled optimizer step takes its learning rate as a device tensor: a Python float
    would be baked into its graph, and a schedule would recompile it every step. Checkpoints
    store floats (training/checkpoint.py), so a resumed run converts again."""
    for group in opt.param_groups:
        if not torch.is_tensor(group["lr"]):
            group["lr"] = torch.tensor(float(group["lr"]), device=device)


def _all_finite(tensors: list[torch.Tensor]) -> torch.Tensor:
    """A device flag: every value of ``tensors`` is finite (one NaN or inf makes its tensor's
    norm non-finite), in one fused kernel and without a host sync."""
    return torch.isfinite(torch.stack(torch._foreach_norm(tensors))).all()


def _kept(checkpoint: Path) -> str:
    """What an error that stops training leaves: the last checkpoint's step, if any."""
    if checkpoint.exists():
        return f"checkpoint of step {read_json(checkpoint)['step']} kept"
    return "no checkpoint"


class StopSignals:
    """While training, SIGINT and SIGTERM only ask the loop to stop: it finishes the step,
    writes a checkpoint and raises Interrupted, so a kill from the keyboard or a scheduler
    loses nothing. Outside the main thread (signals cannot be caught there) it does nothing."""

    def __init__(self) -> None:
        self.signum = 0
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._catch)
        return self

    def _catch(self, signum: int, frame: object) -> None:
        self.signum = signum

    def asked(self, step: int, log_every: int) -> int:
        """The signal to stop at this step, agreed by every rank (on logging steps)."""
        if dist.active():
            return dist.max_across(self.signum) if step % log_every == 0 else 0
        return self.signum

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
