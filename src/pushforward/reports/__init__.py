"""``pushforward demo`` and ``pushforward bench``: train several models, score every metric that
applies, and write one report (reports/page.py) beside the runs.

``demo`` fits each model on each set it declares options for (``Model.demo``) on embedded data,
in minutes on two cores; ``bench`` trains the chosen models for the same wall-clock budget.

May import the registries, the experiments' job runner and the Run handle; imported by cli.py.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..data import load_dataset
from ..errors import PushforwardError
from ..experiments.base import Settings
from ..experiments.runner import Job, run_jobs
from ..files import safe_name
from ..models import MODELS
from ..run import Run
from .page import write_report

DEMO_DATA = ("ring8", "digits")  # the demo's sets: a 2-D mode set and the bundled digits
# (data, model, options): what the demo fits, each model on each set it declares options for
# (``Model.demo``). Budgets are sized for 2 CPU cores (< 3 minutes in all).
DEMO_PLAN: list[tuple[str, str, dict[str, Any]]] = [
    (data, name, dict(cls.demo[data]))
    for data in DEMO_DATA
    for name, cls in MODELS.items()
    if data in cls.demo
]

DEMO_IWAE_K = 250  # importance samples of the VAE's bound in the demo (eval's default: 1000)


def _fit_all(
    out: Path,
    plan: list[tuple[str, str, dict[str, Any]]],
    eval_options: dict[str, Any],
    settings: Settings,
) -> tuple[dict[str, dict[str, Run]], dict[str, dict[str, Any]]]:
    """Train and evaluate every (data, model, options) of the plan into out/runs/, afresh."""
    jobs = [
        # the folder's name is the data's name made safe: a path in it ("../x") cannot leave out/
        Job(
            model,
            str(out / "runs" / f"{model}-{safe_name(data, keep='-_@')}"),
            {**o, "data": data},
            "all",
            eval_options,
        )
        for data, model, o in plan
    ]
    scores = run_jobs(jobs, settings, "models", reuse=False)
    summary: dict[str, dict[str, Any]] = {}
    runs: dict[str, dict[str, Run]] = {}
    for (data, model, _), job, res in zip(plan, jobs, scores, strict=True):
        summary.setdefault(data, {})[model] = res
        runs.setdefault(data, {})[model] = Run.load(job.folder, settings.device)
    return runs, summary


def run_demo(out: Path, plan: list[tuple[str, str, dict[str, Any]]] | None = None) -> Path:
    """Fit, evaluate and report every (data, model) of the plan into ``out``; returns report.html."""
    start = time.perf_counter()
    runs, summary = _fit_all(out, plan or DEMO_PLAN, {"k": DEMO_IWAE_K}, Settings(device="cpu"))
    return write_report(
        out, "pushforward demo", runs, summary, "summary.json", time.perf_counter() - start
    )


def run_bench(
    out: Path,
    data: str,
    models: list[str],
    minutes: float,
    *,
    seed: int = 0,
    k: int = 1000,
    n_real: int | None = None,
    device: str = "auto",
    data_dir: str | None = None,
    test_data: str | None = None,
) -> Path:
    """Train each model for the same wall-clock budget on ``data``, evaluate all that applies,
    and write report.html and report.json."""
    start = time.perf_counter()
    ds = load_dataset(data, data_dir, test_data)
    if ds.test is None:  # checked now, not after every model has trained
        raise PushforwardError(
            f"--data {data}: bench scores each model on held-out data, and this set has none; "
            "name it with --test-data DATA"
        )
    held = {"test_data": test_data} if test_data else {}
    plan = [
        (data, m, {**MODELS[m].bench_options(ds), "minutes": minutes, "seed": seed, **held})
        for m in models
    ]
    settings = Settings(device=device, data_dir=data_dir)
    runs, summary = _fit_all(out, plan, {"seed": seed, "k": k, "n_real": n_real}, settings)
    title = f"pushforward bench: {data}, {minutes:g} minute(s) per model"
    return write_report(out, title, runs, summary, "report.json", time.perf_counter() - start)
