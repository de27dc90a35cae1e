"""The Variational Autoencoder: a Gaussian base z ~ p(z) pushed through a decoder network, trained
by maximising the ELBO with an amortised Gaussian encoder q(z|x) and the reparameterisation trick.

ELBO(x) = E_q[log p(x|z)] - beta * KL(q(z|x) || p(z)), reported in nats per example.

May import, of this package: config, data, errors, models/base, models/conditional,
models/drawing, models/iwae, models/nets, models/priors, models/vae_frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Options, option
from ..data import Dataset
from ..errors import PushforwardError
from . import conditional as cond
from . import nets
from .base import Encoder, Model
from .conditional import LabelledInput, call, one_hot
from .iwae import ImportanceWeighted
from .nets import Standardize, adam, check_arch, decoder, encoder
from .priors import PRIOR_NAMES, Prior, log_normal_standardized, make_prior
from .vae_frames import LatentFrames


@dataclass(frozen=True)
class VAEConfig(Options):
    latent_dim: int | None = option(
        None,
        "size of z (default: 16 for images; for points, their dimension up to 16)",
        at_least=1,
    )
    arch: str = nets.arch_option()
    hidden: int = nets.hidden_option(512)
    depth: int = nets.depth_option(2)
    blocks: int = nets.blocks_option()
    likelihood: str = option(
        "auto",
        "p(x|z); auto: bernoulli for images, gaussian for points",
        ("auto", "bernoulli", "gaussian"),
    )
    decoder_var: str = option(
        "learned",
        "gaussian p(x|z) variance: learned per dimension, one learned scalar, fixed, or "
        "output by the decoder",
        ("learned", "global", "fixed", "output"),
    )
    decoder_std: float = option(
        0.1, "the std of a fixed gaussian p(x|z), and the start of a learned one", above=0
    )
    prior: str = option(
        "normal", "p(z): fixed N(0, I), a learned mixture, or the VampPrior", PRIOR_NAMES
    )
    prior_components: int = option(
        50, "mixture components (mog) or pseudo-inputs (vamp)", at_least=1
    )
    beta: float = option(1.0, "weight of the KL term (1 = the ELBO)", at_least=0)
    kl_warmup: int = option(
        0, "steps over which the KL weight rises linearly from 0 to beta", at_least=0
    )
    free_bits: float = option(
        0.0, "nats per latent dimension the KL is not pushed below (Kingma et al. 2016)", at_least=0
    )
    iw_samples: int = option(
        1,
        "train on the importance-weighted bound with this many z per example (IWAE, Burda et "
        "al. 2015); 1 = the ELBO",
        at_least=1,
        at_most=5000,
    )
    lr: float = option(1e-3, "Adam learning rate", above=0)
    conditional: bool = cond.conditional_option()
    classes: int | None = cond.classes_option()


class VAE(LatentFrames, Model, ImportanceWeighted, Encoder):
    """Gaussian encoder, decoder with a Bernoulli (logits) or Gaussian likelihood, prior p(z)."""

    Config = VAEConfig
    phases = ("main",)
    explain = "implicit: z ~ N(0, I) through a decoder, trained on the ELBO"
    failure_hint = "a longer run (--steps), --kl-warmup 1000 or --free-bits 0.1"
    lead = "A VAE: the latent plane, its prior and its holes, and the decoder's map"
    demo: ClassVar[dict[str, dict[str, Any]]] = {
        "ring8": {"latent_dim": 2, "hidden": 128, "batch_size": 256, "steps": 3000},
        "digits": {"latent_dim": 8, "hidden": 256, "epochs": 150},
    }
    steps_done: torch.Tensor  # [] training steps taken, for the KL warm-up

    @classmethod
    def resolve_config(cls, cfg: VAEConfig, data: Dataset, seed: int = 0) -> VAEConfig:
        """Fill the data-dependent defaults: the likelihood follows the kind of data, and on
        points z is no bigger than x (a 16-d z for 2-d points left samples a diffuse cloud
        over grid25: 4% near a mode against 28% with a 2-d z, docs/benchmarks.md#defaults)."""
        images = data.kind == "images"
        if cfg.likelihood == "auto":
            cfg = replace(cfg, likelihood="bernoulli" if images else "gaussian")
        if cfg.latent_dim is None:
            cfg = replace(cfg, latent_dim=16 if images else min(16, data.dim))
        check_arch(cfg.arch, cfg.blocks, data.kind == "images")
        return replace(cfg, classes=cond.resolve_classes(cfg.conditional, cfg.classes, data))

    def __init__(self, config: VAEConfig, data_shape: tuple[int, ...]) -> None:
        super().__init__()
        if config.likelihood == "auto" or config.latent_dim is None:
            raise ValueError("resolve_config first")  # an internal misuse, not a user error
        self.config, self.data_shape = config, tuple(data_shape)
        d, k = config.latent_dim, config.classes or 0
        arch = config.arch if len(data_shape) == 3 else "mlp"
        self.classes = k  # conditional: the label enters the encoder and the decoder
        self.encoder = encoder(
            cond.labelled_shape(self.data_shape, k, arch == "conv"),
            2 * d,
            arch,
            config.hidden,
            config.depth,
            blocks=config.blocks,
        )
        per_example_var = config.likelihood == "gaussian" and config.decoder_var == "output"
        self.decoder = decoder(
            d + k,
            self.data_shape,
            arch,
            config.hidden,
            config.depth,
            2 if per_example_var else 1,
            blocks=config.blocks,
        )
        if config.iw_samples > 1 and config.free_bits > 0:
            raise PushforwardError(
                "--free-bits has no meaning for the importance-weighted bound (its KL is not a "
                "separate term): drop --free-bits or use --iw-samples 1"
            )
        if k:
            self.encoder = LabelledInput(self.encoder, k, planes=arch == "conv")
            self.decoder = LabelledInput(self.decoder, k, planes=False)
            self.condition_on(k)
        self.prior: Prior = make_prior(
            config.prior, d, config.prior_components, self.data_shape, self._encode_pseudo
        )
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))  # for KL warm-up
        # points are standardized inside the model (fitted by ``prepare``); images stay in [0, 1]
        self.standardize = Standardize(self.data_shape)
        log_std = math.log(config.decoder_std)
        n_var = {"learned": math.prod(data_shape), "global": 1}.get(config.decoder_var, 0)
        self.log_std = (
            nn.Parameter(torch.full((n_var,), log_std))
            if config.likelihood == "gaussian" and n_var
            else None
        )

    @classmethod
    def bernoulli_pixels(cls, cfg: VAEConfig) -> bool:
        return cfg.likelihood == "bernoulli"

    @classmethod
    def bench_options(cls, data: Dataset) -> dict[str, Any]:
        if data.kind == "images":
            return {"latent_dim": 16, "hidden": 512}
        return {"latent_dim": 2, "hidden": 128, "batch_size": 256}

    def prepare(self, data: Dataset) -> None:
        """Points are standardized inside the model; images stay in [0, 1]. A conditional
        model notes how often each class occurs."""
        if data.kind == "points":
            self.standardize.fit(data.train)
        self.note_classes(data)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"main": adam(self.parameters(), self.config.lr)}

    def sampler_parameters(self) -> int:
        """The decoder and the prior: the encoder only helps training."""
        return sum(p.numel() for part in (self.decoder, self.prior) for p in part.parameters())

    @property
    def trains_on_k(self) -> int:
        return self.config.iw_samples

    # ------------------------------------------------------------------ the model

    def encode(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, *shape] (and labels y [B], conditional) -> (mu, logvar), each [B, d]."""
        mu, logvar = call(self.encoder, self.standardize(x), y).float().chunk(2, dim=-1)
        return mu, logvar.clamp(-30, 20)

    def _encode_pseudo(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The VampPrior's pseudo-inputs u [K, *shape] encoded (conditional: under the classes
        in turn, so the prior is a mixture over all of them)."""
        y = torch.arange(len(u), device=u.device) % self.classes if self.classes else None
        return self.encode(u, y)

    def _decode(
        self, z: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """z [B, d] -> (mean or logits [B, *shape], log std broadcastable to it, for gaussians)."""
        out = call(self.decoder, z, y).float()
        if self.config.likelihood == "bernoulli":
            return out, None
        if self.config.decoder_var == "output":
            mean, log_std = out.chunk(2, dim=1)
            return mean, log_std.clamp(-7, 5)
        if self.log_std is None:
            return out, torch.full((1,), math.log(self.config.decoder_std), device=out.device)
        log_std = self.log_std.clamp(-7, 5)
        return out, log_std.view(1, *self.data_shape) if log_std.numel() > 1 else log_std

    def log_likelihood(
        self, x: torch.Tensor, z: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """log p(x|z) summed over dimensions, in data units: [B]."""
        out, log_std = self._decode(z, y)
        if log_std is None:
            return (
                -F.binary_cross_entropy_with_logits(out, x.float(), reduction="none")
                .flatten(1)
                .sum(1)
            )
        y = self.standardize(x.float())
        ll = -0.5 * ((y - out) / log_std.exp()).pow(2) - log_std - 0.5 * math.log(2 * math.pi)
        return ll.flatten(1).sum(1) - self.standardize.log_scale_sum()

    def elbo(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        y: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Per-example ELBO and its terms, [B] each: ``elbo`` = ``recon`` - ``kl`` (beta = 1)."""
        mu, logvar = self.encode(x, y)
        eps = (
            torch.randn(mu.shape, generator=generator).to(mu)
            if generator is not None
            else torch.randn_like(mu)
        )
        z = mu + (0.5 * logvar).exp() * eps
        recon = self.log_likelihood(x, z, y)
        kl_dims = self.prior.analytic_kl(mu, logvar)  # [B, d] or None
        if kl_dims is None:  # one-sample Monte Carlo KL for priors without a closed form
            kl = log_normal_standardized(eps, logvar) - self.prior.log_prob(z)
            out = {}
        else:
            kl = kl_dims.sum(-1)
            out = {"kl_dims": kl_dims}
        return {"elbo": recon - kl, "recon": recon, "kl": kl, **out}

    def log_likelihood_many(
        self, x: torch.Tensor, z: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """log p(x_b | z_ib) for many z per example: x [B, *shape], z [kk, B, d] -> [kk, B].
        Bernoulli: x.l - softplus(l) with x broadcast, so the k copies of x are never built."""
        kk, b, d = z.shape
        ys = None if y is None else y.repeat(kk, *[1] * (y.dim() - 1))  # [kk * B], as z's rows
        if self.config.likelihood != "bernoulli":
            xs = x.unsqueeze(0).expand(kk, *x.shape).reshape(kk * b, *x.shape[1:])
            return self.log_likelihood(xs, z.reshape(kk * b, d), ys).view(kk, b)
        logits = call(self.decoder, z.reshape(kk * b, d), ys).float().view(kk, b, -1)
        xl = torch.einsum("kbd,bd->kb", logits, x.reshape(b, -1).to(logits))
        return xl - F.softplus(logits).sum(-1)

    def _kl_weight(self, device: torch.device) -> torch.Tensor:
        """beta, scaled by the warm-up's linear ramp: a tensor op, so the loop never syncs."""
        c = self.config
        weight = torch.tensor(c.beta, device=device)
        if c.kl_warmup > 0:
            weight = weight * ((self.steps_done + 1).float() / c.kl_warmup).clamp(max=1.0)
        return weight

    def loss(
        self, x: torch.Tensor, phase: str, y: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Negative (beta-)ELBO averaged over the batch, with its terms for logging; under
        ``iw_samples`` K > 1 the negative IWAE-K bound instead (also logged as ``iwae``)."""
        c = self.config
        weight = self._kl_weight(x.device)
        if self.training:
            self.steps_done += 1
        if c.iw_samples > 1:
            return self.iw_loss(x, weight, c.iw_samples, y)
        t = self.elbo(x, y=y)
        kl_term = t["kl"].mean()
        if c.free_bits > 0:  # no pressure below free_bits nats per dimension (batch average)
            if "kl_dims" in t:
                kl_term = t["kl_dims"].mean(0).clamp(min=c.free_bits).sum()
            else:
                kl_term = kl_term.clamp(min=c.free_bits * c.latent_dim)
        loss = -t["recon"].mean() + weight * kl_term
        return {
            "loss": loss,
            "elbo": t["elbo"].mean(),
            "recon": t["recon"].mean(),
            "kl": t["kl"].mean(),
        }

    # ------------------------------------------------------------------ using it

    @torch.no_grad()
    def decode_mean(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The decoder's mean: pixel probabilities (Bernoulli) or the Gaussian mean."""
        out, log_std = self._decode(z, y)
        return torch.sigmoid(out) if log_std is None else self.standardize.inverse(out)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        labels: torch.Tensor | int | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """z ~ p(z) pushed through the decoder (under the class labels, conditional): [n, *shape]."""
        y = self.draw_labels(n, labels, generator)
        return self.generate(self.prior.sample(n, generator, temperature), generator, y)

    @torch.no_grad()
    def generate(
        self,
        z: torch.Tensor,
        generator: torch.Generator | None = None,
        y: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Decode given latents z [n, d] (from the prior, or from an ex-post density). Points are
        full draws from p(x|z); images are the decoder's mean (pixel probabilities)."""
        out, log_std = self._decode(z.to(self.device), None if y is None else y.to(self.device))
        if log_std is None:
            return torch.sigmoid(out)
        if len(self.data_shape) == 3:
            return self.standardize.inverse(out)
        noise = torch.randn(out.shape, generator=generator).to(out)
        return self.standardize.inverse(out + log_std.exp() * noise)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Decoder mean at the encoder mean: [B, *shape] -> [B, *shape]."""
        y = None if y is None else y.to(self.device)
        return self.decode_mean(self.encode(x.to(self.device), y)[0], y)

    @torch.no_grad()
    def interpolate(
        self,
        a: torch.Tensor,
        b: torch.Tensor,
        steps: int,
        ya: torch.Tensor | None = None,
        yb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Decode the straight line between the encodings of a [B, *shape] and b: [B * steps,
        *shape]; a conditional model's one-hot label moves from a's to b's along it."""
        dev = self.device
        ya, yb = (None if y is None else y.to(dev) for y in (ya, yb))
        za, zb = self.encode(a.to(dev), ya)[0], self.encode(b.to(dev), yb)[0]
        t = torch.linspace(0, 1, steps, device=za.device)[None, :, None]
        z = za[:, None] * (1 - t) + zb[:, None] * t  # [B, steps, d]
        y = None
        if ya is not None and yb is not None:
            ha, hb = (one_hot(v, self.classes, z.dtype)[:, None] for v in (ya, yb))  # [B, 1, K]
            y = (ha * (1 - t) + hb * t).flatten(0, 1)  # [B * steps, K]
        return self.decode_mean(z.flatten(0, 1), y)
