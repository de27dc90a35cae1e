"""The one job runner: train a run, score it, and remember both in the run folder, one process
or several. The experiments, ``demo`` and ``bench`` all train through it.

A job names its scorer (``SCORERS``); every scorer reads its numbers through ``Run.evaluate``
and so through the metric registry.

May import, of this package: data, errors, experiments/base, files, metrics, metrics/features,
run, run_folder, training/loop.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..errors import PushforwardError
from ..files import atomic_write_json, read_json
from ..metrics import MODE_SAMPLES
from ..run import Run
from ..run_folder import EXPERIMENT_DONE, EXPERIMENT_TRAINED
from ..training.loop import train
from .base import Settings


@dataclass(frozen=True)
class Job:
    """One training run and how it is scored (a name in SCORERS, with its arguments)."""

    model: str
    folder: str
    options: dict[str, Any]
    score: str
    score_args: dict[str, Any] = field(default_factory=dict)


def _score_modes(run: Run, seed: int = 0, temperature: float = 1.0) -> dict[str, Any]:
    """PacGAN's mode coverage of 2,500 samples drawn with ``seed``, and their spread about the
    modes; at a ``temperature`` other than 1, also the scores as trained (``as_trained``)."""

    def at(t: float) -> dict[str, Any]:
        scores = run.evaluate(["modes"], n_fake=MODE_SAMPLES, seed=seed, temperature=t, write=False)
        return {k: scores[k] for k in ("modes", "hq_fraction", "reverse_kl_modes", "hq_spread")}

    return at(1.0) if temperature == 1 else {**at(temperature), "as_trained": at(1.0)}


def _sizes(run: Run) -> dict[str, Any]:
    return {
        "sampler_parameters": run.model.sampler_parameters(),
        "parameters": run.model.n_parameters(),
    }


def _score_images(run: Run, n_fake: int = 10_000, nll: bool = False) -> dict[str, Any]:
    """Sample quality against the test images (feature metrics), the model's size, and with
    ``nll`` its held-out NLL (an explicit density: on the discrete pixels' scale, in bits/dim)."""
    scores = run.evaluate(["features", *(["nll"] if nll else [])], n_fake=n_fake, write=False)
    return {
        **{k: v for k, v in scores.items() if k not in ("split", "data", "seed")},
        **_sizes(run),
    }


FEATURE_KEYS = ("fd", "precision", "recall", "density", "coverage", "class_kl")


def _score_vae(
    run: Run, n_real: int = 2000, k: int = 1000, n_fake: int = 10_000, features: bool = True
) -> dict[str, Any]:
    """Test NLL (IWAE-k on the first n_real test images), the ELBO, the latent diagnostics, and
    the sample metrics with z from the prior and from the ex-post GMM."""
    scores = run.evaluate(["nll", "elbo", "latent"], n_real=n_real, k=k, n_fake=n_fake, write=False)
    if features:
        for sampler in ("prior", "gmm"):
            f = run.evaluate(["features"], n_fake=n_fake, sampler=sampler, write=False)
            scores.update({f"{key}_{sampler}": v for key, v in f.items() if key in FEATURE_KEYS})
            scores.update({key: v for key, v in f.items() if key.endswith("_floor")})
    return scores


def _score_all(run: Run, **options: Any) -> dict[str, Any]:
    """Every metric that applies (written to the run's eval.json), the model's size, and the
    warning training gave if the model visibly failed."""
    scores = {**run.evaluate(**options), "parameters": run.model.n_parameters()}
    warning = run.warning()
    return {**scores, "warning": warning} if warning else scores


SCORERS: dict[str, Callable[..., dict[str, Any]]] = {
    "modes": _score_modes,
    "images": _score_images,
    "vae": _score_vae,
    "all": _score_all,
}


def _job_key(job: Job) -> Any:
    # the device is how, not what: a run trained on the GPU is reused on the CPU
    options = {k: v for k, v in job.options.items() if k != "device"}
    return json.loads(json.dumps([job.model, options, job.score, job.score_args]))


def _read_marker(path: Path) -> dict[str, Any]:
    try:
        out = read_json(path) if path.exists() else {}
    except PushforwardError:
        out = {}
    return out if isinstance(out, dict) else {}


def _do_job(job: Job, reuse: bool = True) -> dict[str, Any]:
    """Train and score one run. With ``reuse``, what an earlier attempt finished is kept: the
    scores of the identical job, or its trained model when only the scoring was interrupted,
    so an experiment run again redoes only what did not finish."""
    folder = Path(job.folder)
    key = _job_key(job)
    done = _read_marker(folder / EXPERIMENT_DONE)
    if reuse and done.get("job") == key:
        return done["scores"]  # type: ignore[no-any-return]
    trained = _read_marker(folder / EXPERIMENT_TRAINED)
    # how a run is scored does not change how it trained: same model and options, same run
    if reuse and (trained.get("job") or [None, None])[:2] == key[:2]:
        run = Run.load(folder, job.options.get("device", "auto"))
        seconds = trained["train_seconds"]
    else:
        start = time.perf_counter()
        run = train(job.model, out=job.folder, overwrite=True, progress=False, **job.options)
        seconds = round(time.perf_counter() - start, 1)
        atomic_write_json(folder / EXPERIMENT_TRAINED, {"job": key, "train_seconds": seconds})
    scores = {**SCORERS[job.score](run, **job.score_args), "train_seconds": seconds}
    atomic_write_json(folder / EXPERIMENT_DONE, {"job": key, "scores": scores})
    return scores


def _set_threads(n: int) -> None:
    torch.set_num_threads(n)


def run_jobs(
    jobs: list[Job], settings: Settings, desc: str, reuse: bool = True
) -> list[dict[str, Any]]:
    """Scores of every job, in order; ``settings.jobs`` processes share the cores evenly (one
    thread each on two cores: oversubscribed threads slow everything many-fold). ``reuse``
    False trains every job again (demo and bench measure the run they report)."""
    how = {"device": settings.device, "data_dir": settings.data_dir}
    jobs = [replace(j, options={**j.options, **how}) for j in jobs]
    do = partial(_do_job, reuse=reuse)
    if settings.jobs <= 1 or len(jobs) == 1:
        return [do(j) for j in tqdm(jobs, desc=desc, unit="run", disable=None)]
    threads = max(1, (os.cpu_count() or 1) // settings.jobs)
    with ProcessPoolExecutor(
        min(settings.jobs, len(jobs)),
        mp_context=get_context("spawn"),
        initializer=_set_threads,
        initargs=(threads,),
    ) as pool:
        futures = [pool.submit(do, j) for j in jobs]
        try:
            for f in tqdm(
                as_completed(futures), total=len(futures), desc=desc, unit="run", disable=None
            ):
                f.result()  # the first failure stops the experiment, not the last
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # finished runs stay reusable
            raise
        return [f.result() for f in futures]


def need_classifier(data: str, settings: Settings) -> None:
    """Train (or load) the feature classifier once, before workers that would each train it."""
    from ..data import load_dataset
    from ..metrics.features import classifier_for

    classifier_for(load_dataset(data, settings.data_dir))
