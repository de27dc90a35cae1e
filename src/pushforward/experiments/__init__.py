"""The paper's claims as one-command experiments: ``pushforward experiment NAME [--quick]``.

One file per experiment, each holding its configurations, its scoring, its figures and its
tables, and ending in its :class:`~.base.Experiment` record; ``EXPERIMENTS`` lists them. Each
writes its figures, results.json and summary.md into a folder; docs/experiments/ shows the full
results with the command that made them. ``--quick`` shrinks the budgets for tests.

May import, of this package: errors, experiments/base, experiments/explicit_vs_implicit,
experiments/fixed_prior, experiments/gmm_universality, experiments/mode_collapse,
experiments/structured_density, explore/card (the results' notebook display), files.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from ..errors import PushforwardError
from ..explore.card import results_card
from ..files import atomic_write_bytes, atomic_write_json
from . import (
    explicit_vs_implicit,
    fixed_prior,
    gmm_universality,
    mode_collapse,
    structured_density,
)
from .base import Experiment, Settings

EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        gmm_universality.EXPERIMENT,
        explicit_vs_implicit.EXPERIMENT,
        fixed_prior.EXPERIMENT,
        mode_collapse.EXPERIMENT,
        structured_density.EXPERIMENT,
    )
}


class Results(dict):  # type: ignore[type-arg]
    """What ``run_experiment`` returns: the numbers results.json holds, with ``path`` (that
    file); a notebook shows them as the summary's tables above the figures."""

    def __init__(self, numbers: dict[str, Any], path: Path) -> None:
        super().__init__(numbers)
        self.path = path

    def _repr_html_(self) -> str:
        return results_card(self["experiment"], self.path.parent, self["seconds"])


def run_experiment(
    name: str, out: Path, quick: bool = False, settings: Settings | None = None
) -> Results:
    """Run one experiment into ``out``; writes out/results.json (and summary.md) beside its
    figures and returns the numbers. Run again after an interruption, it reuses every run that
    finished."""
    experiment, settings = EXPERIMENTS[name], settings or Settings()
    if settings.jobs < 1:
        raise PushforwardError(f"--jobs {settings.jobs}: must be at least 1")
    if not settings.scale > 0 or not math.isfinite(settings.scale):
        raise PushforwardError(f"--scale {settings.scale}: must be a positive number, e.g. 4")
    if not experiment.scalable and settings.scale != 1:
        raise PushforwardError(f"--scale: {name} runs EM to convergence; drop --scale")
    unknown = [n for n in settings.only if n not in experiment.parts]
    if unknown:
        raise PushforwardError(
            f"--only {unknown[0]!r}: {name} has no such part; choose from "
            + ", ".join(repr(p) for p in experiment.parts)
        )
    start = time.perf_counter()
    results = experiment.run(out, quick, settings)
    results.update(experiment=name, quick=quick, seconds=round(time.perf_counter() - start, 1))
    atomic_write_json(out / "results.json", results)
    if experiment.summary is not None:
        atomic_write_bytes(out / "summary.md", experiment.summary(results).encode())
    return Results(results, out / "results.json")


__all__ = ["EXPERIMENTS", "Experiment", "Results", "Settings", "run_experiment"]
