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

from ..data import TOY_MODES, TOY_STD
from .likelihood import elbo, nll, true_nll
from .modes import mode_coverage

MODE_SAMPLES = 2_500  # the published mode-coverage protocol scores 2,500 samples


@dataclass
class EvalInput:
    """What every metric may look at. ``fake`` is drawn once and shared by all metrics."""

    model: Any
    real: torch.Tensor  # [N, *shape] held-out examples
    fake: torch.Tensor  # [M, *shape] model samples
    true_log_prob: Callable[[torch.Tensor], torch.Tensor] | None
    data_name: str
    seed: int


@dataclass(frozen=True)
class Metric:
    compute: Callable[[EvalInput], dict[str, float]]
    applies: Callable[[EvalInput], str | None]  # None if it applies, else the reason it does not


def _has(attr: str, what: str) -> Callable[[EvalInput], str | None]:
    return lambda e: None if hasattr(e.model, attr) else f"the model has no {what}"


def _needs_truth(e: EvalInput) -> str | None:
    return None if e.true_log_prob is not None else "the data has no known true density"


def _needs_modes(e: EvalInput) -> str | None:
    return (
        None if e.data_name in TOY_MODES else f"mode coverage is defined for {', '.join(TOY_MODES)}"
    )


def _modes(e: EvalInput) -> dict[str, float]:
    fake = e.fake[:MODE_SAMPLES]
    return mode_coverage(fake, torch.as_tensor(TOY_MODES[e.data_name]), TOY_STD[e.data_name])


METRICS: dict[str, Metric] = {
    "nll": Metric(lambda e: nll(e.model, e.real), _has("log_prob", "tractable density")),
    "elbo": Metric(lambda e: elbo(e.model, e.real, e.seed), _has("elbo", "evidence lower bound")),
    "true_nll": Metric(lambda e: true_nll(e.true_log_prob, e.fake, e.real), _needs_truth),  # type: ignore[arg-type]
    "modes": Metric(_modes, _needs_modes),
}

__all__ = ["METRICS", "MODE_SAMPLES", "EvalInput", "Metric"]
