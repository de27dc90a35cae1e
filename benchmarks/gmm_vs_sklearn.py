"""GMM EM: pushforward against scikit-learn's GaussianMixture, same K, covariance type and tol.

Reports the held-out average log-likelihood of each (they should agree within 0.01 nats per
point), EM iterations, and wall time with the speed ratio. Run by hand:

    python benchmarks/gmm_vs_sklearn.py [--device cpu|cuda] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch
from sklearn.mixture import GaussianMixture

from pushforward.data import load_dataset
from pushforward.data.toy2d import separated_mixture
from pushforward.models.gmm import GMM, GMMConfig


def cases() -> list[tuple[str, torch.Tensor, torch.Tensor, int]]:
    out = []
    for name, k in (("ring8", 8), ("grid25", 25)):
        ds = load_dataset(name)
        out.append((name, ds.train.double(), ds.test.double(), k))
    x = separated_mixture(70_000)
    out.append(("mixture 60000x16", x[:60_000], x[60_000:], 10))
    d = load_dataset("digits")
    out.append(
        (
            "digits 1437x64",
            d.train.reshape(len(d.train), -1).double(),
            d.test.reshape(len(d.test), -1).double(),
            10,
        )
    )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--repeats", type=int, default=3, help="best-of timing")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    print(f"torch {torch.__version__}, {args.threads} threads, device {dev}")
    print(
        "| data | cov | K | pushforward LL | sklearn LL | diff | iters (pf / sk) | pf s | sk s | speed-up |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, train, test, k in cases():
        for cov in ("full", "diag"):
            # digits have constant pixels; reg_covar 1e-2 keeps both fits well-posed
            reg = 1e-2 if name.startswith("digits") else 1e-6
            best_pf, best_sk = float("inf"), float("inf")
            for _ in range(args.repeats):
                m = GMM(
                    GMMConfig(components=k, covariance=cov, tol=1e-3, reg_covar=reg),
                    (train.shape[1],),
                ).to(dev)
                xt = train.to(dev)
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                t = time.perf_counter()
                info = m.fit(xt, generator=torch.Generator().manual_seed(0))
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                best_pf = min(best_pf, time.perf_counter() - t)
                t = time.perf_counter()
                sk = GaussianMixture(
                    k, covariance_type=cov, tol=1e-3, reg_covar=reg, random_state=0
                ).fit(train.numpy())
                best_sk = min(best_sk, time.perf_counter() - t)
            ours = float(m.log_prob(test.to(dev)).mean())
            theirs = float(sk.score(test.numpy()))
            print(
                f"| {name} | {cov} | {k} | {ours:.4f} | {theirs:.4f} | {ours - theirs:+.5f} | "
                f"{info['iterations']} / {sk.n_iter_} | {best_pf:.3f} | {best_sk:.3f} | {best_sk / best_pf:.2f}x |"
            )


if __name__ == "__main__":
    main()
