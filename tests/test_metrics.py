"""Metrics on hand-made inputs with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from pushforward.data import TOY_MODES, TOY_STD, load_dataset
from pushforward.metrics.modes import mode_coverage

RING = torch.as_tensor(TOY_MODES["ring8"])


def test_perfect_samples_cover_every_mode_uniformly() -> None:
    x = RING.repeat(100, 1) + 0.005 * torch.randn(
        800, 2, generator=torch.Generator().manual_seed(0)
    )
    r = mode_coverage(x, RING, 0.01)
    assert (
        r["modes"] == 8
        and r["hq_fraction"] == 1.0
        and r["reverse_kl_modes"] == pytest.approx(0.0, abs=1e-12)
    )


def test_collapsed_and_off_mode_samples() -> None:
    x = torch.cat([RING[:2].repeat(50, 1), torch.zeros(100, 2)])  # two modes, half at the centre
    r = mode_coverage(x, RING, 0.01)
    assert r["modes"] == 2 and r["hq_fraction"] == 0.5
    assert r["reverse_kl_modes"] == pytest.approx(math.log(4))  # uniform over 2 of 8 modes
    assert mode_coverage(torch.zeros(10, 2), RING, 0.01)["modes"] == 0
    # the 3-sd boundary: 0.029 away counts, 0.031 does not
    edge = RING[:1] + torch.tensor([[0.029, 0.0], [0.031, 0.0]], dtype=RING.dtype)
    assert mode_coverage(edge, RING, 0.01)["hq_fraction"] == 0.5


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_spread_within_modes_is_one_for_the_data_and_halves_with_its_offsets(name: str) -> None:
    """hq_spread compares the high-quality samples' distance from their modes with the data's:
    test points score 1 (measured 0.999 and 1.003 on 10,000), the same points moved half way to
    their modes 0.5, and points on the modes 0, whatever the other scores say."""
    modes, std = torch.as_tensor(TOY_MODES[name]), TOY_STD[name]
    x = load_dataset(name).test.double()  # [10000, 2]
    nearest = modes[torch.cdist(x, modes).argmin(1)]
    spreads = [mode_coverage(y, modes, std)["hq_spread"] for y in (x, (x + nearest) / 2, nearest)]
    assert spreads[0] == pytest.approx(1.0, abs=0.02)
    assert spreads[1] == pytest.approx(0.5, abs=0.03)  # cut at 3 sd: a few more points count
    assert spreads[2] == pytest.approx(0.0, abs=1e-9)
    assert math.isnan(mode_coverage(torch.full((3, 2), 50.0), modes, std)["hq_spread"])  # none


# ---------------------------------------------------------------- IWAE


def test_iwae_bound_is_above_the_elbo_and_rises_with_k() -> None:
    import pushforward

    run = pushforward.train("vae", data="digits", steps=300, out="v", progress=False, latent_dim=4)
    x = run.data.test
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    with torch.no_grad():
        elbo = float(run.model.elbo(x, generator=g())["elbo"].double().mean())
    bounds = [float(run.model.iwae_bound(x, k, generator=g()).mean()) for k in (1, 10, 100, 1000)]
    assert bounds[0] == pytest.approx(elbo, abs=0.3)  # k = 1 is the ELBO (other noise draws)
    assert bounds[0] < bounds[1] < bounds[2] < bounds[3], bounds
    assert bounds[3] - elbo > 0.2
    # chunking the k samples through the decoder does not change the bound
    small = run.model.iwae_bound(x[:20], 50, generator=g(), max_rows=64)
    big = run.model.iwae_bound(x[:20], 50, generator=g())
    assert torch.allclose(small, big, atol=1e-4)
    ev = run.evaluate(["nll", "elbo"], k=100)
    assert ev["iwae_k"] == 100 and ev["nll_nats"] < -ev["elbo"]
    assert ev["bits_per_dim"] == pytest.approx(ev["nll_nats"] / (64 * math.log(2)))


def test_a_gmm_on_pixel_levels_is_scored_on_the_discrete_scale() -> None:
    """A density at the 17 pixel values of digits is not a probability (the GMM's own log p there
    is positive). Spread over cells of width 1/16 centred on the values, -E_u[log p] + D log 16
    bounds the discrete NLL from above; for one diagonal Gaussian the discrete probability is
    exact (a product of CDF differences per pixel), and the bound is within the Jensen gap and
    the draw's noise of it (measured: 164.86 against 164.78 nats). D log 17 instead of D log 16
    would be 3.9 nats off."""
    import pushforward
    from pushforward.metrics.likelihood import nll

    run = pushforward.train(
        "gmm", data="digits", components=1, covariance="diag", reg_covar=1e-2,
        out="g", progress=False,
    )  # fmt: skip
    gmm, test = run.model, run.data.split("test")
    out = nll(gmm, test, seed=0)
    x = test.reshape(len(test), -1).double()  # [N, 64]
    mean, sd = gmm.means[0].double(), gmm.covariances[0].double().sqrt()  # [64] each
    normal = torch.distributions.Normal(mean, sd)
    cell = (normal.cdf(x + 1 / 32) - normal.cdf(x - 1 / 32)).clamp_min(1e-300)  # [N, 64]
    exact = float(-cell.log().sum(1).mean())
    assert float(-gmm.log_prob(test).double().mean()) < 0  # the density at the values
    assert exact - 0.05 < out["nll_nats"] < exact + 0.5, (out, exact)
    assert out["bits_per_dim"] == pytest.approx(out["nll_nats"] / (64 * math.log(2)))
    assert "cells" in out["nll_kind"]


# ---------------------------------------------------------------- MMD and W2


def test_w2_of_a_translation_and_in_one_dimension() -> None:
    from pushforward.metrics.two_sample import wasserstein2

    x = torch.randn(300, 3, generator=torch.Generator().manual_seed(0))
    shift = torch.tensor([0.3, -0.4, 1.2])
    assert wasserstein2(x, x + shift) == pytest.approx(float(shift.norm()), rel=1e-6)
    a, b = torch.rand(200, 1), torch.rand(200, 1) * 2
    sorted_match = float((a.sort(0).values - b.sort(0).values).pow(2).mean().sqrt())
    assert wasserstein2(a, b) == pytest.approx(sorted_match, rel=1e-6)


def test_mmd_matches_the_gaussian_closed_form() -> None:
    from pushforward.metrics.two_sample import mmd2

    g = torch.Generator().manual_seed(1)
    d, s, mu = 2, 1.0, torch.tensor([1.0, 0.5])
    x, y = torch.randn(3000, d, generator=g), torch.randn(3000, d, generator=g) + mu
    # for P = N(0, I), Q = N(mu, I): MMD^2 = 2 (s^2 / (s^2 + 2))^(d/2) (1 - exp(-|mu|^2 / (2 (s^2 + 2))))
    exact = (
        2
        * (s**2 / (s**2 + 2)) ** (d / 2)
        * (1 - math.exp(-float(mu.pow(2).sum()) / (2 * (s**2 + 2))))
    )
    assert mmd2(x, y, bandwidth=s)[0] == pytest.approx(exact, abs=0.01)
    same, _ = mmd2(x, torch.randn(3000, d, generator=g))
    assert abs(same) < 0.003


# ---------------------------------------------------------------- feature-space metrics


def test_frechet_distance_closed_forms() -> None:
    from pushforward.metrics.scores import frechet_distance

    g = torch.Generator().manual_seed(2)
    x = torch.randn(20000, 4, generator=g)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    # N(0, I) vs N(m, 4 I) in 4-D: |m|^2 + 4 * (1 + 4 - 2 * 2) = |m|^2 + 4
    y = 2 * torch.randn(20000, 4, generator=g) + 1.0
    assert frechet_distance(x, y) == pytest.approx(4.0 + 4.0, rel=0.03)


def test_prdc_behave_as_their_papers_state() -> None:
    from pushforward.metrics.features import prdc

    g = torch.Generator().manual_seed(3)
    real = torch.randn(2000, 8, generator=g)
    same = prdc(real, torch.randn(2000, 8, generator=g))
    assert same["precision"] > 0.8 and same["recall"] > 0.8 and same["coverage"] > 0.9
    assert same["density"] == pytest.approx(1.0, abs=0.15)
    far = prdc(real, torch.randn(2000, 8, generator=g) + 10)
    assert far["precision"] == far["recall"] == far["coverage"] == far["density"] == 0.0
    # mode dropping: real has two clusters, fake only one -> precise but half the recall/coverage
    centres = torch.zeros(2000, 8)
    centres[1000:, 0] = 20
    two = torch.randn(2000, 8, generator=g) + centres
    one = torch.randn(2000, 8, generator=g)
    dropped = prdc(two, one)
    assert (
        dropped["precision"] > 0.8
        and 0.35 < dropped["recall"] < 0.55
        and 0.4 < dropped["coverage"] < 0.55
    )
    # a blurred fake (wider spread): recall stays, precision falls
    wide = prdc(real, 2.5 * torch.randn(2000, 8, generator=g))
    assert wide["precision"] < 0.5 < wide["recall"]


@pytest.fixture
def digits_classifier():
    from pushforward.data import load_dataset
    from pushforward.metrics.features import classifier_for

    ds = load_dataset("digits")
    net, info = classifier_for(ds)
    return ds, net, info


def test_digits_classifier_is_accurate_and_cached(digits_classifier) -> None:
    from pushforward.metrics.features import classifier_for

    ds, net, info = digits_classifier
    assert info["test_accuracy"] >= 0.97
    again, info2 = classifier_for(ds)  # from the cache: same weights, no retraining
    assert info2 == info and all(
        torch.equal(a, b)
        for a, b in zip(net.state_dict().values(), again.state_dict().values(), strict=True)
    )


def test_fd_grows_with_noise_and_dropped_classes(digits_classifier) -> None:
    from pushforward.metrics.features import class_kl, frechet_distance

    ds, net, _ = digits_classifier
    with torch.no_grad():
        feats = lambda x: net.features(x.clamp(0, 1))  # noqa: E731
        test = feats(ds.test)
        g = torch.Generator().manual_seed(0)
        fds = [
            frechet_distance(
                feats(ds.train[:360] + s * torch.randn(ds.train[:360].shape, generator=g)), test
            )
            for s in (0.0, 0.1, 0.3)
        ]
        keep = ds.train_labels < 5
        dropped = frechet_distance(feats(ds.train[keep][:360]), test)
        kl_half = class_kl(net.head(feats(ds.train[keep])), 10)
    assert fds[0] < fds[1] < fds[2]
    assert dropped > 2 * fds[0]
    assert kl_half == pytest.approx(math.log(2), abs=0.05)  # five of ten classes, evenly


def test_feature_metrics_score_against_the_split_and_examples_asked_for(
    digits_classifier,
) -> None:
    """Training images scored against the training split's same first 300 are the reference
    itself (FD 0); against the test split they are not, and the floor is then train-vs-test."""
    from pushforward.metrics.features import image_metrics
    from pushforward.run import EvalOptions

    ds, _, _ = digits_classifier
    fake = ds.train[:300]
    same = image_metrics(ds, ds.train[:300], ds.test, fake, 0)
    test = image_metrics(ds, ds.test, ds.train, fake, 0)
    assert same["fd"] < 1e-3 and same["recall"] == 1.0 and same["feature_n"] == 300, same
    assert test["fd"] > 1.0 and test["fd_floor"] > 1.0, test
    assert EvalOptions().split == "test"  # the test split by default


# ---------------------------------------------------------------- the fixed-prior limitation


class _FixedEncoder:
    """A stand-in model whose posteriors are set by hand, to check the latent metrics."""

    def __init__(self, mu: torch.Tensor, logvar: torch.Tensor) -> None:
        from pushforward.models.priors import StandardNormal

        self.mu, self.logvar, self.prior = mu, logvar, StandardNormal(mu.shape[1])

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        idx = x[:, 0].long()
        return self.mu[idx], self.logvar[idx]


def test_latent_metrics_on_hand_made_posteriors() -> None:
    from pushforward.metrics.latent import latent_metrics

    n = 1000
    x = torch.arange(n, dtype=torch.float32)[:, None]
    # posterior = prior for every x: nothing is encoded, q(z) = p(z)
    blind = latent_metrics(_FixedEncoder(torch.zeros(n, 2), torch.zeros(n, 2)), x, seed=0, n=n)
    assert blind["active_units"] == 0 and abs(blind["mutual_info"]) < 0.01
    assert abs(blind["agg_posterior_kl"]) < 0.05 and blind["prior_holes"] < 0.03
    assert blind["kl_per_dim"] == [0.0, 0.0]
    # sharp posteriors on 13 far-apart points in dim 0 (x picks one), dim 1 unused
    mu = torch.zeros(n, 2)
    mu[:, 0] = torch.linspace(-3, 3, 13).repeat(n // 13 + 1)[:n]
    logvar = torch.zeros(n, 2)
    logvar[:, 0] = -10.0  # std 0.007, spacing 0.5
    sharp = latent_metrics(_FixedEncoder(mu, logvar), x, seed=0, n=n)
    assert sharp["active_units"] == 1
    assert sharp["mutual_info"] == pytest.approx(math.log(13), abs=0.05)  # z tells which of 13
    assert sharp["kl_per_dim"][1] == pytest.approx(0.0, abs=1e-9) and sharp["kl_per_dim"][0] > 3
    assert sharp["agg_posterior_kl"] > 2
    assert sharp["prior_holes"] > 0.9  # q(z) is a comb of spikes: the prior lands between them


def test_two_sample_floor_is_below_a_poor_model() -> None:
    from pushforward.metrics.two_sample import two_sample

    g = torch.Generator().manual_seed(4)
    real, other = torch.randn(1000, 2, generator=g), torch.randn(1000, 2, generator=g)
    out = two_sample(real, 1.5 * torch.randn(1000, 2, generator=g), floor=other)
    assert out["w2_floor"] < out["w2"] and out["mmd_floor"] < out["mmd"]
    assert out["two_sample_n"] == 1000
