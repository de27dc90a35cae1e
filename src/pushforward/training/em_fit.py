"""The GMM's fit in a run: EM with its metrics.jsonl rows, snapshots, checkpoints of its
parameters and resume, the time budget, and under torchrun the same stop on every process.
(The statistics each EM pass sums across processes are models/em.py's.)

May import, of this package: config, data, dist, models, run_folder, training/checkpoint,
training/frames, training/log.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .. import dist
from ..config import TrainConfig
from ..data import Examples
from ..models import FitsByEM, Model
from ..models.gmm import DEFAULT_EM_STEPS
from ..run_folder import LAST
from .checkpoint import load_checkpoint
from .checkpoint import save_checkpoint as save_state
from .frames import Snapshots
from .log import Logger, trim_history


def fit_em(
    model: FitsByEM,
    x: Examples,
    tcfg: TrainConfig,
    log: Logger,
    progress: Callable[..., Any],
    snaps: Snapshots | None = None,
    ckpt: Path | None = None,
    resume: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """EM on the training examples (in memory or read from disk), one metrics.jsonl row per
    iteration; under torchrun each process passes over its share, the statistics summed across
    them. The parameters go to ``ckpt``/last.* after the k-means start, every
    --checkpoint-every iterations and at the end; ``resume`` (a checkpoint's JSON) continues
    from one. --minutes stops EM before an iteration that would end past the budget (predicted
    by the last one: on 784-d full covariances one takes minutes), after at least one."""
    steps = tcfg.steps if tcfg.steps is not None else DEFAULT_EM_STEPS  # --minutes alone
    done, elapsed = (resume["step"], float(resume["seconds"])) if resume else (0, 0.0)
    if resume and resume["finished"]:  # the fit had ended: only its files are written again
        keys = ("iterations", "converged", "train_log_likelihood", "seconds")
        return {k: resume.get(k, done if k == "iterations" else elapsed) for k in keys}
    bar, start = progress(total=steps, initial=done), time.perf_counter() - elapsed
    last = [elapsed]  # seconds at the end of the previous iteration
    snaps = snaps or Snapshots.none()
    snaps.begin(steps, None, done, elapsed, first=False)

    def on_iteration(it: int, ll: float) -> bool:
        seconds = time.perf_counter() - start
        if it == 0 or it % tcfg.checkpoint_every == 0:
            _save(ckpt, model, {"step": it, "log_likelihood": ll, "seconds": seconds})
        if it == 0:  # the k-means start
            snaps.take(0, 0.0)
            return False
        bar.update(1)
        bar.set_postfix(loglik=f"{ll:.4f}")
        step_s, last[0] = seconds - last[0], seconds  # this iteration's time predicts the next
        row = {"step": it, "epoch": it, "loss": -ll, "log_likelihood": ll}
        log({**row, "seconds": round(seconds, 4)})
        snaps.maybe(it, seconds)
        # stop before the iteration that would run out of time (every process, when any would)
        late = tcfg.minutes is not None and seconds + step_s > 60 * tcfg.minutes
        return dist.max_across(int(late)) > 0

    ll = resume.get("log_likelihood") if resume else None
    at = None if resume is None else (done, ll if isinstance(ll, float) else -math.inf)
    with contextlib.closing(bar):
        info = model.fit(x, steps, torch.Generator().manual_seed(tcfg.seed), on_iteration, at)
    snaps.finish(int(info["iterations"]), last[0])
    info = {**info, "seconds": time.perf_counter() - start}
    _save(ckpt, model, {**info, "step": int(info["iterations"]), "finished": True})
    return info


def _save(ckpt: Path | None, model: FitsByEM, meta: dict[str, Any]) -> None:
    """EM's parameters and where it is (``meta``: step, seconds, ...) to ``ckpt``/last.*, from
    rank 0 (every rank holds the same parameters)."""
    if ckpt is None or not dist.is_main():
        return
    assert isinstance(model, Model)  # its parameters are a module's buffers
    ll = meta.get("log_likelihood", meta.get("train_log_likelihood"))
    meta = {"batches": 0, "finished": False, **meta}
    meta["log_likelihood"] = ll if isinstance(ll, float) and math.isfinite(ll) else None
    save_state(ckpt, model, {}, meta)


def em_resume_point(ckpt: Path, history: Path, model: Model) -> dict[str, Any] | None:
    """The JSON of a GMM run's checkpoint (step, log-likelihood, seconds, finished), its
    parameters loaded into ``model`` and the rows of ``history`` logged after it dropped; None
    when the run was killed before its first checkpoint (then it starts over)."""
    if not (ckpt / LAST).exists():
        trim_history(history, 0)
        return None
    meta = load_checkpoint(ckpt, model, {})
    trim_history(history, meta["step"])
    return meta
