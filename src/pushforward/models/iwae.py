"""The importance-weighted bound (Burda et al. 2015) for any model with a Gaussian encoder
q(z|x), a prior p(z) and a likelihood p(x|z): evaluated (``iwae_bound``, for ``eval``'s NLL)
and trained on (``iw_loss``, the VAE's --iw-samples). A model gets both by deriving from
:class:`ImportanceWeighted` and giving ``encode``, ``prior`` and ``log_likelihood_many``.

May import torch and the model contract; imported by models/vae.py.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any

import torch

from .base import LikelihoodBound
from .priors import log_normal_standardized


class ImportanceWeighted(LikelihoodBound):
    """log (1/k) sum_i p(x, z_i) / q(z_i|x), z_i ~ q(z|x): a bound on log p(x) that rises
    towards it as k grows (k = 1 is the ELBO)."""

    prior: Any  # a priors.Prior: log_prob, sample

    @abstractmethod
    def encode(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, *shape] (and labels y [B], conditional) -> (mu, logvar), each [B, d]."""

    @abstractmethod
    def log_likelihood_many(
        self, x: torch.Tensor, z: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """log p(x_b | z_ib) for many z per example: x [B, *shape], z [kk, B, d] -> [kk, B]."""

    def _log_terms(
        self,
        x: torch.Tensor,
        mu: torch.Tensor,
        logvar: torch.Tensor,
        eps: torch.Tensor,
        y: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log p(x|z), log p(z), log q(z|x)) for z = mu + std * eps, the importance weights'
        parts: x [B, *shape], mu and logvar [B, d], eps [kk, B, d] -> three [kk, B]."""
        z = mu + (0.5 * logvar).exp() * eps  # [kk, B, d]
        log_q = log_normal_standardized(eps, logvar)
        return self.log_likelihood_many(x, z, y), self.prior.log_prob(z), log_q

    @torch.no_grad()
    def iwae_bound(
        self,
        x: torch.Tensor,
        k: int,
        generator: torch.Generator | None = None,
        max_rows: int = 4096,
        y: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The importance-weighted bound log (1/k) sum_i p(x, z_i) / q(z_i|x), z_i ~ q(z|x)
        (Burda et al. 2015) per example: x [B, *shape] -> [B], float64. k = 1 is the ELBO; the
        bound rises towards log p(x) as k grows. The k samples go through the decoder in chunks of
        at most ``max_rows`` rows, so memory stays bounded for any k; 4,096 rows keep the
        temporaries in cache (86.6 Fashion-MNIST images/s at k = 1000 on 2 cores, against 61.5
        at 65,536: benchmarks/eval_speed.py). The weights are summed as they come (a running
        log-sum-exp), so memory does not grow with k either."""
        mu, logvar = self.encode(x, y)  # [B, d]
        b, d = mu.shape
        per = max(1, max_rows // b)
        total = torch.full((b,), -math.inf, dtype=torch.float64, device=mu.device)  # [B]
        for start in range(0, k, per):
            kk = min(per, k - start)
            eps = (
                torch.randn((kk, b, d), generator=generator).to(mu)
                if generator is not None
                else torch.randn(kk, b, d, device=mu.device)
            )
            log_px, log_pz, log_q = self._log_terms(x, mu, logvar, eps, y)  # [kk, B] each
            log_w = (log_px + log_pz - log_q).double()  # [kk, B]
            total = torch.logaddexp(total, torch.logsumexp(log_w, dim=0))
        return total - math.log(k)

    def iw_loss(
        self, x: torch.Tensor, weight: torch.Tensor, k: int, y: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Negative importance-weighted bound with K = iw_samples z per example. The warm-up
        weight tempers log p(z) - log q(z|x) inside each weight, as it tempers the ELBO's KL."""
        mu, logvar = self.encode(x, y)  # [B, d]
        eps = torch.randn((k, *mu.shape), device=mu.device, dtype=mu.dtype)  # [K, B, d]
        log_px, log_pz, log_q = self._log_terms(x, mu, logvar, eps, y)  # [K, B] each
        log_ratio = log_pz - log_q
        bound = torch.logsumexp(log_px + weight * log_ratio, dim=0) - math.log(k)  # [B]
        with torch.no_grad():
            iwae = torch.logsumexp(log_px + log_ratio, dim=0) - math.log(k)  # weight 1: [B]
        return {
            "loss": -bound.mean(),
            "elbo": (log_px + log_ratio).mean(),  # the mean one-sample ELBO, comparable to k = 1
            "recon": log_px.mean(),
            "kl": -log_ratio.mean(),
            "iwae": iwae.mean(),
        }
