"""Priors p(z) for the VAE behind one small interface, so learned priors plug in later.

A prior gives ``log_prob``, ``sample`` and, when it has one, the analytic KL from a diagonal
Gaussian posterior; without it the VAE falls back to a one-sample Monte Carlo KL.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Prior(nn.Module):
    """p(z) over R^latent_dim. Subclasses give the density and sampling; ``analytic_kl`` returns
    None unless a closed form exists."""

    latent_dim: int

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def analytic_kl(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor | None:
        return None


class StandardNormal(Prior):
    """The fixed N(0, I) prior of the paper: simple, and the source of its "holes" warning."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """z [B, d] -> [B]."""
        return -0.5 * (z.pow(2).sum(-1) + self.latent_dim * math.log(2 * math.pi))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=generator)

    def analytic_kl(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor | None:
        """KL(N(mu, diag exp(logvar)) || N(0, I)) per example: [B, d] -> [B]."""
        return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)


PRIORS: dict[str, type[Prior]] = {"normal": StandardNormal}
