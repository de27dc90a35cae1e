"""The VAE: its likelihoods and KL against torch.distributions, every decoder option, and a
trained model beating an untrained one on digits by a clear margin."""

from __future__ import annotations

import pytest
import torch
from torch import distributions as D

import pushforward
from pushforward.models.vae import VAE, VAEConfig


def _vae(shape: tuple[int, ...], **kw: object) -> VAE:
    cfg = VAE.resolve_config(VAEConfig(**kw), "images" if len(shape) == 3 else "points")  # type: ignore[arg-type]
    return VAE(cfg, shape)


def test_analytic_kl_matches_torch() -> None:
    m = _vae((2,), latent_dim=3)
    mu, logvar = torch.randn(5, 3), torch.randn(5, 3)
    q = D.Normal(mu, (0.5 * logvar).exp())
    p = D.Normal(torch.zeros(3), torch.ones(3))
    assert torch.allclose(m.prior.analytic_kl(mu, logvar), D.kl_divergence(q, p).sum(-1), atol=1e-5)


@pytest.mark.parametrize("var", ["learned", "global", "fixed", "output"])
def test_gaussian_likelihood_matches_torch(var: str) -> None:
    m = _vae((2,), likelihood="gaussian", decoder_var=var, decoder_std=0.3)
    x, z = torch.randn(4, 2), torch.randn(4, m.config.latent_dim)
    mean, log_std = m._decode(z)
    expected = D.Normal(mean, log_std.exp().expand_as(mean)).log_prob(x).sum(-1)
    assert torch.allclose(m.log_likelihood(x, z), expected, atol=1e-4)
    assert torch.isfinite(m.loss(x, "main")["loss"])


def test_bernoulli_likelihood_matches_torch() -> None:
    m = _vae((1, 8, 8))
    x, z = torch.bernoulli(torch.full((4, 1, 8, 8), 0.3)), torch.randn(4, 16)
    logits, _ = m._decode(z)
    expected = D.Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(m.log_likelihood(x, z), expected, atol=1e-4)


def test_mc_kl_estimates_the_analytic_kl() -> None:
    m = _vae((2,), latent_dim=4)
    mu, logvar = torch.randn(1, 4).expand(20000, 4), torch.randn(1, 4).expand(20000, 4)
    eps = torch.randn(20000, 4)
    z = mu + (0.5 * logvar).exp() * eps
    log_q = D.Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    mc = (log_q - m.prior.log_prob(z)).mean()
    assert float(mc) == pytest.approx(float(m.prior.analytic_kl(mu[:1], logvar[:1])), abs=0.05)


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_conv_networks_fit_image_shapes(shape: tuple[int, ...]) -> None:
    m = _vae(shape, arch="conv", hidden=8, latent_dim=4)
    x = torch.rand(3, *shape).bernoulli()
    assert m.reconstruct(x).shape == (3, *shape)
    assert m.sample(5).shape == (5, *shape)
    assert m.interpolate(x[:2], x[1:], 4).shape == (8, *shape)
    assert torch.isfinite(m.loss(x, "main")["loss"])


def test_trained_vae_beats_untrained_on_digits(tmp_path) -> None:
    untrained = pushforward.train("vae", data="digits", steps=1, out="u", progress=False, lr=1e-12)
    trained = pushforward.train("vae", data="digits", steps=400, out="t", progress=False)
    before, after = untrained.evaluate(["elbo"])["elbo"], trained.evaluate(["elbo"])["elbo"]
    # 64 Bernoulli pixels at p = 0.5 cost 64 log 2 = 44.4 nats; a trained VAE needs far fewer
    assert before < -40
    assert after > before + 12, (before, after)
    ev = trained.evaluate(["elbo"])
    assert ev["elbo"] == pytest.approx(ev["recon_nats"] - ev["kl_nats"], abs=1e-3)
    assert ev["kl_nats"] > 0.5  # the latent code is used


def test_vae_on_ring8_beats_a_single_gaussian() -> None:
    """Pushed through a network, the 2-D Gaussian base bends into the ring: the ELBO (a lower
    bound on log p) beats the exact likelihood of the best single Gaussian by > 1.5 nats."""
    gauss = pushforward.train("gmm", data="ring8", components=1, out="g", progress=False)
    run = pushforward.train(
        "vae",
        data="ring8",
        steps=1500,
        out="v",
        progress=False,
        latent_dim=2,
        hidden=128,
        batch_size=256,
    )
    single = -gauss.evaluate()["nll_nats"]  # about -2.15
    ev = run.evaluate(["elbo", "modes"])
    assert ev["elbo"] > single + 1.5, (ev["elbo"], single)
    assert ev["modes"] == 8
    x = run.sample(4000, seed=0)
    assert (x.std(0) - run.data.test.std(0)).abs().max() < 0.1  # samples in data units
