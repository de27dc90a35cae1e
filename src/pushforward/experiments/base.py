"""What every experiment shares: its registered record, how it runs (``Settings``), and the
numbers-as-Markdown helpers of its summary.md.

May import, of this package: files.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..files import safe_name


@dataclass(frozen=True)
class Settings:
    """How an experiment runs: worker processes, device, data folder; and how much of it:
    ``scale`` multiplies every run's training length (steps or epochs), and ``only`` keeps the
    named parts (configurations, priors, data sets), so one row can be run for longer."""

    jobs: int = 1
    device: str = "auto"
    data_dir: str | None = None
    scale: float = 1.0
    only: tuple[str, ...] = ()

    def length(self, n: int) -> int:
        """A training length (steps or epochs) times ``scale``, at least 1."""
        return max(1, math.ceil(n * self.scale))

    def keep(self, names: list[str]) -> list[str]:
        """The names ``only`` keeps; all of them when it names none of this group."""
        kept = [n for n in names if n in self.only]
        return kept or list(names)


@dataclass(frozen=True)
class Experiment:
    """One of the paper's claims: ``run(out, quick, settings)`` trains, scores and draws into
    ``out`` and returns every number; ``summary`` turns those into Markdown tables; ``parts``
    are the names ``--only`` may pick; ``scalable`` says whether ``--scale`` means anything."""

    name: str
    run: Callable[[Path, bool, Settings], dict[str, Any]]
    parts: list[str]
    summary: Callable[[dict[str, Any]], str] | None = None
    scalable: bool = True


def slug(name: str) -> str:
    """A configuration's name as a run folder's: "r1 + ema" -> "r1---ema"."""
    return safe_name(name, fill="-").strip("-")


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error (0 for a single value)."""
    t = torch.tensor(values, dtype=torch.float64)
    se = float(t.std() / math.sqrt(len(t))) if len(t) > 1 else 0.0
    return float(t.mean()), se


def fmt(v: Any, digits: int = 3) -> str:
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return "–" if v is None else str(v)


def md_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def pm(mean_and_se: list[float] | tuple[float, float], scale: float = 1.0, digits: int = 2) -> str:
    mean, se = mean_and_se
    return f"{mean * scale:.{digits}f} ± {se * scale:.{digits}f}"
