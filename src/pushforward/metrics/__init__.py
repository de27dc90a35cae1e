"""The metric registry. Each metric takes an :class:`EvalInput` (model, real data, samples) and
returns flat ``eval.json`` keys; none knows about training.

A metric that does not apply (no density, no known true density) says why via ``applies``, so
``eval`` can run "everything that applies" by default and refuse a named metric that does not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .likelihood import nll, true_nll


@dataclass
class EvalInput:
    """What every metric may look at. ``fake`` is drawn once and shared by all metrics."""

    model: Any
    real: torch.Tensor  # [N, *shape] held-out examples
    fake: torch.Tensor  # [M, *shape] model samples
    true_log_prob: Callable[[torch.Tensor], torch.Tensor] | None


@dataclass(frozen=True)
class Metric:
    compute: Callable[[EvalInput], dict[str, float]]
    applies: Callable[[EvalInput], str | None]  # None if it applies, else the reason it does not


def _needs_density(e: EvalInput) -> str | None:
    return None if hasattr(e.model, "log_prob") else "the model has no tractable density"


def _needs_truth(e: EvalInput) -> str | None:
    return None if e.true_log_prob is not None else "the data has no known true density"


METRICS: dict[str, Metric] = {
    "nll": Metric(lambda e: nll(e.model, e.real), _needs_density),
    "true_nll": Metric(lambda e: true_nll(e.true_log_prob, e.fake, e.real), _needs_truth),  # type: ignore[arg-type]
}

__all__ = ["METRICS", "EvalInput", "Metric"]
