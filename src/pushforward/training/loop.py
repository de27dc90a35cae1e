"""Training: ONE loop for every gradient model, driven by the model's phases, and the EM path
for models fitted in closed form. Both write the run folder (run_folder.py).

A model lists its ``phases`` (VAE: ``main``; GAN: ``D`` and ``G``) and its ``schedule`` (the
phases of one step, e.g. ``D, D, G``). Each phase has its own optimizer; in a phase only that
phase's modules require gradients. The loop's parts are beside it: the budget and the phase
step in parts.py, the meter in log.py, validation in validation.py, resuming in checkpoint.py.

May import, of this package: config, data, dist, errors, limits, metrics/health, models,
models/gmm, models/saved, plots, recipes, run, run_folder, training/checkpoint, training/frames,
training/log, training/parts, training/prepare, training/validation.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .. import dist, plots, recipes
from ..config import TrainConfig
from ..data import Batch, Dataset
from ..errors import Interrupted, PushforwardError
from ..limits import keep_freed_memory, out_of_memory
from ..metrics.health import failure_line, health
from ..models import MODELS, FitsByEM, Model
from ..models.saved import save_model
from ..run import Run
from ..run_folder import (
    BEST,
    CHECKPOINTS,
    HISTORY,
    LAST,
    LAST_JSON,
    SAMPLES,
    SNAPSHOTS,
    TENSORBOARD,
    WEIGHTS,
    WEIGHTS_META,
    claim,
    clear_run,
    lock,
    resumable,
    run_finished,
    unlock,
    write_config,
)
from .checkpoint import resume_from
from .checkpoint import save_checkpoint as save_state
from .em_fit import em_resume_point, fit_em
from .frames import Snapshots, resolve_count
from .log import Logger, Meter
from .parts import Budget, PhaseStep, Position, StopSignals, batches, shard_loader
from .prepare import Prepared, build_model, prepare_data
from .validation import Validation, score_name


def _model_class(name: str) -> type[Model]:
    if name not in MODELS:
        raise PushforwardError(f"model {name!r} is not known; choose one of {', '.join(MODELS)}")
    return MODELS[name]


@contextlib.contextmanager
def _training(bar: Any, model: Model) -> Iterator[None]:
    """The model in training mode; however the loop ends, the progress bar closed and no phase
    left frozen."""
    model.train()
    try:
        yield
    finally:
        bar.close()
        model.requires_grad_(True)


FINISHED_BEFORE = "finished_before"  # what fit_gradient adds when the run had already ended


def fit_gradient(
    model: Model,
    data: Dataset,
    tcfg: TrainConfig,
    run_dir: Path,
    log: Logger,
    progress: Callable[..., Any],
    snaps: Snapshots,
    resume: bool = False,
    val: Batch | None = None,
) -> dict[str, Any]:
    """The one gradient loop: for each step, each phase of the schedule takes a batch, its loss
    and a step of its own optimizer. ``resume`` continues from checkpoints/last.*, so the weights
    end bit-identical to an uninterrupted run. ``val`` (--validation's examples, and labels) is scored at
    every checkpoint, the best weights kept; --patience ends the run early."""
    # what a step needs: the batches, the budget, the optimizers and the phase step
    ckpt = run_dir / CHECKPOINTS
    labels = data.train_labels if model.classes else None  # only a conditional model's
    loader = shard_loader(data.train.to(model.device), tcfg, labels, model.device)
    budget = Budget.of(tcfg, len(loader), len(model.schedule))
    opts = model.optimizers()
    phase_step = PhaseStep(model, opts, model.device, tcfg)
    validation = Validation(val, tcfg.patience, ckpt / BEST, model.device, bool(model.classes))
    at = Position(per_epoch=len(loader))

    # a resumed run starts where its checkpoint left off; rows logged after it are dropped
    if resume and resume_from(
        ckpt, run_dir / HISTORY, model, opts, tcfg.seed, at, budget, validation
    ):
        return {**_summary(at, validation, model), FINISHED_BEFORE: True}
    clock = at.start_clock()
    budget.start(opts, clock)
    snaps.begin(budget.total, budget.minutes, at.step, at.seconds)
    stream, meter = batches(loader, at.batches), Meter(model, phase_step.skip, since=clock)
    bar = progress(total=budget.total, initial=at.step)

    def checkpoint() -> None:
        phase_step.check_state(at.step, ckpt / LAST_JSON)  # every rank: they hold the same
        if dist.is_main():
            save_state(ckpt, model, opts, at.checkpoint(budget.total, validation.best))

    with StopSignals() as stop, _training(bar, model):
        while budget.more(at.step):
            _step(at, budget, opts, stream, phase_step, meter)
            bar.update(1)
            snaps.maybe(at.step, at.seconds)
            scores = _check(at, tcfg, budget, phase_step, validation, ckpt / LAST_JSON)
            last = at.step == budget.total
            # the log row, the checkpoint, and a stop asked for by a signal
            if at.step % tcfg.log_every == 0 or last or scores is not None:
                _log_row(meter, at, log, bar, scores or {})
            if at.step % tcfg.checkpoint_every == 0 or last:
                checkpoint()
            asked = stop.asked(at.step, tcfg.log_every)
            if asked and not last:
                checkpoint()
                dist.barrier()
                raise Interrupted(asked, at.step)
        snaps.finish(at.step, at.seconds)
    return _summary(at, validation, model)


def _step(
    at: Position,
    budget: Budget,
    opts: dict[str, torch.optim.Optimizer],
    stream: Iterator[Batch],
    phase_step: PhaseStep,
    meter: Meter,
) -> None:
    """One training step: every phase of the schedule on a batch of its own."""
    at.step += 1
    budget.set_lr(opts, at.step)
    if budget.out_of_time():
        budget.total = at.step  # this step is the last: logged and saved
    for i, phase in enumerate(phase_step.model.schedule):
        batch = next(stream)
        out, bad = phase_step(phase, batch, at.step, i)
        meter.add(phase, out, bad, len(batch[0]))
        at.batches += 1
    meter.steps += 1


def _check(
    at: Position,
    tcfg: TrainConfig,
    budget: Budget,
    phase_step: PhaseStep,
    validation: Validation,
    last_json: Path,
) -> dict[str, Any] | None:
    """The checks of a logging or checkpoint step: a non-finite loss stops the run before a
    checkpoint could hold it; at a checkpoint, validation keeps the best weights and may end
    the run (this step is then the last, logged and saved). Returns the row's validation
    numbers when it scored."""
    at_checkpoint = at.step % tcfg.checkpoint_every == 0 or at.step == budget.total
    if at.step % tcfg.log_every == 0 or at_checkpoint:
        phase_step.stop_on_nonfinite(last_json)
    if validation.val is None or not at_checkpoint:
        return None
    score = validation(phase_step.model, at.step)
    if validation.exhausted:
        budget.total = at.step  # early stop
    return {score_name(phase_step.model): score, "best_step": validation.best["step"]}


def _log_row(meter: Meter, at: Position, log: Logger, bar: Any, extra: dict[str, Any]) -> None:
    """The means since the last row, with ``extra`` (the validation score), into metrics.jsonl
    and the progress bar."""
    row = meter.row(step=at.step, epoch=round(at.epoch, 4), seconds=round(at.seconds, 3))
    row.update(extra)
    log(row)
    loss = "skipped" if row["loss"] is None else f"{row['loss']:.4g}"
    bar.set_postfix(loss=loss, img_s=f"{row['images_per_sec']:.0f}")


def _summary(at: Position, validation: Validation, model: Model) -> dict[str, Any]:
    """What model.json records of the training, after the best validated weights are restored."""
    info = {"steps": at.step, "epochs": at.epoch, "seconds": at.seconds}
    return {**info, **validation.restore_best(model)}


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
    keep_freed_memory()  # CPU steps reuse freed memory instead of faulting in fresh pages
    cls = _model_class(model_name)
    if not tcfg.data:
        raise PushforwardError(
            "--data is required, e.g. --data ring8 (see `pushforward data list`)"
        )
    device = dist.resolve_device(tcfg.device)
    owns_group, finished = dist.setup(device, tcfg.dist_timeout), False
    try:
        run = _fit(cls, model_name, tcfg, mcfg, out, overwrite, progress, device)
        finished = True
        return run
    except RuntimeError as e:
        oom = out_of_memory(e, device)
        lost = None if oom or not owns_group else dist.lost_peer(e, tcfg.dist_timeout)
        if lost is not None:
            owns_group = False  # the group is broken: tearing it down can wait on the lost peer
        failed = oom or lost
        if failed is None:
            raise
        raise failed from None
    finally:
        if owns_group:
            dist.teardown(together=finished)


def _fit(
    cls: type[Model],
    model_name: str,
    tcfg: TrainConfig,
    mcfg: Any,
    out: str | Path | None,
    overwrite: bool,
    progress: bool,
    device: torch.device,
) -> Run:
    prep = prepare_data(cls, model_name, tcfg, mcfg)
    tcfg, mcfg = prep.tcfg, prep.mcfg
    torch.manual_seed(tcfg.seed + dist.rank())
    model = build_model(cls, model_name, mcfg, prep.data, device)  # before the folder is touched
    frames = resolve_count(tcfg.snapshots, model, prep.data)
    # the run folder: continue the run in it, or claim it (rank 0) for a new one
    resuming = tcfg.resume and resumable(out, model_name, tcfg, mcfg, prep.data)
    if resuming and issubclass(cls, FitsByEM) and run_finished(Path(str(out))):
        return Run.load(str(out), tcfg.device)  # a finished run is left as it is, eval.json too
    run_dir = Path(str(out)) if resuming else claim(out, model_name, tcfg.data, overwrite)
    lock(run_dir)  # claim took it already; a resume takes it here
    try:
        snaps = Snapshots(run_dir / SNAPSHOTS, model, prep.raw, prep.data, frames, tcfg.seed)
        return _train_in(run_dir, model_name, model, prep, progress, resuming, snaps)
    except (PushforwardError, RuntimeError):
        # a new run that stopped before its first checkpoint has nothing to resume: its files
        # would only block the corrected command ("already holds a run")
        if not resuming and dist.is_main() and not (run_dir / CHECKPOINTS / LAST).exists():
            clear_run(run_dir)
        raise
    finally:
        unlock(run_dir)


def _train_in(
    run_dir: Path,
    model_name: str,
    model: Model,
    prep: Prepared,
    progress: bool,
    resuming: bool,
    snaps: Snapshots,
) -> Run:
    """Train ``model`` in the locked ``run_dir`` on the prepared data, taking ``snaps``; then
    save it, its samples and its health."""
    raw, data, val, tcfg = prep.raw, prep.data, prep.val, prep.tcfg
    device = model.device
    if dist.is_main() and not resuming:
        write_config(run_dir, model_name, model, tcfg, data, device)
    log = Logger(run_dir / HISTORY, run_dir / TENSORBOARD if tcfg.tensorboard else None)
    bar = partial(
        tqdm,
        desc=f"{model_name} {tcfg.data}",
        # None: drawn on a terminal only, so a log file (or an error after it) holds no bar
        disable=None if progress and dist.is_main() else True,
        leave=False,
    )
    try:
        if isinstance(model, FitsByEM):
            ckpt = run_dir / CHECKPOINTS
            at = em_resume_point(ckpt, run_dir / HISTORY, model) if resuming else None
            info = fit_em(model, data.train.to(device), tcfg, log, bar, snaps, ckpt, at)
        else:
            held = None if val is None else (val, prep.val_labels)
            info = fit_gradient(model, data, tcfg, run_dir, log, bar, snaps, resuming, held)
    finally:
        log.close()
    if info.pop(FINISHED_BEFORE, False) and run_finished(run_dir):
        # a finished run resumed (its checkpoint checked): its files are read, never rewritten
        return Run.load(run_dir, tcfg.device)
    run = Run(run_dir, model_name, model, tcfg, raw, data)
    if dist.is_main():
        info["health"], info["warnings"] = health(model, raw, data, run.history())
        if info["warnings"]:  # one line: what failed and what to try
            line = failure_line(model_name, tcfg.data, info["warnings"])
            print(f"warning: {line}", file=sys.stderr)
        save_model(run_dir / WEIGHTS, run_dir / WEIGHTS_META, model_name, model, info)
        n = 1000 if data.kind == "points" else 64
        title = f"{model_name} samples"
        png = plots.samples_figure(
            run.sample(n, seed=tcfg.seed), data.train[:20000].cpu(), title, data.log_prob
        )
        plots.write(run_dir / SAMPLES, png)
    # no barrier here: the other ranks would wait on rank 0's health checks, which can take
    # longer than --dist-timeout (a first run trains its feature classifier)
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
    tcfg, mcfg = recipes.resolve_options(
        model, (TrainConfig, cls.Config), options, config_file, list(sets)
    )
    return fit(model, tcfg, mcfg, out, overwrite=overwrite, progress=progress)
