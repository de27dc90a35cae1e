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

from ..errors import PushforwardError
from .base import FitsByEM
from .gmm_search import DEFAULT_EM_STEPS
from .kmeans import kmeans, kmeans_plusplus


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
    def _rows(self, x: torch.Tensor, per_row: int) -> int:
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

    def _pass(
        self, x: torch.Tensor, centre: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[float, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """One pass over x [N, D]: the summed log-likelihood under the current parameters and
        the statistics (n_k [K], sum r c [K, D], sum r c c^T as [D, K * D] or sum r c^2 [K, D]) of
        its responsibilities, or of the hard ``labels`` [N] of the k-means start."""
        k, d = self.means.shape
        full = self.config.covariance == "full"
        nk = x.new_zeros(k)
        # full: sum r c [K, D] and sum r c c^T as [D, K * D]; diag: [sum r c^2, sum r c] [K, 2D]
        s1, s2 = x.new_zeros(k, d), x.new_zeros(d, k * d) if full else x.new_zeros(k, 2 * d)
        if not full:
            w, const = self._diag_weights(self.means - centre)
        log_w = torch.log(self.weights)
        total, rows = 0.0, self._rows(x, k * d if full else k + 2 * d)
        for s in range(0, len(x), rows):
            c = x[s : s + rows] - centre  # [n, D]
            feats = c if full else squares(c)  # diag: [n, 2D]
            if labels is not None:
                r = nn.functional.one_hot(labels[s : s + rows], k).to(x.dtype)  # [n, K]
            else:
                if full:
                    lj = self._log_gauss(c, centre)
                else:
                    lj = self._to_log_density((feats @ w).add_(const))
                part, r = self._normalise(lj.add_(log_w))
                total += part
            nk += r.sum(0)
            if full:  # sum_n r_nk c_n c_n^T for every k in one GEMM, [D, n] @ [n, K * D] (2x
                # faster than its transpose on these CPUs)
                s1.addmm_(r.T, c)
                s2.addmm_(c.T, (r[:, :, None] * c[:, None, :]).view(-1, k * d))
            else:
                s2.addmm_(r.T, feats)
        if not full:
            s2, s1 = s2[:, :d], s2[:, d:]
        return total, (nk, s1, s2)

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
    def start(self, x: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Where EM starts: k-means++ seeding and Lloyd iterations, then the parameters of the
        hard assignment. With --restarts R, the best of R such starts (lowest sum of squared
        distances to the centres)."""
        x = self._flat(x)
        k = len(self.means)
        if len(x) < k:
            raise PushforwardError(f"--components {k}: more components than the {len(x)} examples")
        generator = generator or torch.Generator().manual_seed(0)
        best, labels = math.inf, None
        for _ in range(self.config.restarts):
            centres = kmeans_plusplus(x, k, generator)
            found, inertia = kmeans(x, centres, self.config.kmeans_iter, self.config.chunk_size)
            if inertia < best:
                best, labels = inertia, found
        assert labels is not None
        centre = x.mean(0)
        self._m_step(centre, self._pass(x, centre, labels)[1])

    @torch.no_grad()
    def em(
        self,
        x: torch.Tensor,
        max_iter: int = DEFAULT_EM_STEPS,
        callback: Callable[[int, float], bool | None] | None = None,
    ) -> dict[str, float]:
        """EM from the current parameters for at most ``max_iter`` iterations, stopping when
        the mean log-likelihood changes less than --tol (scikit-learn's rule)."""
        x = self._flat(x)
        centre = x.mean(0)
        lower, converged, it = -math.inf, False, 0
        for it in range(1, max_iter + 1):
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
        x: torch.Tensor,
        max_iter: int = DEFAULT_EM_STEPS,
        generator: torch.Generator | None = None,
        callback: Callable[[int, float], bool | None] | None = None,
    ) -> dict[str, float]:
        """Fit by EM on x [N, *shape] from the k-means start; ``callback(iteration,
        mean_log_likelihood)`` runs after each step and stops EM early by returning True (a time
        budget, say); it is called with (0, nan) once, when the k-means start is set."""
        self.start(x, generator)
        if callback:
            callback(0, math.nan)  # the k-means start
        return self.em(x, max_iter, callback)
