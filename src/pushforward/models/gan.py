"""The Generative Adversarial Network: z ~ N(0, I) (or uniform) pushed through a generator G and
trained against a discriminator D (Goodfellow et al. 2014). Two phases, D and G, each with its
own optimizer, driven by the one training loop.

The remedies for mode collapse and instability are flags on the same model, all through the same
loop: packing (PacGAN), the WGAN-GP and hinge objectives, the R1 penalty, spectral
normalisation of D, and an exponential moving average of G's weights for sampling.

May import, of this package: config, data, errors, models/base, models/conditional,
models/gan_frames, models/nets, models/objectives.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, ClassVar

import torch
from torch import nn

from ..config import Options, option
from ..data import Dataset
from ..errors import PushforwardError
from . import conditional as cond
from . import nets
from .base import Model
from .conditional import call
from .gan_frames import GeneratorFrames
from .nets import Standardize, adam, check_arch, decoder, encoder
from .objectives import GAN_LOSSES, penalties

# Adam settings under which the MLP GANs here learn (docs/benchmarks.md: the usual 0.5/0.999
# lost every ring8 mode); GANConfig's defaults use them with R1 and an EMA of G. PLAIN_GAN is
# the experiments' baseline: the same optimiser, 2 hidden layers, no R1, no EMA
STABLE_ADAM: dict[str, Any] = {"lr": 5e-4, "beta1": 0.0, "beta2": 0.9}
PLAIN_GAN: dict[str, Any] = {"hidden": 256, "depth": 2, **STABLE_ADAM, "r1": 0.0, "ema": 0.0}


@dataclass(frozen=True)
class GANConfig(Options):
    latent_dim: int = option(16, "size of z", at_least=1)
    noise: str = option(
        "normal",
        "base distribution of z (mixture: a fixed mixture of Gaussians, so disjoint modes need no "
        "mass between them)",
        ("normal", "uniform", "mixture"),
    )
    arch: str = nets.arch_option()
    hidden: int = nets.hidden_option(256)
    depth: int = nets.depth_option(3)
    blocks: int = nets.blocks_option()
    noise_components: int = option(100, "components of --noise mixture", at_least=1)
    loss: str = option(
        "ns",
        "objective: ns (non-saturating), minimax (saturating), hinge, wgan-gp",
        tuple(GAN_LOSSES),
    )
    d_steps: int = option(1, "discriminator steps per generator step", at_least=1, at_most=100)
    lr: float = option(5e-4, "Adam learning rate of both networks", above=0)
    lr_d: float | None = option(None, "discriminator learning rate (default: --lr)", above=0)
    beta1: float = option(0.0, "Adam beta1 (DCGAN used 0.5)", at_least=0, below=1)
    beta2: float = option(0.9, "Adam beta2", at_least=0, below=1)
    pack: int = option(
        1,
        "PacGAN: D judges packs of this many samples (2-4 fight mode collapse)",
        at_least=1,
        at_most=64,
    )
    gp: float | None = option(
        None,
        "gradient-penalty weight on interpolates (default 10 with wgan-gp, else 0)",
        at_least=0,
    )
    r1: float = option(
        1.0, "R1 penalty weight: gamma/2 E |grad D(x)|^2 on real data (0 = off)", at_least=0
    )
    spectral_norm: bool = option(False, "spectral normalisation of every D layer")
    ema: float = option(
        0.99,
        "decay of an exponential moving average of G used for sampling (0 = off)",
        at_least=0,
        below=1,
    )
    conditional: bool = cond.conditional_option()
    classes: int | None = cond.classes_option()


class GAN(GeneratorFrames, Model):
    """Generator G: z -> x and discriminator D: (a pack of) x -> logit."""

    Config = GANConfig
    phases = ("D", "G")
    explain = "implicit: z ~ N(0, I) through a generator, trained against a discriminator"
    failure_hint = (  # the defaults are the remedies that measured best: a run off them returns
        "a longer run (--steps), the defaults of --lr, --beta1, --beta2, --r1 and --ema, "
        "or --pack 2"
    )

    lead = "A GAN: the generator pushes the z-plane forward, the discriminator pushes back"
    curves = ("D_loss", "G_loss")
    demo: ClassVar[dict[str, dict[str, Any]]] = {
        "ring8": {"steps": 4000},
        "digits": {"steps": 3000},
    }  # its defaults: R1, EMA of G

    @classmethod
    def resolve_config(cls, cfg: GANConfig, data: Dataset, seed: int = 0) -> GANConfig:
        check_arch(cfg.arch, cfg.blocks, data.kind == "images")
        return replace(cfg, classes=cond.resolve_classes(cfg.conditional, cfg.classes, data))

    def __init__(self, config: GANConfig, data_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.config, self.data_shape = config, tuple(data_shape)
        images = len(data_shape) == 3
        arch = config.arch if images else "mlp"
        k = self.classes = config.classes or 0  # conditional: G takes the label beside z
        self.generator = decoder(
            config.latent_dim + k,
            self.data_shape,
            arch,
            config.hidden,
            config.depth,
            norm=True,
            blocks=config.blocks,
        )
        # a pack of m examples enters D as one: channels (images) or coordinates (points) stacked
        m = config.pack
        d_shape = (m * data_shape[0], *data_shape[1:])
        self.discriminator = encoder(
            d_shape,
            config.hidden if k else 1,  # conditional: features for the projection head
            arch,
            config.hidden,
            config.depth,
            act=lambda: nn.LeakyReLU(0.2),
            norm=not config.spectral_norm,
            blocks=config.blocks,
        )
        if k:
            self.generator = cond.LabelledInput(self.generator, k, planes=False)
            self.discriminator = cond.ProjectionCritic(
                self.discriminator, config.hidden, k, m, lambda: nn.LeakyReLU(0.2)
            )
            self.condition_on(k)
        if config.spectral_norm:
            for module in list(self.discriminator.modules()):
                if isinstance(module, (nn.Linear, nn.Conv2d)):
                    nn.utils.parametrizations.spectral_norm(module)
        # images live in [0, 1]: squash the generator's output there; points are standardized
        # inside the model (fitted by ``prepare``), so both networks see unit-scale data
        self.out = nn.Sigmoid() if images else nn.Identity()
        self.standardize = Standardize(self.data_shape)
        self.d_loss, self.g_loss = GAN_LOSSES[config.loss]
        self.gp = (
            config.gp if config.gp is not None else (10.0 if config.loss == "wgan-gp" else 0.0)
        )
        if config.noise == "mixture":
            # fixed, seeded centres in [-1, 1]^d with std 0.2 (DeLiGAN's initialisation): far
            # apart in 16-d, so G can send each component to one mode and leave the gaps empty
            g = torch.Generator().manual_seed(0)
            centres = torch.rand(config.noise_components, config.latent_dim, generator=g) * 2 - 1
            self.register_buffer("noise_centres", centres)  # [K, d], saved with the weights
            self._centres_cpu = centres  # drawn from on the host: no device sync per step
        self.generator_ema = (
            copy.deepcopy(self.generator).requires_grad_(False) if config.ema > 0 else None
        )

    @classmethod
    def bench_options(cls, data: Dataset) -> dict[str, Any]:
        return {"arch": "conv", "hidden": 64} if data.kind == "images" else {}

    def prepare(self, data: Dataset) -> None:
        """Points are standardized inside the model, so both networks see unit-scale data. A
        conditional model notes how often each class occurs."""
        if data.kind == "points":
            self.standardize.fit(data.train)
        self.note_classes(data)

    def training_failures(self, history: list[dict[str, Any]]) -> list[str]:
        """A discriminator that separates real from fake almost perfectly at the end (its
        classification loss near 0) leaves the generator no useful gradient."""
        last = history[-1] if history else {}
        d_loss = last.get("D_loss")
        if self.config.loss == "wgan-gp" or not isinstance(d_loss, (int, float)):
            return []  # a Wasserstein critic's loss has no such floor
        if d_loss < 0.05:
            return [f"the discriminator has won outright (its loss is {d_loss:.3f} at the end)"]
        return []

    def sampler_parameters(self) -> int:
        """The generator: the discriminator only helps training."""
        return sum(p.numel() for p in self.generator.parameters())

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
            "D": adam(self.discriminator.parameters(), c.lr_d or c.lr, betas),
            "G": adam(self.generator.parameters(), c.lr, betas),
        }

    @torch.no_grad()
    def after_step(self, phase: str, step: int) -> None:
        """After each G update: ema <- decay * ema + (1 - decay) * G (buffers copied). The
        decay warms up as (1 + step) / (10 + step) until it reaches --ema, so a short run's
        average is not mostly the initial weights (0.999 ** 300 = 0.74 of them)."""
        if phase != "G" or self.generator_ema is None:
            return
        decay = min(self.config.ema, (1 + step) / (10 + step))
        for e, p in zip(self.generator_ema.parameters(), self.generator.parameters(), strict=True):
            e.lerp_(p, 1 - decay)
        for eb, b in zip(self.generator_ema.buffers(), self.generator.buffers(), strict=True):
            eb.copy_(b)

    def double_backward(self, phase: str) -> bool:
        """D's gradient penalties (R1, WGAN-GP) differentiate a gradient."""
        return phase == "D" and (self.gp > 0 or self.config.r1 > 0)

    def noise(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: torch.device | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """z [n, latent_dim] from the base distribution: drawn on the host with ``generator``
        (samples), or on ``device`` (training steps: a compiled step on a GPU draws it inside
        its CUDA graph, which a copy from the host would break). ``temperature`` scales the
        spread about the centre: the cube's half-width, the Gaussian's or each mixture
        component's standard deviation."""
        shape = (n, self.config.latent_dim)
        # generator only when given: torch.compile cannot trace generator=None
        draw: dict[str, Any] = (
            {"generator": generator} if generator is not None else {"device": device}
        )
        if self.config.noise == "uniform":
            return (torch.rand(shape, **draw) * 2 - 1) * temperature
        if self.config.noise == "mixture":
            c = self._centres_cpu if device is None else self.noise_centres
            assert isinstance(c, torch.Tensor)
            k = torch.randint(len(c), (n,), **draw)
            return c[k] + (0.2 * temperature) * torch.randn(shape, **draw)
        return torch.randn(shape, **draw) * temperature

    def generate(
        self, z: torch.Tensor, net: nn.Module | None = None, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """G(z) in data units (``net`` swaps in the EMA generator; y [n]: the labels of a
        conditional one)."""
        return self.standardize.inverse(self.out(call(net or self.generator, z, y)))

    def _critic(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """D's logits for standardized inputs x [B, *shape] (labels y [B]), packed: [B // pack]."""
        m = self.config.pack
        b = len(x) // m * m
        if b == 0:
            raise PushforwardError(f"--batch-size must be at least --pack {m}")
        x = x[:b].reshape(b // m, m * self.data_shape[0], *self.data_shape[1:])
        packs = None if y is None else y[:b].reshape(b // m, m, *y.shape[1:])  # [B // m, m]
        return call(self.discriminator, x, packs).float().squeeze(-1)

    def discriminate(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """D's logits for data-unit inputs x [B, *shape] (labels y [B]): [B // pack]."""
        return self._critic(self.standardize(x), y)

    def penalties(
        self, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """WGAN-GP's and R1's penalties (models/objectives.py) in the standardized space D works
        in (a conditional D at the batch's labels y, which real and fake share)."""
        x_real, x_fake = self.standardize(real), self.standardize(fake)
        return penalties(partial(self._critic, y=y), x_real, x_fake, self.gp, self.config.r1)

    def loss(
        self, x: torch.Tensor, phase: str, y: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """The phase's loss on a real batch x [B, *shape]; for D also its mean logit (critic score)
        on real and fake, and each penalty. A conditional GAN's fakes are drawn for the real
        batch's labels y [B], so D compares like with like."""
        z = self.noise(len(x), device=x.device)
        if phase == "D":
            with torch.no_grad():
                fake = self.generate(z, y=y)
            real_logits, fake_logits = self.discriminate(x, y), self.discriminate(fake, y)
            pens = self.penalties(x, fake, y)
            loss = self.d_loss(real_logits, fake_logits) + sum(
                pens.values(), torch.zeros((), device=x.device)
            )
            return {
                "loss": loss,
                "d_real": real_logits.mean(),
                "d_fake": fake_logits.mean(),
                **pens,
            }
        return {"loss": self.g_loss(self.discriminate(self.generate(z, y=y), y))}

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        labels: torch.Tensor | int | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """G(z) for n draws of z (under class labels, conditional): [n, *shape], from the EMA
        generator when there is one. Eval mode, so batch norm uses running statistics."""
        net = self.generator_ema or self.generator
        was = net.training
        net.eval()
        y = self.draw_labels(n, labels, generator)
        z = self.noise(n, generator, temperature=temperature).to(next(self.parameters()).device)
        x = self.generate(z, net, y).float()
        net.train(was)
        return x
