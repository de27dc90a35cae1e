"""The GAN's objectives, one table: each name of ``--loss`` is a pair of losses computed from
the discriminator's logits, one for D and one for G; and the gradient penalties (WGAN-GP's, R1),
which take the discriminator itself.

May import torch only; imported by models/gan.py.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

LossPair = tuple[
    Callable[[torch.Tensor, torch.Tensor], torch.Tensor],  # (D(x) logits, D(G(z)) logits) -> D loss
    Callable[[torch.Tensor], torch.Tensor],  # D(G(z)) logits -> G loss
]


def _bce_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """-E log D(x) - E log(1 - D(G(z))), with D = sigmoid(logit)."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def _critic_g(fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean()


GAN_LOSSES: dict[str, LossPair] = {
    # min_G max_D E log D(x) + E log(1 - D(G(z))): G minimises log(1 - D(G(z))), which saturates
    "minimax": (_bce_d, lambda fake: -F.softplus(fake).mean()),
    # the non-saturating variant: G maximises log D(G(z)) instead
    "ns": (_bce_d, lambda fake: F.softplus(-fake).mean()),
    # Lim & Ye 2017 / Miyato et al. 2018: a margin for D, the critic's score for G
    "hinge": (lambda real, fake: F.relu(1 - real).mean() + F.relu(1 + fake).mean(), _critic_g),
    # Gulrajani et al. 2017: the Wasserstein critic; its gradient penalty is added in GAN.loss
    "wgan-gp": (lambda real, fake: fake.mean() - real.mean(), _critic_g),
}


def _grad_norms(critic: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """|grad_x D| per pack at inputs x [B, *shape] (``critic`` packs them: [B // m] logits),
    keeping the graph for the penalty."""
    x = x.detach().requires_grad_(True)
    out = critic(x)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return grad[: len(x) // len(out) * len(out)].reshape(len(out), -1).norm(dim=1)


def penalties(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    gp: float,
    r1: float,
) -> dict[str, torch.Tensor]:
    """WGAN-GP's gp (|grad D| - 1)^2 on random interpolates of real and fake [B, *shape], and
    R1's r1/2 |grad D|^2 on real data (Mescheder et al. 2018); those with weight 0 left out."""
    out = {}
    if gp > 0:
        eps = torch.rand(len(real), *[1] * (real.dim() - 1), device=real.device)
        mixed = eps * real + (1 - eps) * fake
        out["gp"] = gp * (_grad_norms(critic, mixed) - 1).pow(2).mean()
    if r1 > 0:
        out["r1"] = 0.5 * r1 * _grad_norms(critic, real).pow(2).mean()
    return out
