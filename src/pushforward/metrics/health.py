"""After training, has the model visibly failed? Cheap checks in the data's own space, so that
a run of 64 identical blobs is named as such instead of passing silently:

- posterior collapse: an encoder whose codes carry no information (no active unit);
- mode collapse: samples nearly identical (their spread a small fraction of the data's);
- samples missing the data: few held-out examples have a sample among their 5 nearest
  neighbours (k-NN coverage, Naeem et al. 2020, in data space);
- samples off the data: few samples fall within the data's k-NN balls (k-NN precision,
  Kynkäänniemi et al. 2019), as for a diffuse cloud over separate modes;
- and what the model itself reads from its training log (a GAN's discriminator that has won).

May import, of this package: data, metrics/features, metrics/latent, models, models/priors.
"""

from __future__ import annotations

from typing import Any

import torch

from ..data import Dataset, moments
from ..models import MODELS, Encoder, Model
from ..models.priors import encoder_means
from .features import prdc
from .latent import active_units

SPREAD_FLOOR = 0.1  # samples' mean squared pairwise distance over the data's
COVERAGE_FLOOR = 0.1  # fraction of held-out examples with a sample among their 5 neighbours
PRECISION_FLOOR = 0.05  # fraction of samples within a held-out example's 3-NN radius
SKIPPED_CEILING = 0.25  # fraction of the updates (one per phase of a step) skipped


@torch.no_grad()
def health(
    model: Model, raw: Dataset, data: Dataset, history: list[dict[str, Any]], n: int = 1000
) -> tuple[dict[str, Any], list[str]]:
    """(the numbers checked, a reason for each failed check). ``raw`` is the data as loaded,
    which samples are compared with; ``data`` as training saw it, which the encoder reads."""
    held = raw.test if raw.test is not None else raw.train
    real = held[:n].flatten(1).double().cpu()  # [n, D]
    fake = model.sample(n, torch.Generator().manual_seed(0)).flatten(1).double().cpu()
    if raw.kind == "points":  # every coordinate counts alike
        scale = moments(raw.train)[1].flatten().clamp_min(1e-12).cpu()
        real, fake = real / scale, fake / scale
    m = min(500, len(real), len(fake))
    spread = float(torch.pdist(fake[:m]).pow(2).mean() / torch.pdist(real[:m]).pow(2).mean())
    near = prdc(real, fake)
    numbers: dict[str, Any] = {
        "sample_spread": round(spread, 4),
        "coverage": round(near["coverage"], 4),
        "precision": round(near["precision"], 4),
    }
    reasons = list(model.training_failures(history))
    skipped = [r["nonfinite"] for r in history if isinstance(r.get("nonfinite"), (int, float))]
    if skipped and model.schedule:  # per logged window: skipped phases per step
        numbers["skipped"] = round(sum(skipped) / len(skipped) / len(model.schedule), 4)
        if numbers["skipped"] > SKIPPED_CEILING:
            reasons.append(
                f"{numbers['skipped']:.0%} of the updates were skipped for a non-finite loss or "
                "gradients (--nan-policy skip): lower --lr"
            )
    if isinstance(model, Encoder):
        seen, y = (
            (data.test, data.test_labels)
            if data.test is not None
            else (data.train, data.train_labels)
        )
        y = y[:n] if y is not None and model.classes else None
        mu = encoder_means(model.encode, seen[:n].to(model.device), labels=y)[0]
        numbers["active_units"] = active_units(mu)
        if numbers["active_units"] == 0:
            reasons.append(
                f"posterior collapse: none of the {mu.shape[1]} latent dimensions carries "
                "information"
            )
    if spread < SPREAD_FLOOR:
        reasons.append(f"samples are nearly identical (their spread is {spread:.0%} of the data's)")
    if numbers["coverage"] < COVERAGE_FLOOR:
        reasons.append(
            f"samples reach only {numbers['coverage']:.0%} of the held-out examples (k-NN coverage)"
        )
    if numbers["precision"] < PRECISION_FLOOR:
        reasons.append(
            f"only {numbers['precision']:.0%} of samples lie on the data (k-NN precision): "
            "most fall between or beyond it"
        )
    return numbers, reasons


def failure_line(model: str, data: str, reasons: list[str]) -> str:
    """The one line that names a failed model, why, and what to try."""
    hint = MODELS[model].failure_hint if model in MODELS else "other options"
    return f"{model} on {data} has visibly failed: {'; '.join(reasons)}; try {hint}"
