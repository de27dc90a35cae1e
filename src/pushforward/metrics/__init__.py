"""The metric registry. Each metric takes an :class:`EvalInput` (model, real data, samples) and
returns flat ``eval.json`` keys; none knows about training.

A metric that does not apply says why via ``applies``, so ``eval`` runs "everything that
applies" by default and refuses a named metric that does not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..data import TOY_MODES, TOY_STD, Dataset
from .features import image_metrics
from .latent import latent_metrics
from .likelihood import elbo, iwae, nll, true_nll
from .modes import mode_coverage
from .two_sample import two_sample

MODE_SAMPLES = 2_500  # the published mode-coverage protocol scores 2,500 samples


@dataclass
class EvalInput:
    """What every metric may look at. ``fake`` is drawn once and shared by all metrics;
    ``dataset`` is the evaluation data as loaded (images not binarized), for feature metrics."""

    model: Any
    real: torch.Tensor  # [N, *shape] held-out examples, as the model was trained on them
    fake: torch.Tensor  # [M, *shape] model samples
    true_log_prob: Callable[[torch.Tensor], torch.Tensor] | None
    data_name: str
    seed: int
    k: int = 1000
    dataset: Dataset | None = None


@dataclass(frozen=True)
class Metric:
    compute: Callable[[EvalInput], dict[str, Any]]
    applies: Callable[[EvalInput], str | None]  # None if it applies, else the reason it does not


def _has(*attrs: str) -> Callable[[EvalInput], str | None]:
    def check(e: EvalInput) -> str | None:
        return (
            None
            if any(hasattr(e.model, a) for a in attrs)
            else f"the model has no {' or '.join(attrs)}"
        )

    return check


def _needs_truth(e: EvalInput) -> str | None:
    return None if e.true_log_prob is not None else "the data has no known true density"


def _needs_modes(e: EvalInput) -> str | None:
    return (
        None if e.data_name in TOY_MODES else f"mode coverage is defined for {', '.join(TOY_MODES)}"
    )


def _needs_points(e: EvalInput) -> str | None:
    return None if e.real.dim() == 2 else "MMD and W2 are for low-dimensional points"


def _needs_labelled_images(e: EvalInput) -> str | None:
    ds = e.dataset
    ok = (
        ds is not None
        and ds.kind == "images"
        and ds.test is not None
        and ds.train_labels is not None
        and ds.test_labels is not None
    )
    return (
        None
        if ok
        else "feature metrics need labelled train and test images (to train the feature classifier)"
    )


def _nll(e: EvalInput) -> dict[str, Any]:
    """Exact for models with a density (GMM), the IWAE-k bound for the VAE."""
    if hasattr(e.model, "log_prob"):
        return nll(e.model, e.real)
    return iwae(e.model, e.real, e.k, e.seed)


def _two_sample(e: EvalInput) -> dict[str, Any]:
    ds = e.dataset
    floor = ds.train.to(e.real.device) if ds is not None and ds.test is not None else None
    return two_sample(e.real, e.fake, floor)


def _features(e: EvalInput) -> dict[str, Any]:
    assert e.dataset is not None
    return image_metrics(e.dataset, e.fake, len(e.fake), e.seed)


def _modes(e: EvalInput) -> dict[str, Any]:
    return mode_coverage(
        e.fake[:MODE_SAMPLES], torch.as_tensor(TOY_MODES[e.data_name]), TOY_STD[e.data_name]
    )


METRICS: dict[str, Metric] = {
    "nll": Metric(_nll, _has("log_prob", "iwae_bound")),
    "elbo": Metric(lambda e: elbo(e.model, e.real, e.seed), _has("elbo")),
    "true_nll": Metric(lambda e: true_nll(e.true_log_prob, e.fake, e.real), _needs_truth),  # type: ignore[arg-type]
    "modes": Metric(_modes, _needs_modes),
    "two_sample": Metric(_two_sample, _needs_points),
    "features": Metric(_features, _needs_labelled_images),
    "latent": Metric(lambda e: latent_metrics(e.model, e.real, e.seed), _has("encode")),
}

__all__ = ["METRICS", "MODE_SAMPLES", "EvalInput", "Metric"]
