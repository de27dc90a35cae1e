"""Two-sample distances for low-dimensional data: MMD with a Gaussian kernel and the exact
2-Wasserstein distance (solved by POT's network simplex, not by hand).

Imports nothing of this package: any module may import it.
"""

from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def mmd2(x: torch.Tensor, y: torch.Tensor, bandwidth: float | None = None) -> tuple[float, float]:
    """Unbiased squared MMD between samples x [N, D] and y [M, D] with the Gaussian kernel
    exp(-|a - b|^2 / (2 s^2)); s defaults to the median pairwise distance of the pooled sample
    (the median heuristic). Returns (MMD^2, s)."""
    x, y = x.double().flatten(1), y.double().flatten(1)
    if bandwidth is None:
        pooled = torch.cat([x, y])
        d = torch.pdist(pooled[: min(len(pooled), 4000)])
        bandwidth = float(d.median())
    gamma = 1.0 / (2 * bandwidth**2)
    kxx = torch.exp(-gamma * torch.cdist(x, x).pow(2))
    kyy = torch.exp(-gamma * torch.cdist(y, y).pow(2))
    kxy = torch.exp(-gamma * torch.cdist(x, y).pow(2))
    n, m = len(x), len(y)
    term_x = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    term_y = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(term_x + term_y - 2 * kxy.mean()), bandwidth


@torch.no_grad()
def wasserstein2(x: torch.Tensor, y: torch.Tensor) -> float:
    """Exact W2 between the empirical measures of x [N, D] and y [M, D] (uniform weights)."""
    import ot  # POT, imported on use: it pulls in scipy

    a = np.full(len(x), 1.0 / len(x))
    b = np.full(len(y), 1.0 / len(y))
    cost = torch.cdist(x.double().flatten(1), y.double().flatten(1)).pow(2).cpu().numpy()
    return float(np.sqrt(max(ot.emd2(a, b, cost, numItermax=10_000_000), 0.0)))


def two_sample(
    real: torch.Tensor, fake: torch.Tensor, floor: torch.Tensor | None = None, n: int = 2000
) -> dict[str, float]:
    """MMD^2 and W2 on the first n points of each sample (both costs grow as n^2 or worse).

    Two finite samples of one distribution are not at distance 0, so with ``floor`` (other real
    points, e.g. from the training split) the same distances of real-vs-real are reported too."""
    r, f = real[:n], fake[:n]
    m, s = mmd2(r, f)
    out = {
        "mmd": m,
        "mmd_bandwidth": s,
        "w2": wasserstein2(r, f),
        "two_sample_n": min(len(r), len(f)),
    }
    if floor is not None:
        fl = floor[: len(f)]
        out.update(mmd_floor=mmd2(r, fl, bandwidth=s)[0], w2_floor=wasserstein2(r, fl))
    return out
