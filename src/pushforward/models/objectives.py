"""The GAN's objectives, one table: each name of ``--loss`` is a pair of losses computed from
the discriminator's logits, one for D and one for G. The gradient penalties (WGAN-GP's, R1) need
the discriminator itself and live on the model (models/gan.py).

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
