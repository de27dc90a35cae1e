"""Priors p(z) for the VAE behind one small interface: the fixed N(0, I) of the paper, and the
learned remedies for its "holes" (a mixture of Gaussians, the VampPrior).

A prior gives ``log_prob``, ``sample`` and, when it has one, the analytic KL from a diagonal
Gaussian posterior; without it the VAE falls back to a one-sample Monte Carlo KL.

Imports nothing of this package: any module may import it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn


class Prior(nn.Module):
    """p(z) over R^latent_dim. Subclasses give the density and sampling; ``analytic_kl`` returns
    None unless a closed form exists."""

    latent_dim: int

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sample(
        self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0
    ) -> torch.Tensor:
        """z [n, d]; ``temperature`` scales each component's standard deviation."""
        raise NotImplementedError

    def analytic_kl(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor | None:
        """KL(N(mu, diag exp(logvar)) || p) per example and dimension, [B, d], if closed-form."""
        return None


class StandardNormal(Prior):
    """The fixed N(0, I) prior of the paper: simple, and the source of its "holes" warning."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """z [B, d] -> [B]."""
        return -0.5 * (z.pow(2).sum(-1) + self.latent_dim * math.log(2 * math.pi))

    def sample(
        self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0
    ) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=generator) * temperature

    def analytic_kl(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor | None:
        """KL(N(mu, diag exp(logvar)) || N(0, I)) per example and dimension: [B, d]."""
        return kl_standard_normal(mu, logvar)


def log_normal_components(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu_k, diag exp(logvar_k)) for each component: z [..., d], mu/logvar [K, d] ->
    [..., K]. The one diagonal-Gaussian log-density of the package (priors, the aggregate
    posterior of the latent metrics)."""
    flat = z.reshape(-1, z.shape[-1])  # [B, d]
    # sum_d (z - mu)^2 / var expanded into matrix products: a [B, K] result without the
    # [B, K, d] difference tensor, which for the VampPrior's 500 components under an IWAE-1000
    # evaluation was gigabytes and most of the time
    prec = (-logvar).exp()  # [K, d]
    quad = flat.pow(2) @ prec.T - 2 * flat @ (mu * prec).T + (mu.pow(2) * prec).sum(-1)
    out = -0.5 * (quad.clamp_min(0) + logvar.sum(-1)[None] + z.shape[-1] * math.log(2 * math.pi))
    return out.view(*z.shape[:-1], len(mu))


def log_normal_standardized(eps: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag exp(logvar)) at z = mu + exp(logvar / 2) * eps, from eps itself:
    eps [..., d], logvar broadcastable -> [...]. The encoder's log q(z|x)."""
    return -0.5 * (eps.pow(2) + logvar + math.log(2 * math.pi)).sum(-1)


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per example and dimension: [B, d]."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)


class MixturePrior(Prior):
    """A learned mixture of K diagonal Gaussians: p(z) = sum_k w_k N(z; m_k, diag s_k^2).

    The prior moves to where the encoder puts the data instead of forcing the posterior into
    N(0, I), which is the remedy for the fixed prior's information loss."""

    def __init__(self, latent_dim: int, components: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        g = torch.Generator().manual_seed(0)
        self.means = nn.Parameter(torch.randn(components, latent_dim, generator=g))  # [K, d]
        self.logvars = nn.Parameter(torch.zeros(components, latent_dim))  # [K, d]
        self.logits = nn.Parameter(torch.zeros(components))  # [K]

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        logvars = self.logvars.clamp(-10, 5)
        log_w = torch.log_softmax(self.logits, 0)
        return torch.logsumexp(log_normal_components(z, self.means, logvars) + log_w, dim=-1)

    def sample(
        self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0
    ) -> torch.Tensor:
        with torch.no_grad():
            k = torch.multinomial(
                torch.softmax(self.logits, 0).cpu(), n, replacement=True, generator=generator
            )
            eps = torch.randn(n, self.latent_dim, generator=generator)
            std = (0.5 * self.logvars.clamp(-10, 5)).exp().cpu()
            return self.means.detach().cpu()[k] + temperature * std[k] * eps


class VampPrior(Prior):
    """The VampPrior (Tomczak & Welling 2018): p(z) = (1/K) sum_k q(z | u_k), the encoder's own
    posterior at K learned pseudo-inputs u_k. ``encode`` is the VAE's encoder (held as a plain
    function so the encoder's weights are not registered twice)."""

    def __init__(
        self,
        latent_dim: int,
        components: int,
        data_shape: tuple[int, ...],
        encode: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
        images: bool,
    ) -> None:
        super().__init__()
        self.latent_dim, self.images = latent_dim, images
        g = torch.Generator().manual_seed(0)
        # images: pseudo-pixels through a sigmoid, so they stay in [0, 1] like the data
        init = torch.randn(components, *data_shape, generator=g) * (0.5 if images else 1.0) + (
            -1.0 if images else 0.0
        )
        self.pseudo_inputs = nn.Parameter(init)
        self._encode = [encode]  # a list hides the bound method from nn.Module's attribute magic

    def inputs(self) -> torch.Tensor:
        return torch.sigmoid(self.pseudo_inputs) if self.images else self.pseudo_inputs

    def components(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(means, logvars) [K, d] of q(z | u_k)."""
        return self._encode[0](self.inputs())

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        mu, logvar = self.components()
        return torch.logsumexp(log_normal_components(z, mu, logvar), dim=-1) - math.log(len(mu))

    def sample(
        self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0
    ) -> torch.Tensor:
        with torch.no_grad():
            mu, logvar = (t.cpu() for t in self.components())
            k = torch.randint(len(mu), (n,), generator=generator)
            return mu[k] + temperature * (0.5 * logvar[k]).exp() * torch.randn(
                n, self.latent_dim, generator=generator
            )


PRIOR_NAMES = ("normal", "mog", "vamp")


def make_prior(
    name: str,
    latent_dim: int,
    components: int,
    data_shape: tuple[int, ...],
    encode: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
) -> Prior:
    """The prior named by ``--prior``: normal (fixed N(0, I)), mog (learned mixture), vamp."""
    if name == "mog":
        return MixturePrior(latent_dim, components)
    if name == "vamp":
        return VampPrior(latent_dim, components, data_shape, encode, images=len(data_shape) == 3)
    return StandardNormal(latent_dim)


def log_aggregate_posterior(
    z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, chunk: int = 512
) -> torch.Tensor:
    """log q(z) under the mixture of the n posteriors: z [M, d] -> [M]."""
    out = [torch.logsumexp(log_normal_components(c, mu, logvar), 1) for c in z.split(chunk)]
    return torch.cat(out) - math.log(len(mu))


@torch.no_grad()
def encoder_means(
    encode: Callable[..., tuple[torch.Tensor, torch.Tensor]],
    x: torch.Tensor,
    chunk: int = 500,
    labels: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mu, logvar) of q(z|x) = ``encode(x)`` (``encode(x, y)`` given labels [n], for a
    conditional encoder) for x [n, *shape] on the model's device: two [n, d], float64 on the CPU."""
    if labels is None:
        parts = [encode(c) for c in x.split(chunk)]
    else:
        ys = labels.to(x.device).split(chunk)
        parts = [encode(c, y) for c, y in zip(x.split(chunk), ys, strict=True)]
    mu, logvar = (torch.cat(t).double().cpu() for t in zip(*parts, strict=True))
    return mu, logvar
