"""Fitting a Gaussian mixture by EM, the mixture's half that learns (models/gmm.py holds its
density): one iteration is one pass over the data in cache-sized chunks, whose responsibilities
are summed at once into the M-step's statistics (sum r, sum r c, and sum r c c^T or sum r c^2,
over the data centred once, c = x - mean(x)). Neither the [N, K] responsibilities nor [N, K, D]
temporaries are ever held, and every pass over a temporary runs in cache (2.98x scikit-learn's
full-covariance EM at [100k, 32], K = 16, in float64: docs/benchmarks.md). EM starts from the
hard assignment of k-means++ and Lloyd iterations (models/kmeans.py).

May import torch, the model contract and k-means; imported by models/gmm.py.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .. import dist
from ..data import Examples, chunk_rows, in_memory, take
from ..errors import PushforwardError
from .base import FitsByEM
from .gmm_search import DEFAULT_EM_STEPS
from .kmeans import kmeans, kmeans_plusplus, nearest


def squares(x: torch.Tensor) -> torch.Tensor:
    """[x^2, x]: x [n, D] -> [n, 2D], what a diagonal Gaussian's log-density is linear in."""
    return torch.cat([x * x, x], 1)


class MixtureEM(FitsByEM):
    """EM for a mixture with ``weights`` [K], ``means`` [K, D] and ``covariances`` [K, D, D]
    (full) or [K, D] (diag), whose density gives the per-component log-densities below."""

    config: Any  # covariance, reg_covar, tol, restarts, kmeans_iter, chunk_size
    weights: torch.Tensor
    means: torch.Tensor
    covariances: torch.Tensor

    @abstractmethod
    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        """Examples [N, *shape] as float rows [N, D] of the mixture's dtype and device."""

    @abstractmethod
    def _rows(self, like: torch.Tensor, per_row: int) -> int:
        """Rows per chunk for temporaries of ``per_row`` numbers each."""

    @abstractmethod
    def _log_gauss(self, x: torch.Tensor, centre: torch.Tensor | None = None) -> torch.Tensor:
        """log N(x | mu_k, Sigma_k) of rows x [n, D] (centred at ``centre``): [n, K]."""

    @abstractmethod
    def _diag_weights(self, means: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The diagonal Mahalanobis distance as squares(x) @ w + const: (w [2D, K], const [K])."""

    @abstractmethod
    def _to_log_density(self, sq: torch.Tensor) -> torch.Tensor:
        """Squared Mahalanobis distances [n, K] -> log N(x | mu_k, Sigma_k), in place."""

    @abstractmethod
    def _refresh(self) -> None:
        """Recompute what the density caches from the parameters."""

    # One EM iteration is one pass over the data in cache-sized chunks: each chunk's
    # responsibilities are summed at once into the M-step's statistics (sum r, sum r c, and
    # sum r c c^T or sum r c^2, over the data centred once, c = x - mean(x)), so neither the
    # [N, K] responsibilities nor [N, K, D] temporaries are ever held in memory, and every pass
    # over a temporary runs in cache (2.98x scikit-learn's full-covariance EM at [100k, 32], K =
    # 16, in float64, against 1.25x before: docs/benchmarks.md).

    @staticmethod
    def _normalise(lj: torch.Tensor) -> tuple[float, torch.Tensor]:
        """(sum of log-normalisers, responsibilities) of log-joints lj [N, K], from one exp."""
        top = lj.amax(1, keepdim=True)
        e = torch.exp(lj - top)
        s = e.sum(1, keepdim=True)
        return float((top + s.log()).sum()), e.div_(s)

    def _shard(self, n: int) -> range:
        """The rows of n this process passes over: all of them, or its share under torchrun."""
        r, w = dist.rank(), dist.world_size()
        return range(r * n // w, (r + 1) * n // w)

    def _centre(self, x: Examples) -> torch.Tensor:
        """The data's mean [D] in the EM dtype, summed a chunk at a time over this process's
        share and across processes."""
        total = self.means.new_zeros(self.means.shape[1])
        part = self._shard(len(x))
        step = chunk_rows(x)
        for s in range(part.start, part.stop, step):
            total += self._flat(x[s : min(s + step, part.stop)]).sum(0)
        return dist.sum_across([total])[0] / len(x)

    def _pass(
        self,
        x: Examples,
        centre: torch.Tensor,
        labels: torch.Tensor | None = None,
        centres: torch.Tensor | None = None,
    ) -> tuple[float, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """One pass over x [N, *shape] (this process's share, summed across processes): the
        summed log-likelihood under the current parameters and the statistics (n_k [K], sum r c
        [K, D], sum r c c^T as [D, K * D] or sum r c^2 [K, D]) of its responsibilities, or of a
        hard assignment: the k-means ``labels`` [N], or each point's nearest of ``centres``."""
        k, d = self.means.shape
        full = self.config.covariance == "full"
        nk = self.means.new_zeros(k)
        # full: sum r c [K, D] and sum r c c^T as [D, K * D]; diag: [sum r c^2, sum r c] [K, 2D]
        s1 = self.means.new_zeros(k, d)
        s2 = self.means.new_zeros(d, k * d) if full else self.means.new_zeros(k, 2 * d)
        if not full:
            w, const = self._diag_weights(self.means - centre)
        log_w = torch.log(self.weights)
        total, rows = 0.0, self._rows(self.means, k * d if full else k + 2 * d)
        part = self._shard(len(x))
        for s in range(part.start, part.stop, rows):
            e = min(s + rows, part.stop)
            xf = self._flat(x[s:e])  # [n, D]
            c = xf - centre
            feats = c if full else squares(c)  # diag: [n, 2D]
            if labels is not None or centres is not None:
                hard = nearest(xf, centres) if centres is not None else labels[s:e]  # type: ignore[index]
                r = nn.functional.one_hot(hard, k).to(c.dtype)  # [n, K]
            else:
                if full:
                    lj = self._log_gauss(c, centre)
                else:
                    lj = self._to_log_density((feats @ w).add_(const))
                part_ll, r = self._normalise(lj.add_(log_w))
                total += part_ll
            nk += r.sum(0)
            if full:  # sum_n r_nk c_n c_n^T for every k in one GEMM, [D, n] @ [n, K * D] (2x
                # faster than its transpose on these CPUs)
                s1.addmm_(r.T, c)
                s2.addmm_(c.T, (r[:, :, None] * c[:, None, :]).view(-1, k * d))
            else:
                s2.addmm_(r.T, feats)
        if not full:
            s2, s1 = s2[:, :d], s2[:, d:]
        ll, nk, s1, s2 = dist.sum_across([torch.tensor([total], dtype=nk.dtype), nk, s1, s2])
        return float(ll), (nk, s1, s2)

    def _m_step(
        self, centre: torch.Tensor, stats: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    ) -> None:
        """Weights, means and regularised covariances from a pass's statistics."""
        nk, s1, s2 = stats
        nk = nk + 10 * torch.finfo(nk.dtype).eps  # [K]
        mu = s1 / nk[:, None]  # [K, D], centred
        if self.config.covariance == "full":
            k, d = mu.shape
            second = s2.view(d, k, d).permute(1, 0, 2)  # [K, D, D], symmetric
            covs = second / nk[:, None, None] - mu[:, :, None] * mu[:, None, :]
            covs.diagonal(dim1=-2, dim2=-1).add_(self.config.reg_covar)
        else:
            covs = (s2 / nk[:, None] - mu.pow(2)).clamp(min=0) + self.config.reg_covar
        self.weights.copy_(nk / nk.sum())
        self.means.copy_(mu + centre)
        self.covariances.copy_(covs)
        self._refresh()

    @torch.no_grad()
    def start(self, x: Examples, generator: torch.Generator | None = None) -> None:
        """Where EM starts: k-means++ seeding and Lloyd iterations on the data (or, past
        --kmeans-sample points, on a seeded sample of them, the same in every process), then the
        parameters of the hard assignment of every point. With --restarts R, the best of R such
        starts (lowest sum of squared distances to the centres)."""
        k = len(self.means)
        if len(x) < k:
            raise PushforwardError(f"--components {k}: more components than the {len(x)} examples")
        generator = generator or torch.Generator().manual_seed(0)
        whole = len(x) <= self.config.kmeans_sample
        if whole:
            sample = self._flat(in_memory(x))
        else:
            pick = torch.randperm(len(x), generator=generator)[: self.config.kmeans_sample]
            sample = self._flat(take(x, pick.sort().values))
        best, labels, centres = math.inf, None, None
        for _ in range(self.config.restarts):
            seeds = kmeans_plusplus(sample, k, generator)
            found, inertia, at = kmeans(
                sample, seeds, self.config.kmeans_iter, self.config.chunk_size
            )
            if inertia < best:
                best, labels, centres = inertia, found, at
        assert labels is not None and centres is not None
        centre = self._centre(x)
        if whole:  # the labels k-means gave every point
            stats = self._pass(x, centre, labels=labels)[1]
        else:
            stats = self._pass(x, centre, centres=centres)[1]
        self._m_step(centre, stats)

    @torch.no_grad()
    def em(
        self,
        x: Examples,
        max_iter: int = DEFAULT_EM_STEPS,
        callback: Callable[[int, float], bool | None] | None = None,
        first: int = 1,
        lower: float = -math.inf,
    ) -> dict[str, float]:
        """EM from the current parameters, iterations ``first`` to at most ``max_iter``,
        stopping when the mean log-likelihood changes less than --tol (scikit-learn's rule)
        from ``lower``, the previous iteration's. Each iteration is one pass over x a chunk at
        a time (data read from disk too)."""
        centre = self._centre(x)
        converged, it = False, first - 1
        for it in range(first, max_iter + 1):
            prev = lower
            total, stats = self._pass(x, centre)
            lower = total / len(x)
            self._m_step(centre, stats)
            if callback and callback(it, lower):
                break
            if abs(lower - prev) < self.config.tol:
                converged = True
                break
        return {"iterations": it, "converged": float(converged), "train_log_likelihood": lower}

    @torch.no_grad()
    def fit(
        self,
        x: Examples,
        max_iter: int = DEFAULT_EM_STEPS,
        generator: torch.Generator | None = None,
        callback: Callable[[int, float], bool | None] | None = None,
        resume_at: tuple[int, float] | None = None,
    ) -> dict[str, float]:
        """Fit by EM on x [N, *shape] from the k-means start; ``callback(iteration,
        mean_log_likelihood)`` runs after each step and stops EM early by returning True (a time
        budget, say); it is called with (0, nan) once, when the k-means start is set.
        ``resume_at`` (iteration, its mean log-likelihood) continues a fit whose parameters
        after that iteration are loaded: the same iterations as one uninterrupted fit."""
        if resume_at is not None:
            done, lower = resume_at
            return self.em(x, max_iter, callback, done + 1, lower)
        self.start(x, generator)
        if callback:
            callback(0, math.nan)  # the k-means start
        return self.em(x, max_iter, callback)
