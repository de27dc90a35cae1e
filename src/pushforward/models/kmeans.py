"""k-means++ seeding and Lloyd iterations: where EM starts (models/gmm.py).

Imports nothing of this package: any module may import it.
"""

from __future__ import annotations

import math

import torch


def kmeans_plusplus(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007): x [N, D] -> centres [k, D].

    Each new centre is the best of 2 + log(k) candidates drawn by squared distance, which keeps
    well-separated clusters from sharing a centre.
    """
    n = len(x)
    trials = 2 + int(math.log(k))
    first = int(torch.randint(n, (1,), generator=generator))
    centres = [x[first]]
    d2 = (x - x[first]).pow(2).sum(1)  # [N]
    x2 = x.pow(2).sum(1)  # [N]: |x - c|^2 = |x|^2 - 2 x.c + |c|^2, one GEMM per centre
    for _ in range(1, k):
        # draw candidates with probability d2 / sum(d2) by inverting the cumulative sum: one
        # O(N) scan, where torch.multinomial over N weights cost milliseconds per centre
        cdf = torch.cumsum(d2, 0)
        if cdf[-1] > 0:
            u = torch.rand(trials, generator=generator, dtype=cdf.dtype).to(cdf.device)
            cand = torch.searchsorted(cdf, u * cdf[-1], right=True).clamp(max=n - 1)
        else:
            cand = torch.randint(n, (trials,), generator=generator).to(x.device)
        c = x[cand]  # [T, D]
        dist = (x2[None] - 2 * (c @ x.T) + c.pow(2).sum(1, keepdim=True)).clamp_(min=0)
        cand_d2 = torch.minimum(d2[None], dist)  # [T, N]
        best = int(cand_d2.sum(1).argmin())
        centres.append(x[cand[best]])
        d2 = cand_d2[best]
    return torch.stack(centres)


def nearest(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Index of each point's nearest centre [N]: argmin_k |c_k|^2 - 2 x.c_k (|x|^2 is the same
    for every k), one GEMM."""
    return (centres.pow(2).sum(1) - 2 * (x @ centres.T)).argmin(1)


def _nearest(x: torch.Tensor, centres: torch.Tensor, chunk: int) -> torch.Tensor:
    """``nearest`` a chunk of points at a time."""
    return torch.cat([nearest(xc, centres) for xc in x.split(chunk)])


def kmeans(
    x: torch.Tensor, centres: torch.Tensor, iters: int, chunk: int
) -> tuple[torch.Tensor, float, torch.Tensor]:
    """Lloyd iterations from ``centres``: (each point's cluster label [N], the sum of squared
    distances to the final centres, which ranks restarts, the final centres [K, D])."""
    tol = 1e-4 * x.var(0, correction=0).mean()
    for _ in range(iters):
        labels = _nearest(x, centres, chunk)
        counts = torch.bincount(labels, minlength=len(centres)).to(x.dtype)
        sums = torch.zeros_like(centres).index_add_(0, labels, x)
        new = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], centres)
        shift = (new - centres).pow(2).sum()
        centres = new
        if shift <= tol:
            break
    labels = _nearest(x, centres, chunk)
    inertia = sum(
        float((xc - centres[lc]).pow(2).sum())
        for xc, lc in zip(x.split(chunk), labels.split(chunk), strict=True)
    )
    return labels, inertia, centres
