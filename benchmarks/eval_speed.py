"""Evaluation speed: the IWAE bound at k = 1000 and the Fréchet distance plus PRDC on 10,000
samples, pushforward against plain references of the same computations, with agreement checks.

- IWAE: the 784-512-512-40 MLP VAE of the fixed-prior experiment (freshly initialised: time
  does not depend on the weights), on Fashion-MNIST test images. The reference is the direct
  transcription of Burda et al.: repeat each image k times, decode, Bernoulli log-likelihood by
  binary_cross_entropy_with_logits, logsumexp.
- FD and PRDC: 128-d classifier features of 10,000 test images against 10,000 training
  images. References: the usual scipy.linalg.sqrtm Fréchet distance, and Naeem et al.'s PRDC
  on full scikit-learn distance matrices with np.partition.

Run by hand:

    python benchmarks/eval_speed.py [--threads 2] [--images 200] [--scaling]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from sklearn.metrics import pairwise_distances

from pushforward.data import binarize, load_dataset
from pushforward.metrics.features import _embed, classifier_for, frechet_distance, prdc
from pushforward.metrics.likelihood import iwae
from pushforward.models.vae import VAE, VAEConfig


def timed(fn, repeats: int = 1):  # type: ignore[no-untyped-def]
    best, out = math.inf, None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


@torch.no_grad()
def plain_iwae(model: VAE, x: torch.Tensor, k: int, chunk: int = 10) -> float:
    """-IWAE-k in nats per image, written directly: [k * B] copies of the images."""
    total = 0.0
    for xb in x.split(chunk):
        b = len(xb)
        mu, logvar = model.encoder(xb).chunk(2, dim=-1)
        eps = torch.randn(k, b, mu.shape[1])
        z = mu + (0.5 * logvar).exp() * eps  # [k, B, d]
        logits = model.decoder(z.reshape(k * b, -1)).reshape(k * b, -1)
        xs = xb.reshape(1, b, -1).expand(k, b, -1).reshape(k * b, -1)
        log_px = -F.binary_cross_entropy_with_logits(logits, xs, reduction="none").sum(1)
        log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)
        log_q = -0.5 * (eps.pow(2) + logvar + math.log(2 * math.pi)).sum(-1)
        log_w = log_px.view(k, b) + log_pz - log_q
        total += float((torch.logsumexp(log_w.double(), 0) - math.log(k)).sum())
    return -total / len(x)


def plain_fd(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s_a @ s_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * covmean))


def plain_prdc(
    real: np.ndarray, fake: np.ndarray, k_pr: int = 3, k_dc: int = 5
) -> dict[str, float]:
    def radii(x: np.ndarray, k: int) -> np.ndarray:
        d = pairwise_distances(x, x)
        return np.partition(d, k, axis=1)[:, k]

    r_pr, f_pr, r_dc = radii(real, k_pr), radii(fake, k_pr), radii(real, k_dc)
    d = pairwise_distances(real, fake)  # [N, M]
    return {
        "precision": float((d < r_pr[:, None]).any(0).mean()),
        "recall": float((d < f_pr[None, :]).any(1).mean()),
        "density": float((d < r_dc[:, None]).sum(0).mean() / k_dc),
        "coverage": float((d.min(1) < r_dc).mean()),
    }


def iwae_rows(images: int, ks: list[int]) -> list[str]:
    ds = binarize(load_dataset("fashion-mnist"), "dynamic")
    assert ds.test is not None
    x = ds.test[:images]
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent_dim=40, hidden=512, depth=2, likelihood="bernoulli"), (1, 28, 28))
    model.eval()
    rows = []
    for k in ks:
        torch.manual_seed(1)
        ref, t_ref = timed(lambda k=k: plain_iwae(model, x, k))
        ours, t_ours = timed(lambda k=k: iwae(model, x, k, seed=1)["nll_nats"])
        rows.append(
            f"| IWAE k = {k}, {images} images | {images / t_ours:,.1f} img/s | "
            f"{images / t_ref:,.1f} img/s | {t_ref / t_ours:.2f}x | {ours:.3f} / {ref:.3f} nats |"
        )
    return rows


def feature_rows(ns: list[int]) -> list[str]:
    ds = load_dataset("fashion-mnist")
    assert ds.test is not None
    net, _ = classifier_for(ds)
    top = max(ns)
    real = _embed(net, ds.test[:top])[0]
    fake = _embed(net, ds.train[:top])[0]
    rows = []
    for n in ns:
        r, f = real[:n], fake[:n]
        ours_fd, t_fd = timed(lambda r=r, f=f: frechet_distance(f, r))
        ref_fd, t_fd_ref = timed(lambda r=r, f=f: plain_fd(f.double().numpy(), r.double().numpy()))
        ours_pr, t_pr = timed(lambda r=r, f=f: prdc(r, f))
        ref_pr, t_pr_ref = timed(lambda r=r, f=f: plain_prdc(r.numpy(), f.numpy()))
        worst = max(abs(ours_pr[k] - ref_pr[k]) for k in ours_pr)
        rows.append(
            f"| FD, n = {n:,} | {t_fd:.3f} s | {t_fd_ref:.3f} s | {t_fd_ref / t_fd:.2f}x | "
            f"{ours_fd:.4f} / {ref_fd:.4f} |"
        )
        rows.append(
            f"| PRDC, n = {n:,} | {t_pr:.2f} s | {t_pr_ref:.2f} s | {t_pr_ref / t_pr:.2f}x | "
            f"largest difference {worst:.4f} |"
        )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--images", type=int, default=200, help="test images for the IWAE timing")
    p.add_argument("--scaling", action="store_true", help="also time k and n at several sizes")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads")
    ks = [100, 300, 1000, 3000] if args.scaling else [1000]
    ns = [2_500, 5_000, 10_000, 20_000] if args.scaling else [10_000]
    print("| computation | pushforward | plain reference | speed-up | agreement (ours / ref) |")
    print("|---|---|---|---|---|")
    for row in iwae_rows(args.images, ks) + feature_rows(ns):
        print(row, flush=True)


if __name__ == "__main__":
    main()
