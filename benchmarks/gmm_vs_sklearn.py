"""GMM EM: pushforward against scikit-learn's GaussianMixture, same K, covariance type and tol.

Reports the held-out average log-likelihood of each (they should agree within 0.01 nats per
point), EM iterations, and wall time with the speed ratio. Run by hand:

    python benchmarks/gmm_vs_sklearn.py [--device cpu|cuda] [--threads 2]

``--shapes`` instead times pycave's published benchmark shapes ([100k, 32] with K = 16, diagonal
and full; [1M, 64] with K = 64, diagonal), on data drawn from a random mixture of K Gaussians:
100 EM iterations from the same start (pushforward's k-means start, handed to scikit-learn as
its weights_init, means_init and precisions_init; tol 0, so both run all 100), then each
library's own default start (``--seeds``), with pushforward's ``--restarts`` too, comparing the
training log-likelihood each ends at. ``--pycave PYTHON`` adds pycave to each row of the first
table: the same data and start means, 100 full-batch EM iterations in float32, run by
``benchmarks/pycave_em.py`` under PYTHON, an interpreter of the virtual environment pycave is
installed in (it pins an old torch).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
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


def mixture_data(n: int, d: int, k: int, seed: int = 0) -> torch.Tensor:
    """n points [n, d] from a random mixture of k Gaussians: means N(0, 9 I), axis-aligned
    spreads between 0.5 and 1.5, equal weights."""
    g = torch.Generator().manual_seed(seed)
    means = 3 * torch.randn(k, d, generator=g, dtype=torch.float64)
    spread = 0.5 + torch.rand(k, d, generator=g, dtype=torch.float64)
    label = torch.randint(0, k, (n,), generator=g)
    return means[label] + spread[label] * torch.randn(n, d, generator=g, dtype=torch.float64)


def pycave_fit(
    python: str, x: torch.Tensor, means: torch.Tensor, cov: str, threads: int
) -> tuple[str, float]:
    """pycave's 100 full-batch EM iterations from the same start means, in its own interpreter:
    the table's last cells (its log-likelihood, seconds, ratio to scikit-learn filled later)."""
    with tempfile.TemporaryDirectory() as d:
        np.save(f"{d}/x.npy", x.cpu().numpy())
        np.save(f"{d}/means.npy", means.cpu().double().numpy())
        script = str(Path(__file__).with_name("pycave_em.py"))
        argv = [python, script, f"{d}/x.npy", f"{d}/means.npy", cov, "100", str(threads)]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        out = subprocess.run(argv, capture_output=True, text=True, check=True, env=env)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    iters = "" if got["iterations"] == 100 else f" ({got['iterations']} iterations)"
    return f"{got['ll']:.4f} | {got['seconds']:.2f}{iters}", got["seconds"]


def same_start(
    x: torch.Tensor, k: int, cov: str, dev: torch.device, dtype: str, pycave: str | None = None
) -> str:
    """100 EM iterations of each from pushforward's k-means start: one table row."""
    m = GMM(GMMConfig(components=k, covariance=cov, tol=0, dtype=dtype), (x.shape[1],)).to(dev)
    xt = x.to(dev)
    m.start(xt, torch.Generator().manual_seed(0))
    start_means = m.means.clone()
    prec = m.covariances.inverse() if cov == "full" else 1 / m.covariances
    init = {
        "weights_init": m.weights.double().cpu().numpy(),
        "means_init": m.means.double().cpu().numpy(),
        "precisions_init": prec.double().cpu().numpy(),
    }
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    sync()
    t = time.perf_counter()
    m.em(xt, 100)
    sync()
    ours_s = time.perf_counter() - t
    sk = GaussianMixture(
        k, covariance_type=cov, tol=0, max_iter=100, init_params="random_from_data", **init
    )
    t = time.perf_counter()
    sk.fit(x.numpy())
    theirs_s = time.perf_counter() - t
    ours, theirs = float(m.log_prob(xt).mean()), float(sk.score(x.numpy()))
    n, d = x.shape
    row = (
        f"| [{n:,}, {d}] | {cov} | {k} | {dtype} | {ours:.4f} | {theirs:.4f} | {ours - theirs:+.5f} "
        f"| {ours_s:.2f} | {theirs_s:.2f} | {theirs_s / ours_s:.2f}x |"
    )
    if pycave is None:
        return row
    cells, pc_s = pycave_fit(pycave, x, start_means, cov, torch.get_num_threads())
    return row + f" {cells} | {theirs_s / pc_s:.2f}x |"


def own_starts(x: torch.Tensor, k: int, cov: str, seeds: int, restarts: int) -> list[str]:
    """Each library's default start per seed: the training log-likelihood each ends at."""
    rows = []
    for seed in range(seeds):
        lls = []
        for r in (1, restarts):
            m = GMM(GMMConfig(components=k, covariance=cov, restarts=r), (x.shape[1],))
            t = time.perf_counter()
            m.fit(x, 100, torch.Generator().manual_seed(seed))
            lls.append((float(m.log_prob(x).mean()), time.perf_counter() - t))
        t = time.perf_counter()
        sk = GaussianMixture(k, covariance_type=cov, max_iter=100, random_state=seed).fit(x.numpy())
        sk_s, sk_ll = time.perf_counter() - t, float(sk.score(x.numpy()))
        (one, one_s), (many, many_s) = lls
        rows.append(
            f"| [{len(x):,}, {x.shape[1]}] | {cov} | {k} | {seed} | {one:.4f} ({one_s:.1f} s) "
            f"| {many:.4f} ({many_s:.1f} s) | {sk_ll:.4f} ({sk_s:.1f} s) |"
        )
    return rows


def shapes(
    dev: torch.device,
    dtypes: list[str],
    seeds: int,
    restarts: int,
    big: bool,
    small: bool = True,
    pycave: str | None = None,
) -> None:
    head = (
        "| data | cov | K | dtype | pushforward LL | sklearn LL | diff | pf s | sk s | speed-up |"
    )
    rule = "|---|---|---|---|---|---|---|---|---|---|"
    if pycave is not None:
        head, rule = head + " pycave LL | pycave s | pycave speed-up |", rule + "---|---|---|"
    print(head)
    print(rule)
    cases = [(100_000, 32, 16, "diag"), (100_000, 32, 16, "full")] if small else []
    if big:
        cases.append((1_000_000, 64, 64, "diag"))
    for n, d, k, cov in cases:
        x = mixture_data(n, d, k)
        for dtype in dtypes:
            pc = pycave if dtype == dtypes[-1] else None
            print(same_start(x, k, cov, dev, dtype, pc), flush=True)
    if not small or not seeds:
        return
    print()
    print(f"| data | cov | K | seed | pushforward | pushforward, {restarts} restarts | sklearn |")
    print("|---|---|---|---|---|---|---|")
    for n, d, k, cov in cases[:2]:
        for row in own_starts(mixture_data(n, d, k), k, cov, seeds, restarts):
            print(row, flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--repeats", type=int, default=3, help="best-of timing")
    p.add_argument("--shapes", action="store_true", help="pycave's shapes (see above)")
    p.add_argument("--dtypes", default="float64,float32", help="--shapes: EM dtypes timed")
    p.add_argument("--seeds", type=int, default=3, help="--shapes: default starts compared")
    p.add_argument("--restarts", type=int, default=4, help="--shapes: restarts compared")
    p.add_argument("--no-big", action="store_true", help="--shapes: skip [1M, 64]")
    p.add_argument("--only-big", action="store_true", help="--shapes: only [1M, 64]")
    p.add_argument(
        "--pycave",
        help="--shapes: a Python with pycave installed (its own venv), timed beside the others",
    )
    p.add_argument("--no-own-starts", action="store_true", help="--shapes: skip the seeds table")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    print(f"torch {torch.__version__}, {args.threads} threads, device {dev}")
    if args.shapes:
        big, small = not args.no_big, not args.only_big
        seeds = 0 if args.no_own_starts else args.seeds
        shapes(dev, args.dtypes.split(","), seeds, args.restarts, big, small, args.pycave)
        return
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
