"""The VAE's fixed-prior limitation, measured: how much of the latent space the encoder uses, and
how far its aggregate posterior q(z) = E_x q(z|x) is from the prior p(z) it is pushed towards.

q(z) is estimated as the mixture (1/n) sum_j q(z|x_j) over n held-out examples; I(x; z) uses the
same mixture (He et al. 2019's estimator), and so does the KL(q(z) || p(z)) Monte Carlo estimate.

May import, of this package: models/base, models/priors.
"""

from __future__ import annotations

from typing import Any

import torch

from ..models.base import Encoder
from ..models.priors import (
    StandardNormal,
    encoder_means,
    kl_standard_normal,
    log_aggregate_posterior,
    log_normal_standardized,
)

ACTIVE_VARIANCE = 0.01  # a latent dimension is active when its code mean varies more than this


def active_units(mu: torch.Tensor) -> int:
    """Latent dimensions whose code mean varies over the data (Burda et al. 2015): mu [n, d]."""
    return int((mu.var(0) > ACTIVE_VARIANCE).sum())


@torch.no_grad()
def latent_metrics(
    model: Encoder,
    real: torch.Tensor,
    seed: int,
    n: int = 2000,
    prior_samples: int = 10_000,
    labels: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Active units, KL per dimension, I(x; z), KL(q(z) || p(z)) and the prior-hole fraction
    (of a conditional encoder given the examples' ``labels`` [N])."""
    g = torch.Generator().manual_seed(seed)
    x = real[:n]
    mu, logvar = encoder_means(model.encode, x, labels=None if labels is None else labels[:n])
    std = (0.5 * logvar).exp()
    z = mu + std * torch.randn(mu.shape, generator=g, dtype=mu.dtype)  # one z ~ q(z|x) per x
    log_q_agg = log_aggregate_posterior(z, mu, logvar)  # [n]
    log_q_own = log_normal_standardized((z - mu) / std, logvar)
    prior = model.prior
    params = list(prior.parameters())
    device = params[0].device if params else z.device  # a learned prior lives on the model's device
    log_prior = prior.log_prob(z.to(device, torch.float32)).double().cpu()
    zp = prior.sample(prior_samples, g).double()
    log_q_at_prior = log_aggregate_posterior(zp, mu, logvar)
    # a prior sample lies in a hole where q(z) is lower than at 99% of the posterior's own samples
    threshold = torch.quantile(log_q_agg, 0.01)
    out: dict[str, Any] = {
        "active_units": active_units(mu),
        "mutual_info": float(log_q_own.mean() - log_q_agg.mean()),
        "agg_posterior_kl": float((log_q_agg - log_prior).mean()),
        "prior_holes": float((log_q_at_prior < threshold).double().mean()),
        "latent_n": len(x),
    }
    if isinstance(prior, StandardNormal):
        out["kl_per_dim"] = [round(float(v), 6) for v in kl_standard_normal(mu, logvar).mean(0)]
    return out
