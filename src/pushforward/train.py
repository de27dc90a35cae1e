"""Training: ONE loop for every network model, driven by the model's phases, and the EM path
for closed-form models. Both write the run folder of INTERFACE.md.

A model lists its ``phases`` (VAE: ``main``; GAN: ``D`` and ``G``) and, optionally, a
``schedule`` (the phases of one step, e.g. ``D, D, G``). Each phase has its own optimizer; in a
phase only that phase's modules require gradients. Losses stay on the device and are read back
only on logging steps, so the loop never waits on the host in between.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from . import __version__, dist, plots
from .checkpoint import (
    append_jsonl,
    atomic_write_bytes,
    atomic_write_json,
    load_tensors,
    load_tensors_and_metadata,
    read_json,
    read_jsonl,
    save_tensors,
    to_json,
)
from .config import TrainConfig, as_dict, resolve
from .data import Dataset, InMemoryLoader, load_dataset
from .errors import Interrupted, PushforwardError
from .metrics import likelihood
from .models import MODELS
from .models.gmm import DEFAULT_EM_STEPS
from .runs import (
    CHECKPOINTS,
    CONFIG,
    HISTORY,
    SAMPLES,
    Run,
    binarize,
    clear_run,
    resolve_binarize,
    save_model,
)

DEFAULT_EPOCHS = 10
BEST = "best.safetensors"  # in checkpoints/: the weights of the best --validation score
CHECKPOINT_FORMAT = 1  # bump when checkpoints/last.* changes meaning


def _model_class(name: str) -> Any:
    if name not in MODELS:
        raise PushforwardError(f"model {name!r} is not known; choose one of {', '.join(MODELS)}")
    return MODELS[name]


def default_run_dir(model: str, data: str) -> Path:
    """runs/<model>-<data>, numbered when taken, so a new run never lands on an old one."""
    stem = f"{model}-" + "".join(
        c if c.isalnum() or c in "-_" else "_" for c in data.split("/")[-1]
    )
    path, i = Path("runs") / stem, 2
    while path.exists():
        path, i = Path("runs") / f"{stem}-{i}", i + 1
    return path


def _resumable(out: str | Path | None, model_name: str, tcfg: TrainConfig, mcfg: Any) -> bool:
    """True when ``out`` holds a run this command can continue; False when it holds none yet
    (then --resume starts it). A run of other options is an error: resuming it with these would
    silently train something else."""
    if out is None:
        raise PushforwardError("--resume continues a run: name its folder with --out RUN")
    saved_path = Path(out) / CONFIG
    if not saved_path.exists():
        return False
    saved = read_json(saved_path)
    mine = json.loads(to_json({"train": as_dict(tcfg), "model_config": as_dict(mcfg)}))
    if saved.get("model") != model_name:
        raise PushforwardError(
            f"--resume: {out} holds a {saved.get('model')!r} run, not {model_name!r}; "
            f"run `pushforward train {saved.get('model')} ... --resume` or choose another --out"
        )
    # how to run and report, not what is trained (but under --validation the checkpoints are
    # when the held-out score is taken, which picks the weights kept and when patience ends)
    how = {"resume", "device", "tensorboard", "log_every"}
    if not tcfg.validation:
        how.add("checkpoint_every")
    for part in ("train", "model_config"):
        for key, value in mine[part].items():
            if key not in how and saved.get(part, {}).get(key) != value:
                raise PushforwardError(
                    f"--resume: {out} was started with {key}={saved.get(part, {}).get(key)!r}, "
                    f"not {value!r}; give the options it started with"
                )
    return True


def _claim_run_dir(out: str | Path | None, model: str, data: str, overwrite: bool) -> Path:
    path = Path(out) if out else default_run_dir(model, data)
    if (path / CONFIG).exists() and not overwrite:
        raise PushforwardError(
            f"--out {path}: already holds a run; choose another --out or delete it"
        )
    if path.exists() and not path.is_dir():
        raise PushforwardError(f"--out {path}: is a file; choose a folder")
    if path.is_dir():
        clear_run(path)
    try:
        (path / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PushforwardError(
            f"--out {path}: cannot create ({e.strerror}); choose a writable folder"
        ) from None
    return path


class _Logger:
    """metrics.jsonl rows (and TensorBoard scalars when asked), from rank 0 only."""

    def __init__(self, run_dir: Path, tensorboard: bool) -> None:
        self.path, self.writer = run_dir / HISTORY, None
        if tensorboard and dist.is_main():
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise PushforwardError(
                    "--tensorboard needs the tensorboard package: pip install tensorboard"
                ) from None
            self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def __call__(self, row: dict[str, Any]) -> None:
        if not dist.is_main():
            return
        append_jsonl(self.path, row)
        if self.writer is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.writer.add_scalar(k, v, row["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _fit_em(
    model: Any, x: torch.Tensor, tcfg: TrainConfig, log: _Logger, progress: bool
) -> dict[str, Any]:
    """EM on the full training tensor, one metrics.jsonl row per iteration."""
    if tcfg.epochs is not None:
        raise PushforwardError(
            "--epochs does not apply to gmm (EM uses all data each step); use --steps"
        )
    if tcfg.precision != "fp32":
        raise PushforwardError(
            "--precision applies to network models; gmm's EM arithmetic is set by --dtype"
        )
    steps = tcfg.steps if tcfg.steps is not None else DEFAULT_EM_STEPS
    bar = tqdm(
        total=steps,
        desc=f"gmm {tcfg.data}",
        disable=not progress or not dist.is_main(),
        leave=False,
    )
    start = time.perf_counter()

    def on_iteration(it: int, ll: float) -> bool:
        bar.update(1)
        bar.set_postfix(loglik=f"{ll:.4f}")
        seconds = time.perf_counter() - start
        log(
            {
                "step": it,
                "epoch": it,
                "loss": -ll,
                "log_likelihood": ll,
                "seconds": round(seconds, 4),
            }
        )
        return tcfg.minutes is not None and seconds >= 60 * tcfg.minutes  # stop: out of time

    info = model.fit(
        x, max_iter=steps, generator=torch.Generator().manual_seed(tcfg.seed), callback=on_iteration
    )
    bar.close()
    info["seconds"] = time.perf_counter() - start
    return info


def _batches(loader: InMemoryLoader, consumed: int = 0) -> Iterator[torch.Tensor]:
    """An endless stream of batches, epoch after epoch, starting after the first ``consumed``
    (so a resumed run sees exactly the batches an uninterrupted one would)."""
    epoch, skip = divmod(consumed, len(loader))
    while True:
        yield from loader.epoch(epoch, skip)
        epoch, skip = epoch + 1, 0


def _train_only(model: Any, phase: str) -> None:
    """Gradients flow into this phase's modules only (the G step must not train D)."""
    for p in model.phases:
        for m in model.phase_modules(p):
            m.requires_grad_(p == phase)


class _PhaseLoss(torch.nn.Module):
    """One phase's loss as a module holding only that phase's networks, so DDP wraps the
    generator and the discriminator separately and all-reduces only the gradients of the phase
    that steps."""

    def __init__(self, model: Any, phase: str) -> None:
        super().__init__()
        self.parts = torch.nn.ModuleList(model.phase_modules(phase))
        self.__dict__["model"] = model  # not registered: its other networks stay out of DDP
        self.phase = phase

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        model: Any = self.__dict__["model"]
        return model.loss(x, self.phase)  # type: ignore[no-any-return]


def _phase_losses(model: Any, device: torch.device, compile: bool) -> dict[str, Any]:
    """phase -> callable(x) -> loss dict: the model's own loss in one process, a DDP-wrapped
    one under torchrun; torch.compile'd when asked."""
    losses = _wrapped_losses(model, device)
    return {p: torch.compile(f) for p, f in losses.items()} if compile else losses


def _wrapped_losses(model: Any, device: torch.device) -> dict[str, Any]:
    if not dist.active():
        return {p: _PhaseLoss(model, p) for p in model.phases}
    from torch.nn.parallel import DistributedDataParallel

    # every tensor, not only the wrapped ones, starts as rank 0's (the EMA copy of G included)
    for t in model.state_dict().values():
        torch.distributed.broadcast(t, 0)
    ids = [device.index] if device.type == "cuda" else None
    return {p: DistributedDataParallel(_PhaseLoss(model, p), device_ids=ids) for p in model.phases}


@contextlib.contextmanager
def _closing(bar: Any, model: Any) -> Iterator[None]:
    """However the loop ends: close the progress bar and leave no phase frozen."""
    try:
        yield
    finally:
        bar.close()
        model.requires_grad_(True)


def _step_unless(opt: torch.optim.Optimizer, bad: torch.Tensor) -> None:
    """Step unless ``bad``: the fused kernel takes the flag on the device (GradScaler's
    found_inf), so skipping costs no host sync; other optimizers read it back."""
    if opt.defaults.get("fused"):
        opt.found_inf = bad.float()  # type: ignore[attr-defined]
        opt.step()
        opt.found_inf = None  # type: ignore[attr-defined]
    elif not bool(bad):
        opt.step()


def _stop_on_nonfinite(first_bad: torch.Tensor, schedule: tuple[str, ...], run_dir: Path) -> None:
    """--nan-policy stop: one line naming the first non-finite loss; last.* is not overwritten."""
    code = int(first_bad)
    if dist.active():  # the earliest over ranks, so that every rank stops at this same check
        code = -dist.max_across(-code if code >= 0 else -(2**62))
    if code < 0 or code >= 2**62:
        return
    step, phase = divmod(code, len(schedule))
    ckpt = run_dir / CHECKPOINTS / "last.json"
    kept = (
        f"checkpoint of step {read_json(ckpt)['step']} kept" if ckpt.exists() else "no checkpoint"
    )
    raise PushforwardError(
        f"non-finite loss at step {step}, phase {schedule[phase]} ({kept}); lower --lr, or "
        "give --nan-policy skip to skip such steps"
    )


class _StopSignals:
    """While training, SIGINT and SIGTERM only ask the loop to stop: it finishes the step,
    writes a checkpoint and raises Interrupted, so a kill from the keyboard or a scheduler
    loses nothing. Outside the main thread (signals cannot be caught there) it does nothing."""

    def __init__(self) -> None:
        self.signum = 0
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._catch)
        return self

    def _catch(self, signum: int, frame: object) -> None:
        self.signum = signum

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Every random-number state a step may touch: torch (CPU and CUDA), numpy and Python."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    kind, keys, pos, has_gauss, gauss = np.random.get_state()  # type: ignore[misc]
    tensors["rng.numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    py_version, py_state, py_gauss = random.getstate()
    meta = {
        "numpy": [kind, int(pos), int(has_gauss), float(gauss)],
        "python": [py_version, list(py_state), py_gauss],
    }
    return tensors, meta


def _set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    kind, pos, has_gauss, gauss = meta["numpy"]
    keys = tensors["rng.numpy"].numpy().astype(np.uint32)
    np.random.set_state((kind, keys, pos, has_gauss, gauss))
    py_version, py_state, py_gauss = meta["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))


def _save_checkpoint(
    run_dir: Path, model: Any, opts: dict[str, torch.optim.Optimizer], meta: dict[str, Any]
) -> None:
    """checkpoints/last.*: every tensor (weights, optimizer moments, RNG) in safetensors, with
    the rest (step, batches consumed, optimizer hyper-parameters, numpy and Python RNG) as JSON
    in the same file's header, so one atomic write holds a consistent checkpoint; last.json
    repeats that JSON for people to read. Nothing is pickled."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    rng_tensors, rng_meta = _rng_state()
    tensors.update(rng_tensors)
    groups = {}
    for phase, opt in opts.items():
        sd = opt.state_dict()
        groups[phase] = sd["param_groups"]
        for pid, state in sd["state"].items():
            for k, v in state.items():
                tensors[f"opt.{phase}.{pid}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    full = {
        **meta,
        "optimizer_param_groups": groups,
        "rng": rng_meta,
        "version": __version__,
        "format": CHECKPOINT_FORMAT,
    }
    save_tensors(run_dir / CHECKPOINTS / "last.safetensors", tensors, {"checkpoint": to_json(full)})
    atomic_write_json(run_dir / CHECKPOINTS / "last.json", {**full, "rng": "in last.safetensors"})


def _load_checkpoint(
    run_dir: Path, model: Any, opts: dict[str, torch.optim.Optimizer]
) -> dict[str, Any]:
    """Put a run back in the state of its checkpoint: weights, optimizer state, RNG; returns the
    checkpoint's JSON (step, batches consumed, ...)."""
    path = run_dir / CHECKPOINTS / "last.safetensors"
    tensors, header = load_tensors_and_metadata(path)
    try:
        meta = json.loads(header["checkpoint"])
    except (KeyError, json.JSONDecodeError):
        meta = {}
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise PushforwardError(
            f"{path}: checkpoint format {meta.get('format')} (pushforward "
            f"{meta.get('version', 'unknown')}), but this version {__version__} resumes format "
            f"{CHECKPOINT_FORMAT}; resume with the version that wrote it or start a new run"
        )
    try:
        weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        model.load_state_dict(weights)
        for phase, opt in opts.items():
            prefix = f"opt.{phase}."
            state: dict[int, dict[str, torch.Tensor]] = {}
            for k, v in tensors.items():
                if k.startswith(prefix):
                    pid, name = k[len(prefix) :].split(".", 1)
                    state.setdefault(int(pid), {})[name] = v
            opt.load_state_dict(
                {"state": state, "param_groups": meta["optimizer_param_groups"][phase]}
            )
        _set_rng_state(tensors, meta["rng"])
    except (KeyError, ValueError, RuntimeError, TypeError, json.JSONDecodeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise PushforwardError(
            f"{path}: not a checkpoint of this run's model and options ({first}); "
            "start a new run without --resume"
        ) from None
    return meta  # type: ignore[no-any-return]


def _validation_split(
    data: Dataset, tcfg: TrainConfig, model_name: str, cls: Any
) -> tuple[Dataset, torch.Tensor | None]:
    """``--validation N``: N training examples, chosen by a fixed shuffle (the same for every
    seed), leave the training set; under dynamic binarization they are binarized once, like the
    test split, so their score moves only with the weights."""
    n = tcfg.validation
    if tcfg.patience is not None and (n == 0 or tcfg.patience < 1):
        raise PushforwardError(
            f"--patience {tcfg.patience}: needs --validation N and a patience of at least 1"
        )
    if n == 0:
        return data, None
    if not hasattr(cls, "elbo"):
        raise PushforwardError(
            f"--validation scores held-out examples by a likelihood bound; {model_name} has "
            "none to score: use it with vae"
        )
    if not 0 < n < len(data.train):
        raise PushforwardError(
            f"--validation {n}: give between 1 and {len(data.train) - 1} examples "
            f"({data.name} has {len(data.train)} for training)"
        )
    held = torch.zeros(len(data.train), dtype=torch.bool)
    held[torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))[:n]] = True
    val = data.train[held]  # [n, *shape]
    if tcfg.binarize == "dynamic":
        val = torch.bernoulli(val.cpu(), generator=torch.Generator().manual_seed(2)).to(val)
    return replace(data, train=data.train[~held]), val


@torch.no_grad()
def _validate(model: Any, val: torch.Tensor) -> float:
    """Mean bound of the validation examples under the current weights: the ELBO, or IWAE-K
    for a model trained on that bound (``iw_samples`` K > 1), whose ELBO may fall as its
    likelihood rises. Eval mode and fixed noise (the test metrics' own), so the score changes
    only with the weights and the training RNG is left alone."""
    was = model.training
    model.eval()
    k = getattr(model.config, "iw_samples", 1)
    if k > 1:
        score = -likelihood.iwae(model, val, k=k, seed=0)["nll_nats"]
    else:
        score = likelihood.elbo(model, val, seed=0)["elbo"]
    model.train(was)
    return float(dist.mean_across(torch.tensor(score, device=val.device)))


def _fit_gradient(
    model: Any,
    data: Dataset,
    tcfg: TrainConfig,
    run_dir: Path,
    log: _Logger,
    device: torch.device,
    progress: bool,
    resume: bool = False,
    val: torch.Tensor | None = None,
) -> dict[str, Any]:
    """The one gradient loop: for each step, each phase of the schedule takes a batch, its loss,
    and a step of its own optimizer. ``resume`` continues from checkpoints/last.* (weights,
    optimizer, RNG, batches consumed), so the weights end bit-identical to an uninterrupted run.
    With ``val`` (examples held out by --validation), every checkpoint scores them and the best
    weights so far go to checkpoints/best.safetensors; --patience ends the run early."""
    val = val.to(device) if val is not None else None  # [n, *shape], moved once
    loader = InMemoryLoader(
        data.train.to(device),
        tcfg.batch_size,
        tcfg.seed,
        rank=dist.rank(),
        world=dist.world_size(),
        dynamic_binarize=tcfg.binarize == "dynamic",
    )
    schedule = tuple(getattr(model, "schedule", model.phases))
    if tcfg.steps is not None and tcfg.epochs is not None:
        raise PushforwardError("give --steps or --epochs, not both")
    if tcfg.steps is not None:
        total = tcfg.steps
    elif tcfg.minutes is not None:
        total = 2**62  # the clock ends the run
    else:
        total = math.ceil(
            (tcfg.epochs if tcfg.epochs is not None else DEFAULT_EPOCHS)
            * len(loader)
            / len(schedule)
        )
    if total < 1:
        raise PushforwardError(
            "the training budget is empty; give --steps or --epochs of at least 1"
        )
    if tcfg.log_every < 1 or tcfg.checkpoint_every < 1:
        raise PushforwardError("--log-every and --checkpoint-every must be at least 1")
    opts = model.optimizers()
    losses = _phase_losses(model, device, tcfg.compile)
    bf16 = tcfg.precision == "bf16"
    multi = len(model.phases) > 1
    step = batches = 0
    elapsed = 0.0  # training seconds before this process (a resumed run's earlier ones)
    # the best validation score, its step, and the validations since it (for --patience)
    best: dict[str, Any] = {"score": -math.inf, "step": 0, "since": 0}
    if resume and (run_dir / CHECKPOINTS / "last.safetensors").exists():
        meta = _load_checkpoint(run_dir, model, opts)
        step, batches, elapsed = meta["step"], meta["batches"], meta["seconds"]
        best = meta.get("best", best)
        if dist.rank() > 0:  # the checkpoint holds rank 0's RNG: the other ranks draw their own
            torch.manual_seed(tcfg.seed * 1_000_003 + dist.rank() * 7_919 + step)
        if meta["finished"]:
            return {
                "steps": step,
                "epochs": batches / len(loader),
                "seconds": elapsed,
                **_best_info(best, val),
            }
        total = meta["total_steps"]
    if resume and dist.is_main() and (run_dir / HISTORY).exists():
        # rows logged after the checkpoint (or before a first one) are logged again
        rows = [r for r in read_jsonl(run_dir / HISTORY) if r.get("step", 0) <= step]
        text = "".join(json.dumps(r) + "\n" for r in rows)
        atomic_write_bytes(run_dir / HISTORY, text.encode())
    if tcfg.lr_schedule == "cosine" and total >= 2**62:
        raise PushforwardError(
            "--lr-schedule cosine decays to 0 at the last step: give --epochs or --steps"
        )
    planned = total  # the schedule's length (a patience stop ends the run before it)
    for opt in opts.values():
        for group in opt.param_groups:  # a resumed run's groups come back with their initial_lr
            group.setdefault("initial_lr", group["lr"])
    stream = _batches(loader, batches)
    skip_bad = tcfg.nan_policy == "skip"
    first_bad = torch.tensor(-1, device=device)  # step * phases + phase of the first NaN loss
    sums: dict[str, Any] = {}
    count = seen = 0
    start = last = time.perf_counter() - elapsed
    bar = tqdm(
        total=total if total < 2**62 else None,
        desc=f"{type(model).__name__.lower()} {tcfg.data}",
        disable=not progress or not dist.is_main(),
        leave=False,
    )
    deadline = start + 60 * tcfg.minutes if tcfg.minutes is not None else math.inf
    model.train()
    bar.update(step)

    def checkpoint() -> None:
        meta = {
            "step": step,
            "epoch": batches / len(loader),
            "batches": batches,
            "seconds": time.perf_counter() - start,
            "finished": step == total,
            "total_steps": total,
            "best": best,
        }
        _save_checkpoint(run_dir, model, opts, meta)

    with _StopSignals() as stop, _closing(bar, model):
        while step < total:
            step += 1
            seen_phases: list[str] = []
            if tcfg.lr_schedule == "cosine":  # this step's rate, from the step alone
                factor = 0.5 * (1 + math.cos(math.pi * (step - 1) / planned))
                for opt in opts.values():
                    for group in opt.param_groups:
                        group["lr"] = group["initial_lr"] * factor
            if time.perf_counter() >= deadline:
                total = step  # out of time: this is the last step, logged and checkpointed
            for phase in schedule:
                x = next(stream)
                _train_only(model, phase)
                ctx = (
                    torch.autocast(device.type, dtype=torch.bfloat16)
                    if bf16
                    else contextlib.nullcontext()
                )
                with ctx:
                    out = losses[phase](x)
                opt = opts[phase]
                opt.zero_grad(set_to_none=True)
                out["loss"].backward()
                bad = ~torch.isfinite(out["loss"].detach())  # on the device: no sync
                if skip_bad:
                    bad = dist.any_across(bad)  # DDP averages one rank's NaN into every rank
                    _step_unless(opt, bad)
                else:
                    opt.step()
                    code = step * len(schedule) + len(seen_phases)
                    first_bad = torch.where(bad & (first_bad < 0), code, first_bad)
                seen_phases.append(phase)
                if hasattr(model, "after_step"):
                    model.after_step(phase)
                for k, v in out.items():
                    key = f"{phase}_{k}" if multi else k
                    v = v.detach().float()
                    if skip_bad:  # a skipped step's numbers stay out of the averages
                        v = torch.where(bad, 0.0, v)
                    sums[key] = sums[key] + v if key in sums else v
                sums["nonfinite"] = sums.get("nonfinite", 0) + bad.float()
                seen += len(x)
                batches += 1
            count += 1
            bar.update(1)
            if step % tcfg.log_every == 0 or step == total or step % tcfg.checkpoint_every == 0:
                _stop_on_nonfinite(first_bad, schedule, run_dir)  # before a bad checkpoint
            validated = False
            if val is not None and (step % tcfg.checkpoint_every == 0 or step == total):
                validated, score = True, _validate(model, val)
                if score > best["score"]:
                    best = {"score": score, "step": step, "since": 0}
                    if dist.is_main():  # before the checkpoint that names it
                        save_tensors(run_dir / CHECKPOINTS / BEST, model.state_dict())
                else:
                    best["since"] += 1
                if tcfg.patience is not None and best["since"] >= tcfg.patience:
                    total = step  # early stop: this step is the last, logged and checkpointed
            if step % tcfg.log_every == 0 or step == total or validated:
                now = time.perf_counter()
                keys = list(sums)
                means = dist.mean_across(torch.stack([sums[k] for k in keys]) / count)
                row: dict[str, Any] = dict(zip(keys, means.tolist(), strict=True))  # the host sync
                seen *= dist.world_size()
                if multi:
                    row["loss"] = row[f"{schedule[-1]}_loss"]
                row.update(
                    step=step,
                    epoch=round(batches / len(loader), 4),
                    seconds=round(now - start, 3),
                    images_per_sec=round(seen / (now - last), 1),
                )
                if validated:
                    row.update(val_elbo=score, best_step=best["step"])
                log(row)
                bar.set_postfix(loss=f"{row['loss']:.4g}", img_s=f"{row['images_per_sec']:.0f}")
                sums, count, seen, last = {}, 0, 0, now
            if (step % tcfg.checkpoint_every == 0 or step == total) and dist.is_main():
                checkpoint()
            asked = stop.signum
            if dist.active():  # every rank must agree to stop at the same step
                asked = dist.max_across(stop.signum) if step % tcfg.log_every == 0 else 0
            if asked and step < total:
                if dist.is_main():
                    checkpoint()
                dist.barrier()
                raise Interrupted(asked, step)
    return {
        "steps": total,
        "epochs": batches / len(loader),
        "seconds": time.perf_counter() - start,
        **_best_info(best, val),
    }


def _best_info(best: dict[str, Any], val: torch.Tensor | None) -> dict[str, Any]:
    if val is None:
        return {}
    return {"best_step": best["step"], "best_val_elbo": best["score"], "validation_n": len(val)}


def fit(
    model_name: str,
    tcfg: TrainConfig,
    mcfg: Any,
    out: str | Path | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> Run:
    """Train ``model_name`` with resolved configs and write its run folder; returns the Run."""
    cls = _model_class(model_name)
    if not tcfg.data:
        raise PushforwardError(
            "--data is required, e.g. --data ring8 (see `pushforward data list`)"
        )
    device = dist.resolve_device(tcfg.device)
    owns_group = dist.setup(device)
    try:
        return _fit(cls, model_name, tcfg, mcfg, out, overwrite, progress, device)
    finally:
        if owns_group:
            dist.teardown()


def _fit(
    cls: Any,
    model_name: str,
    tcfg: TrainConfig,
    mcfg: Any,
    out: str | Path | None,
    overwrite: bool,
    progress: bool,
    device: torch.device,
) -> Run:
    raw = load_dataset(tcfg.data, tcfg.data_dir, tcfg.test_data)
    if hasattr(cls, "resolve_config"):
        mcfg = cls.resolve_config(mcfg, raw.kind)
    tcfg = replace(tcfg, binarize=resolve_binarize(tcfg.binarize, mcfg, raw.kind))
    data, val = _validation_split(binarize(raw, tcfg.binarize), tcfg, model_name, cls)
    # rank 0 alone claims (and may clear) the folder; every rank learns where, or its error
    resuming = tcfg.resume and _resumable(out, model_name, tcfg, mcfg)
    if resuming and not cls.phases:  # EM is not checkpointed mid-fit: it refits from the start
        resuming, overwrite = False, True
    if resuming:
        run_dir = Path(str(out))
    else:
        run_dir = Path(
            dist.on_main(lambda: str(_claim_run_dir(out, model_name, tcfg.data, overwrite)))
        )
    torch.manual_seed(tcfg.seed + dist.rank())
    model = cls(mcfg, data.shape).to(device)
    if data.kind == "points" and hasattr(model, "standardize"):
        model.standardize.fit(data.train.to(device))
    if dist.is_main() and not resuming:
        atomic_write_json(
            run_dir / CONFIG,
            {
                "model": model_name,
                "version": __version__,
                "torch": torch.__version__,
                "train": as_dict(tcfg),
                "model_config": as_dict(mcfg),
                "data": {
                    "name": data.name,
                    "kind": data.kind,
                    "shape": list(data.shape),
                    "n_train": len(data.train),
                    "n_test": None if data.test is None else len(data.test),
                    "source": data.source,
                },
                "device": str(device),
                "world_size": dist.world_size(),
                "parameters": sum(p.numel() for p in model.parameters()),
            },
        )
    log = _Logger(run_dir, tcfg.tensorboard)
    try:
        if model.phases:
            info = _fit_gradient(model, data, tcfg, run_dir, log, device, progress, resuming, val)
            if val is not None:  # the run's model is the best validated one, not the last
                best_path = run_dir / CHECKPOINTS / BEST
                if best_path.exists():
                    model.load_state_dict(load_tensors(best_path))
        else:
            info = _fit_em(model, data.train.to(device), tcfg, log, progress)
            if dist.is_main():
                _save_checkpoint(run_dir, model, {}, {"step": info["iterations"], "finished": True})
    finally:
        log.close()
    run = Run(run_dir, model_name, model, tcfg, mcfg)
    run._raw, run._data = raw, data
    if dist.is_main():
        save_model(run_dir, model_name, model, mcfg, info)
        n = 1000 if data.kind == "points" else 64
        png = plots.samples_figure(
            run.sample(n, seed=tcfg.seed),
            data.train[:20000].cpu(),
            f"{model_name} samples",
            data.log_prob,
        )
        plots.write(run_dir / SAMPLES, png)
    dist.barrier()
    return run


def train(
    model: str,
    data: str | None = None,
    out: str | Path | None = None,
    *,
    config_file: str | None = None,
    sets: list[str] | tuple[str, ...] = (),
    overwrite: bool = False,
    progress: bool = True,
    **options: Any,
) -> Run:
    """Train from Python with the CLI's options as keywords, e.g.
    ``pushforward.train("vae", data="digits", epochs=5)``."""
    cls = _model_class(model)
    if data is not None:
        options["data"] = data
    tcfg, mcfg = resolve((TrainConfig, cls.Config), options, config_file, list(sets))
    return fit(model, tcfg, mcfg, out, overwrite=overwrite, progress=progress)
