"""The metric registry. Each metric takes an :class:`EvalInput` (model, real data, samples) and
returns flat ``eval.json`` keys; none knows about training.

A metric that does not apply says why via ``applies``, so ``eval`` runs "everything that
applies" by default and refuses a named metric that does not.

May import, of this package: data, errors, metrics/conditional, metrics/features, metrics/inception_eval,
metrics/latent, metrics/likelihood, metrics/modes, metrics/two_sample, models/base.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..data import TOY_MODES, TOY_STD, Dataset, Examples
from ..errors import PushforwardError
from ..models.base import Encoder, ExactDensity, LikelihoodBound, Model
from .conditional import conditional_applies, image_conditional, mode_conditional
from .features import image_metrics
from .inception_eval import inception_metrics
from .latent import latent_metrics
from .likelihood import elbo, iwae, nll, true_nll
from .modes import mode_coverage
from .two_sample import two_sample

LATENT_N = 2000  # held-out examples the latent metrics encode
TWO_SAMPLE_N = 2000  # points MMD and W2 compare (their cost grows as n^2 or worse)
MODE_SAMPLES = 2_500  # the published mode-coverage protocol scores 2,500 samples


@dataclass
class EvalInput:
    """What every metric may look at. ``fake`` is drawn once and shared by all metrics;
    ``dataset`` is the evaluation data as loaded (images not binarized), for feature metrics."""

    model: Model
    real: Examples  # [N, *shape] held-out examples, as the model was trained on them
    fake: torch.Tensor  # [M, *shape] model samples
    true_log_prob: Callable[[torch.Tensor], torch.Tensor] | None
    data_name: str
    seed: int
    k: int = 1000
    dataset: Dataset | None = None
    split: str = "test"
    n_real: int | None = None
    features: str = "classifier"  # or "inception": the FID network's pool features
    feature_weights: str | None = None
    real_labels: torch.Tensor | None = None  # [N] the labels of ``real``, for a conditional model

    def first(self, n: int) -> torch.Tensor:
        """The first n held-out examples [n, *shape], on the model's device."""
        return self.real[:n].to(self.model.device)


@dataclass(frozen=True)
class Metric:
    compute: Callable[[EvalInput], dict[str, Any]]
    applies: Callable[[EvalInput], str | None]  # None if it applies, else the reason it does not
    # the keys a reader compares first, each (key, label, the key of its floor or None): the
    # reports show them as rows and fold the rest under "all numbers"
    key_numbers: tuple[tuple[str, str, str | None], ...] = ()
    glossary: str = ""  # what its keys mean, one HTML list item of the reports' glossary


def _needs(capability: type, what: str) -> Callable[[EvalInput], str | None]:
    """Applies when the model declares ``capability`` (models/base.py)."""

    def check(e: EvalInput) -> str | None:
        return None if isinstance(e.model, capability) else f"the model has no {what}"

    return check


def _nll_applies(e: EvalInput) -> str | None:
    ok = isinstance(e.model, (ExactDensity, LikelihoodBound))
    return None if ok else "the model has no density or likelihood bound"


def _needs_truth(e: EvalInput) -> str | None:
    return None if e.true_log_prob is not None else "the data has no known true density"


def _needs_modes(e: EvalInput) -> str | None:
    return (
        None if e.data_name in TOY_MODES else f"mode coverage is defined for {', '.join(TOY_MODES)}"
    )


def _needs_points(e: EvalInput) -> str | None:
    return None if len(e.real.shape) == 2 else "MMD and W2 are for low-dimensional points"


def _needs_labelled_images(e: EvalInput) -> str | None:
    ds = e.dataset
    if e.features == "inception":
        return (
            None if ds is not None and ds.kind == "images" else "Inception features are for images"
        )
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
    if isinstance(e.model, ExactDensity):
        return nll(e.model, e.real, e.seed)
    assert isinstance(e.model, LikelihoodBound)
    return iwae(e.model, e.real, e.k, e.seed, labels=e.real_labels)


def _elbo(e: EvalInput) -> dict[str, Any]:
    assert isinstance(e.model, LikelihoodBound)
    return elbo(e.model, e.real, e.seed, labels=e.real_labels)


def _latent(e: EvalInput) -> dict[str, Any]:
    assert isinstance(e.model, Encoder)
    return latent_metrics(e.model, e.first(LATENT_N), e.seed, LATENT_N, labels=e.real_labels)


def _two_sample(e: EvalInput) -> dict[str, Any]:
    ds = e.dataset
    n = TWO_SAMPLE_N
    floor = ds.train[:n].to(e.fake.device) if ds is not None and ds.test is not None else None
    return two_sample(e.first(n), e.fake, floor, n)


def _features(e: EvalInput) -> dict[str, Any]:
    ds = e.dataset
    assert ds is not None
    ref = ds.split(e.split) if ds.test is not None else ds.train
    ref = ref[: e.n_real] if e.n_real else ref
    if e.features == "inception":
        label = f"{e.data_name}:{e.split if ds.test is not None else 'all'}"
        return inception_metrics(ref, label, e.fake, e.seed, e.feature_weights, e.model.device)
    other = ds.train if e.split == "test" else ds.test  # the floor: the other split
    return image_metrics(ds, ref, other, e.fake, e.seed)


def _modes(e: EvalInput) -> dict[str, Any]:
    return mode_coverage(
        e.fake[:MODE_SAMPLES], torch.as_tensor(TOY_MODES[e.data_name]), TOY_STD[e.data_name]
    )


def _conditional(e: EvalInput) -> dict[str, Any]:
    if e.data_name in TOY_MODES:
        return mode_conditional(e.model, e.data_name, len(e.fake), e.seed)
    assert e.dataset is not None
    return image_conditional(e.model, e.dataset, len(e.fake), e.seed)


def _true_nll(e: EvalInput) -> dict[str, Any]:
    assert e.true_log_prob is not None
    return true_nll(e.true_log_prob, e.fake, e.real)


METRICS: dict[str, Metric] = {
    "nll": Metric(
        _nll,
        _nll_applies,
        (("nll_nats", "NLL, nats (lower is better)", None),),
        "<code>nll_nats</code>: average negative log-likelihood (lower is better): exact for a "
        "model with a density, the importance-weighted bound with <code>iwae_k</code> samples "
        "(an upper bound on the true NLL) for one with a likelihood bound.",
    ),
    "elbo": Metric(
        _elbo,
        _needs(LikelihoodBound, "elbo"),
        (("elbo", "ELBO, nats (higher is better)", None),),
        "<code>elbo</code>: the evidence lower bound on log p(x), nats per example (higher is "
        "better), = <code>recon_nats</code> - <code>kl_nats</code>; for binarized pixels it is "
        "not comparable to a continuous density.",
    ),
    "true_nll": Metric(
        _true_nll,
        _needs_truth,
        (("true_nll_nats", "samples' NLL under the true density", "true_entropy_nats"),),
        "<code>true_nll_nats</code>: model samples scored under the true density (2-D sets with "
        "a known density); <code>true_entropy_nats</code> is what real test points score, the "
        "floor.",
    ),
    "modes": Metric(
        _modes,
        _needs_modes,
        (("modes", "modes captured", None), ("hq_fraction", "high-quality samples", None)),
        "<code>modes</code>, <code>hq_fraction</code>, <code>reverse_kl_modes</code>: modes "
        "captured, fraction of samples within 3 standard deviations of a mode, KL of the mode "
        "histogram from uniform (PacGAN's definitions, 2,500 samples); <code>hq_spread</code>: "
        "how far those samples lie from their modes, over the data's distance (1: as spread).",
    ),
    "two_sample": Metric(
        _two_sample,
        _needs_points,
        (("mmd", "MMD² to test points", None),),
        "<code>mmd</code> (squared, Gaussian kernel, median bandwidth) and <code>w2</code> "
        "(exact 2-Wasserstein): distances between samples and test points, on 2-D data.",
    ),
    "features": Metric(
        _features,
        _needs_labelled_images,
        (
            ("fd", "Fréchet distance (lower is better)", "fd_floor"),
            ("precision", "precision", "precision_floor"),
            ("recall", "recall", "recall_floor"),
            ("class_kl", "class balance KL (0 is best)", "class_kl_floor"),
        ),
        "<code>fd</code>, <code>precision</code>, <code>recall</code>, <code>density</code>, "
        "<code>coverage</code>, <code>class_kl</code>: in the features of a classifier trained "
        "on the data set (accuracy in <code>classifier_accuracy</code>); the <code>_floor</code> "
        "columns score a training sample against the test sample, what a perfect model would "
        "reach.",
    ),
    "conditional": Metric(
        _conditional,
        lambda e: conditional_applies(e.model, e.dataset, e.data_name),
        (
            ("cond_accuracy", "samples read as the asked class", "cond_accuracy_floor"),
            ("intra_fd", "Fréchet distance within each class", "intra_fd_floor"),
            ("label_modes", "labels drawn at their own mode", None),
        ),
        "<code>cond_accuracy</code> (a conditional model): the fraction of each asked class's "
        "samples the data's classifier reads as that class, averaged over classes, beside the "
        "classifier's accuracy on real test images; <code>intra_fd</code>: the Fréchet distance "
        "between a class's samples and its test images, averaged over classes, beside training "
        "against test images; on ring8 and grid25 (label = mode) <code>label_modes</code> "
        "counts the labels whose samples land within 3 sd of their own mode and "
        "<code>label_hq_fraction</code> the fraction of samples that do.",
    ),
    "latent": Metric(
        _latent,
        _needs(Encoder, "encoder"),
        (),
        "<code>active_units</code>, <code>kl_per_dim</code>, <code>mutual_info</code>, "
        "<code>agg_posterior_kl</code>, <code>prior_holes</code>: how an encoder uses its latent "
        "space and how far its aggregate posterior is from the prior; <code>prior_holes</code> "
        "is the fraction of prior samples landing where the aggregate posterior is thinner than "
        "at 99% of its own samples.",
    ),
}


def key_numbers() -> dict[str, tuple[str, str | None]]:
    """Each key a metric declares a key number, with its label and the key of its floor: what
    the reports and a run's card show first."""
    return {key: (label, floor) for m in METRICS.values() for key, label, floor in m.key_numbers}


def evaluate(e: EvalInput, names: list[str] | None = None) -> dict[str, Any]:
    """The named metrics (default: every one that applies) as one flat dict; a named metric
    that is unknown or does not apply is a user error."""
    names = names or [m for m in METRICS if METRICS[m].applies(e) is None]
    out: dict[str, Any] = {}
    for m in names:
        if m not in METRICS:
            raise PushforwardError(f"--metrics {m!r}: unknown; choose from {', '.join(METRICS)}")
        why = METRICS[m].applies(e)
        if why:
            raise PushforwardError(f"--metrics {m}: does not apply here ({why})")
        out.update(METRICS[m].compute(e))
    return out


__all__ = ["METRICS", "MODE_SAMPLES", "EvalInput", "Metric", "evaluate", "key_numbers"]
