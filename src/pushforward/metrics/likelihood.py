"""Likelihood metrics: the model's held-out NLL, and samples scored under a known true density.

May import, of this package: data, limits, models/base.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import torch

from ..data import Examples, chunks, find_levels, in_memory
from ..limits import keep_freed_memory
from ..models.base import Dequantized, ExactDensity, LikelihoodBound, Model

CELLS = (
    "exact density of the pixels spread uniformly over their cells (a bound on the discrete "
    "pixels' NLL)"
)


@torch.no_grad()
def nll(model: ExactDensity, real: Examples, seed: int = 0) -> dict[str, Any]:
    """Average negative log-likelihood of held-out examples, nats per example, a chunk at a
    time. Points and continuous images: exact. Pixels on L levels: a density at the discrete
    values is not a probability, so each pixel is spread uniformly over its cell (one draw per
    pixel, ``seed``) and -E_u[log p] + D log(1 / cell width) bounds the discrete pixels' NLL;
    that is the scale of published bits per dimension, reported too. A flow's cells are its own
    dequantization's, (k + u) / L; a density fitted to the values k / (L - 1) themselves (the
    GMM) gets the cells of width 1 / (L - 1) centred on them."""
    g = torch.Generator().manual_seed(seed)
    spread: Callable[[torch.Tensor, torch.Generator], torch.Tensor]
    if isinstance(model, Dequantized) and model.discrete_shift() > 0:
        spread, shift = model.dequantize, model.discrete_shift()
    else:
        levels = find_levels(in_memory(real[:2000])) if len(real.shape) == 4 else 0
        if levels < 2:
            total = sum(float(model.log_prob(c).double().sum()) for c in chunks(real))
            return {"nll_nats": -total / len(real), "nll_kind": "exact"}
        spread, shift = partial(_centred_cells, levels), real[0].numel() * math.log(levels - 1)
    total = sum(float(model.log_prob(spread(c, g)).double().sum()) for c in chunks(real))
    out = -total / len(real) + shift
    return {
        "nll_nats": out,
        "bits_per_dim": out / (real[0].numel() * math.log(2)),
        "nll_kind": CELLS,
    }


def _centred_cells(levels: int, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Pixels k / (L - 1) [B, C, H, W] spread uniformly over cells of width 1 / (L - 1)."""
    u = torch.rand(x.shape, generator=generator).to(x)
    return x + (u - 0.5) / (levels - 1)


@torch.no_grad()
def true_nll(
    log_prob: Callable[[torch.Tensor], torch.Tensor], fake: torch.Tensor, real: Examples
) -> dict[str, float]:
    """Model samples scored under the true density, beside the same score of real test points.

    ``true_nll_nats`` = -E_q[log p(x)] over samples; ``true_entropy_nats`` = -E_p[log p(x)] over
    test points is the floor a perfect model reaches. Samples outside the support of p give an
    infinite score (written as null), so the fraction outside is reported too.
    """
    lp_fake = log_prob(fake.double())  # [M]
    lp_real = log_prob(in_memory(real).double())  # [N]: the toy sets' test points
    outside = float((~torch.isfinite(lp_fake)).double().mean())
    out = {
        "true_nll_nats": float(-lp_fake.mean()) if outside == 0 else math.inf,
        "true_entropy_nats": float(-lp_real.mean()),
    }
    if outside > 0:
        out["true_outside_support"] = outside
    return out


@torch.no_grad()
def elbo(
    model: LikelihoodBound,
    real: Examples,
    seed: int,
    chunk: int = 1000,
    labels: torch.Tensor | None = None,
) -> dict[str, float]:
    """The test ELBO in nats per example (a lower bound on log p(x), so a negative number for
    discrete data), with its reconstruction and KL terms. One z per example, fp32, seeded.
    Given ``labels`` [N] (a conditional model), the bound is on log p(x | y)."""
    g = torch.Generator().manual_seed(seed)
    sums = {"elbo": 0.0, "recon": 0.0, "kl": 0.0}
    for x, y in _chunks(real, labels, chunk, _device(model)):
        t = model.elbo(x, generator=g, y=y)
        for k in sums:
            sums[k] += float(t[k].double().sum())
    n = len(real)
    return {"elbo": sums["elbo"] / n, "recon_nats": sums["recon"] / n, "kl_nats": sums["kl"] / n}


@torch.no_grad()
def iwae(
    model: LikelihoodBound,
    real: Examples,
    k: int,
    seed: int,
    chunk: int = 100,
    labels: torch.Tensor | None = None,
) -> dict[str, float]:
    """-IWAE-k, an upper bound on the NLL, in nats per example; for images also in bits per
    dimension (their binarized pixels make log p a log-probability). Accumulated in float64.
    Given ``labels`` [N] (a conditional model), the bound is on -log p(x | y)."""
    keep_freed_memory()  # each chunk's [4,096, D] temporaries reuse the last one's pages
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    for x, y in _chunks(real, labels, chunk, _device(model)):
        total += float(model.iwae_bound(x, k, generator=g, y=y).sum())
    nll_nats = -total / len(real)
    out = {"nll_nats": nll_nats, "iwae_k": k}
    if len(real.shape) == 4:  # bits per dimension: meaningful for discrete (binarized) pixels
        out["bits_per_dim"] = nll_nats / (real[0].numel() * math.log(2))
    return out


def _chunks(
    x: Examples, labels: torch.Tensor | None, size: int, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """x [N, *shape] and its labels [N] (or None) in matching chunks of ``size``, on
    ``device`` (data read from disk arrives on the host)."""
    for s, c in zip(range(0, len(x), size), chunks(x, size), strict=True):
        yield c.to(device), None if labels is None else labels[s : s + size].to(device)


def _device(model: object) -> torch.device:
    return model.device if isinstance(model, Model) else torch.device("cpu")
