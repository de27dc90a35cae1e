"""The Generative Adversarial Network: z ~ N(0, I) (or uniform) pushed through a generator G and
trained against a discriminator D (Goodfellow et al. 2014). Two phases, D and G, each with its
own optimizer, driven by the one training loop.

Losses live in ``GAN_LOSSES`` as (discriminator loss, generator loss) pairs of functions of D's
logits, so further objectives plug in without touching the loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import option
from ..errors import PushforwardError
from .nets import Standardize, decoder, encoder

LossPair = tuple[
    Callable[[torch.Tensor, torch.Tensor], torch.Tensor],  # (D(x) logits, D(G(z)) logits) -> D loss
    Callable[[torch.Tensor], torch.Tensor],  # D(G(z)) logits -> G loss
]

GAN_LOSSES: dict[str, LossPair] = {
    # min_G max_D E log D(x) + E log(1 - D(G(z))): G minimises log(1 - D(G(z))), which saturates
    "minimax": (
        lambda real, fake: F.softplus(-real).mean() + F.softplus(fake).mean(),
        lambda fake: -F.softplus(fake).mean(),
    ),
    # the non-saturating variant: G maximises log D(G(z)) instead
    "ns": (
        lambda real, fake: F.softplus(-real).mean() + F.softplus(fake).mean(),
        lambda fake: F.softplus(-fake).mean(),
    ),
}


@dataclass(frozen=True)
class GANConfig:
    latent_dim: int = option(16, "size of z")
    noise: str = option("normal", "base distribution of z", ("normal", "uniform"))
    arch: str = option("mlp", "network family", ("mlp", "conv"))
    hidden: int = option(256, "MLP width, or the first conv layer's channels")
    depth: int = option(3, "hidden layers of each MLP")
    loss: str = option("ns", "objective: minimax (saturating) or non-saturating", tuple(GAN_LOSSES))
    d_steps: int = option(1, "discriminator steps per generator step")
    lr: float = option(2e-4, "Adam learning rate of both networks")
    lr_d: float | None = option(None, "discriminator learning rate (default: --lr)")
    beta1: float = option(0.5, "Adam beta1 (0.5 is the usual GAN choice)")
    beta2: float = option(0.999, "Adam beta2")


class GAN(nn.Module):
    """Generator G: z -> x and discriminator D: x -> logit."""

    Config = GANConfig
    phases: tuple[str, ...] = ("D", "G")

    @staticmethod
    def resolve_config(cfg: GANConfig, kind: str) -> GANConfig:
        if cfg.arch == "conv" and kind != "images":
            raise PushforwardError("--arch conv needs image data; use --arch mlp for points")
        if cfg.d_steps < 1:
            raise PushforwardError(f"--d-steps {cfg.d_steps}: must be at least 1")
        return cfg

    def __init__(self, config: GANConfig, data_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.config, self.data_shape = config, tuple(data_shape)
        images = len(data_shape) == 3
        arch = config.arch if images else "mlp"
        self.generator = decoder(
            config.latent_dim, self.data_shape, arch, config.hidden, config.depth, norm=True
        )
        self.discriminator = encoder(
            self.data_shape,
            1,
            arch,
            config.hidden,
            config.depth,
            act=lambda: nn.LeakyReLU(0.2),
            **({"norm": True} if arch == "conv" else {}),
        )
        # images live in [0, 1]: squash the generator's output there; points are standardized
        # inside the model (fitted by the trainer), so both networks see unit-scale data
        self.out = nn.Sigmoid() if images else nn.Identity()
        self.standardize = Standardize(self.data_shape)
        self.d_loss, self.g_loss = GAN_LOSSES[config.loss]

    @property
    def schedule(self) -> tuple[str, ...]:
        """Phases of one training step: d_steps discriminator updates, then one generator update."""
        return ("D",) * self.config.d_steps + ("G",)

    def phase_modules(self, phase: str) -> list[nn.Module]:
        return [self.discriminator] if phase == "D" else [self.generator]

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        betas = (c.beta1, c.beta2)
        return {
            "D": torch.optim.Adam(self.discriminator.parameters(), lr=c.lr_d or c.lr, betas=betas),
            "G": torch.optim.Adam(self.generator.parameters(), lr=c.lr, betas=betas),
        }

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        shape = (n, self.config.latent_dim)
        if self.config.noise == "uniform":
            return torch.rand(shape, generator=generator) * 2 - 1
        return torch.randn(shape, generator=generator)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """G(z) in data units."""
        return self.standardize.inverse(self.out(self.generator(z)))

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        """D's logits [B] for data-unit inputs x [B, *shape]."""
        return self.discriminator(self.standardize(x)).float().squeeze(-1)

    def loss(self, x: torch.Tensor, phase: str) -> dict[str, torch.Tensor]:
        """The phase's loss on a real batch x [B, *shape]; also D's mean output on real and fake."""
        z = self.noise(len(x)).to(x.device)
        if phase == "D":
            with torch.no_grad():
                fake = self.generate(z)
            real_logits = self.discriminate(x)
            fake_logits = self.discriminate(fake)
            return {
                "loss": self.d_loss(real_logits, fake_logits),
                "d_real": torch.sigmoid(real_logits).mean(),
                "d_fake": torch.sigmoid(fake_logits).mean(),
            }
        fake_logits = self.discriminate(self.generate(z))
        return {"loss": self.g_loss(fake_logits)}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """G(z) for n draws of z: [n, *shape]. Eval mode, so batch norm uses running statistics."""
        was = self.training
        self.eval()
        z = self.noise(n, generator).to(next(self.parameters()).device)
        x = self.generate(z).float()
        self.train(was)
        return x
