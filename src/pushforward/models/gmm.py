"""The explicit baseline: a Gaussian mixture fitted by EM, written as batched torch.

The paper's "linear combination of Gaussians" made concrete. It has an exact density, so it is
the yardstick the implicit models (VAE, GAN) are measured against. k-means++ seeding, then Lloyd
iterations, then EM; the convergence rule follows scikit-learn's so the two agree at equal ``tol``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from ..config import check_bounds, option
from ..data import TOY_MODES, Dataset
from ..errors import PushforwardError
from ..resources import check_fits
from .base import ExactDensity, FitsByEM, Model
from .gmm_search import DEFAULT_EM_STEPS, choose_components, parameters_per_component
from .kmeans import kmeans, kmeans_plusplus


@dataclass(frozen=True)
class GMMConfig:
    components: int | None = option(
        None,
        "mixture components K (default: the K of 1, 2, 4, ..., --max-components that scores "
        "best on held-out training examples)",
        at_least=1,
    )
    max_components: int = option(
        64, "the largest K the search for --components tries", at_least=1, at_most=4096
    )
    search_minutes: float | None = option(
        None,
        "stop the search for --components after the K that runs past this many minutes",
        above=0,
    )
    covariance: str = option("full", "covariance per component", ("full", "diag"))
    tol: float = option(
        1e-3, "EM stops when the mean log-likelihood changes less than this", at_least=0
    )
    reg_covar: float = option(
        1e-6, "added to every covariance diagonal, so none is singular", at_least=0
    )
    kmeans_iter: int = option(300, "Lloyd iterations after k-means++ seeding", at_least=0)
    dtype: str = option("float64", "EM arithmetic", ("float64", "float32"))
    chunk_size: int = option(16384, "points per E-step chunk; bounds memory", at_least=1)


_DTYPES = {"float64": torch.float64, "float32": torch.float32}
_CHUNK_BYTES = 256 * 2**20  # cap on the [K, chunk, D] temporary of the full-covariance E-step
_FEATURE_BYTES = 512 * 2**20  # cap on the quadratic features of a low-dimensional full fit
_FEATURE_MAX_DIM = 4


class GMM(Model, ExactDensity, FitsByEM):
    """Mixture of K Gaussians with full or diagonal covariances over flattened examples."""

    Config = GMMConfig
    explain = "explicit density: a weighted sum of Gaussians, fitted by EM"
    failure_hint = "more --components, or a larger --reg-covar"
    weights: torch.Tensor  # [K]
    means: torch.Tensor  # [K, D]
    covariances: torch.Tensor  # [K, D, D] (full) or [K, D] (diag)
    _prec: torch.Tensor
    _log_det: torch.Tensor

    @classmethod
    def resolve_config(cls, cfg: GMMConfig, data: Dataset, seed: int = 0) -> GMMConfig:
        """Without --components, K is chosen on held-out data (``choose_components``)."""
        check_bounds(cfg)  # before any work
        if cfg.components is None:
            cls.check_memory(replace(cfg, components=1), data.dim)
            cfg = replace(cfg, components=choose_components(cls, cfg, data.train, seed))
        cls.check_memory(cfg, data.dim)
        return cfg

    @classmethod
    def check_memory(cls, cfg: GMMConfig, d: int) -> None:
        """Refuse a mixture whose parameters cannot be held: K covariances of D x D (full)
        are kept with their precision factors, three such arrays in all."""
        k, size = cfg.components or 1, torch.finfo(_DTYPES[cfg.dtype]).bits // 8
        per = d * d if cfg.covariance == "full" else d
        check_fits(
            3 * k * per * size,
            f"a {k}-component {cfg.covariance}-covariance mixture of {d}-d data",
            "use fewer --components, or --covariance diag",
        )

    @classmethod
    def default_steps(cls, data: Dataset) -> int:
        return DEFAULT_EM_STEPS  # EM stops earlier when it converges (--tol)

    @classmethod
    def bench_options(cls, data: Dataset) -> dict[str, Any]:
        """One component per mode where the modes are known, 10 otherwise; EM to convergence."""
        if data.kind == "images":
            return {"components": 10, "reg_covar": 1e-2, "steps": 1000}
        modes = TOY_MODES.get(data.name)
        return {"components": 10 if modes is None else len(modes), "steps": 1000}

    def __init__(self, config: GMMConfig, data_shape: tuple[int, ...]) -> None:
        super().__init__()
        check_bounds(config)
        if config.components is None:
            raise ValueError("resolve_config first")  # an internal misuse, not a user error
        self.config, self.data_shape = config, tuple(data_shape)
        k, d = config.components, math.prod(data_shape)
        dt = _DTYPES[config.dtype]
        cov_shape = (k, d, d) if config.covariance == "full" else (k, d)
        self.register_buffer("weights", torch.full((k,), 1.0 / k, dtype=dt))  # [K]
        self.register_buffer("means", torch.zeros(k, d, dtype=dt))  # [K, D]
        init_cov = (
            torch.eye(d, dtype=dt).expand(k, d, d)
            if config.covariance == "full"
            else torch.ones(k, d, dtype=dt)
        )
        self.register_buffer(
            "covariances", init_cov.clone().reshape(cov_shape)
        )  # [K, D, D] | [K, D]
        self._refresh()

    # ---------------------------------------------------------------- parameters

    def _refresh(self) -> None:
        """Cache what the density needs: precision Cholesky factors and log-determinants."""
        # Non-persistent buffers: they follow .to(device) but are not saved (derived state).
        if self.config.covariance == "full":
            chol = _stable_cholesky(self.covariances, self.config.reg_covar)  # [K, D, D], lower
            eye = torch.eye(chol.shape[-1], dtype=chol.dtype, device=chol.device).expand_as(chol)
            # P = L^{-T}: ||(x - mu) P||^2 is the Mahalanobis distance
            prec = torch.linalg.solve_triangular(chol, eye, upper=False).mT
            log_det = -torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)  # [K]
        else:
            prec = 1.0 / self.covariances  # [K, D]
            log_det = 0.5 * torch.log(prec).sum(-1)
        self.register_buffer("_prec", prec, persistent=False)  # [K, D, D] | [K, D]
        self.register_buffer("_log_det", log_det, persistent=False)  # [K]

    def load_state_dict(self, state_dict, strict=True, assign=False):  # type: ignore[no-untyped-def]
        result = super().load_state_dict(state_dict, strict, assign)
        self._refresh()
        return result

    def _chunks(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Row chunks of x small enough that the E-step's temporaries stay within memory bounds."""
        k, d = self.means.shape
        per_row = (
            k * d * x.element_size() if self.config.covariance == "full" else k * x.element_size()
        )
        return x.split(max(1, min(self.config.chunk_size, _CHUNK_BYTES // per_row)))

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(len(x), -1).to(self.means)  # [N, D]

    def _log_gauss(self, x: torch.Tensor) -> torch.Tensor:
        """log N(x | mu_k, Sigma_k) for each component: x [N, D] -> [N, K]."""
        d = x.shape[1]
        if self.config.covariance == "full":
            k = len(self.means)
            # one GEMM for every component: x [N, D] @ [D, K * D], not K small ones
            p = self._prec.permute(1, 0, 2).reshape(d, k * d)
            shift = torch.einsum("kd,kde->ke", self.means, self._prec)  # [K, D]
            sq = (x @ p).view(len(x), k, d).sub_(shift).pow_(2).sum(-1)  # [N, K]
        else:
            p = self._prec
            sq = x.pow(2) @ p.T - 2 * x @ (self.means * p).T + (self.means.pow(2) * p).sum(1)
        return -0.5 * (d * math.log(2 * math.pi) + sq) + self._log_det

    def _log_joint(self, x: torch.Tensor) -> torch.Tensor:
        return self._log_gauss(x) + torch.log(self.weights)  # [N, K]

    # ---------------------------------------------------------------- public API

    @torch.no_grad()
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log-density of each example: x [N, *shape] -> [N] (in the EM dtype)."""
        x = self._flat(x)
        return torch.cat([torch.logsumexp(self._log_joint(c), 1) for c in self._chunks(x)])

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws: a component by weight, then mu_k + L_k z. Returns float32 [n, *shape]."""
        k = torch.multinomial(self.weights.float().cpu(), n, replacement=True, generator=generator)
        z = torch.randn(n, self.means.shape[1], generator=generator, dtype=self.means.dtype)
        k, z = k.to(self.means.device), z.to(self.means.device)
        if self.config.covariance == "full":
            chol = _stable_cholesky(self.covariances, self.config.reg_covar)
            # one matrix product per component: gathering chol[k] per sample is [n, D, D],
            # 49 GB for 10,000 draws of 784-d images
            x = self.means[k].clone()
            for j in k.unique():
                rows = k == j
                x[rows] += z[rows] @ chol[j].T
        else:
            x = self.means[k] + self.covariances[k].sqrt() * z
        return x.float().reshape(n, *self.data_shape)

    def n_parameters(self) -> int:
        """Free parameters: covariances, means and K - 1 weights (scikit-learn's count)."""
        k, d = self.means.shape
        return k * parameters_per_component(d, self.config.covariance) - 1

    def sampler_parameters(self) -> int:
        return self.n_parameters()

    @torch.no_grad()
    def bic(self, x: torch.Tensor) -> float:
        """Bayesian information criterion on x (lower is better)."""
        ll = float(self.log_prob(x).sum())
        return -2 * ll + self.n_parameters() * math.log(len(x))

    # ---------------------------------------------------------------- EM

    def _m_step(self, x: torch.Tensor, resp: torch.Tensor) -> None:
        """Weights, means and regularised covariances from responsibilities resp [N, K]."""
        eps = torch.finfo(x.dtype).eps
        nk = resp.sum(0) + 10 * eps  # [K]
        means = resp.T @ x / nk[:, None]  # [K, D]
        reg = self.config.reg_covar
        if self.config.covariance == "full":
            covs = torch.zeros_like(self.covariances)
            for xc, rc in zip(self._chunks(x), self._chunks(resp), strict=True):
                for k in range(len(nk)):
                    diff = xc - means[k]  # [chunk, D]
                    covs[k] += (rc[:, k, None] * diff).T @ diff
            covs /= nk[:, None, None]
            covs.diagonal(dim1=-2, dim2=-1).add_(reg)
        else:
            sq = resp.T @ x.pow(2) / nk[:, None]
            covs = (sq - means.pow(2)).clamp(min=0) + reg
        self.weights.copy_(nk / nk.sum())
        self.means.copy_(means)
        self.covariances.copy_(covs)
        self._refresh()

    # ---------------------------------------------------------------- EM on quadratic features
    # For full covariances in low dimension, (x - mu)^T Lambda (x - mu) is linear in the
    # features phi(x) = [c c^T (flattened), c] of the centred data c = x - mean(x), and so are
    # the M-step's sufficient statistics: each EM step becomes two GEMMs against phi, which is
    # built once per fit, in place of K small products and passes over [N, K, D] temporaries.
    # Low dimension only (D <= 4, the 2-D sets: at D = 16 the direct path was already 2x faster,
    # phi's D^2 columns outgrowing the K * D temporaries it replaces) and float64 only: the
    # expansion cancels terms of size |x|^2 / sigma^2.

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(phi [N, D^2 + D], centre [D]) when this fit can use them, else None."""
        n, d = x.shape
        if (
            self.config.covariance != "full"
            or x.dtype != torch.float64
            or d > _FEATURE_MAX_DIM
            or n * (d * d + d) * x.element_size() > _FEATURE_BYTES
        ):
            return None
        centre = x.mean(0)
        c = x - centre
        return torch.cat([(c[:, :, None] * c[:, None, :]).view(n, d * d), c], 1), centre

    def _e_step_features(
        self, phi: torch.Tensor, centre: torch.Tensor
    ) -> tuple[float, torch.Tensor]:
        """As _e_step: mean log-likelihood and responsibilities [N, K]."""
        k, d = self.means.shape
        lam = self._prec @ self._prec.mT  # [K, D, D]: Sigma^-1 = L^-T L^-1
        mu = self.means - centre  # [K, D]
        lam_mu = (lam @ mu[:, :, None]).squeeze(-1)  # [K, D]
        w = torch.cat([lam.reshape(k, d * d), -2 * lam_mu], 1)  # [K, D^2 + D]
        const = -0.5 * (d * math.log(2 * math.pi) + (mu * lam_mu).sum(1))
        lj = (phi @ w.T).mul_(-0.5).add_(const + self._log_det + torch.log(self.weights))
        total, resp = self._normalise(lj)
        return total / len(phi), resp

    def _m_step_features(self, phi: torch.Tensor, centre: torch.Tensor, resp: torch.Tensor) -> None:
        k, d = self.means.shape
        nk = resp.sum(0) + 10 * torch.finfo(phi.dtype).eps  # [K]
        s = (resp.T @ phi) / nk[:, None]  # [K, D^2 + D]: E_k[c c^T], then E_k[c]
        mu = s[:, d * d :]
        covs = s[:, : d * d].reshape(k, d, d) - mu[:, :, None] * mu[:, None, :]
        covs.diagonal(dim1=-2, dim2=-1).add_(self.config.reg_covar)
        self.weights.copy_(nk / nk.sum())
        self.means.copy_(mu + centre)
        self.covariances.copy_(covs)
        self._refresh()

    @staticmethod
    def _normalise(lj: torch.Tensor) -> tuple[float, torch.Tensor]:
        """(sum of log-normalisers, responsibilities) of log-joints lj [N, K], from one exp."""
        top = lj.amax(1, keepdim=True)
        e = torch.exp(lj - top)
        s = e.sum(1, keepdim=True)
        return float((top + s.log()).sum()), e.div_(s)

    def _e_step(self, x: torch.Tensor) -> tuple[float, torch.Tensor]:
        """Mean log-likelihood and responsibilities [N, K] under the current parameters."""
        total, resps = 0.0, []
        for c in self._chunks(x):
            part, resp = self._normalise(self._log_joint(c))  # [chunk, K]
            total += part
            resps.append(resp)
        return total / len(x), torch.cat(resps)

    @torch.no_grad()
    def fit(
        self,
        x: torch.Tensor,
        max_iter: int = DEFAULT_EM_STEPS,
        generator: torch.Generator | None = None,
        callback: Callable[[int, float], bool | None] | None = None,
    ) -> dict[str, float]:
        """Fit by EM on x [N, *shape]; ``callback(iteration, mean_log_likelihood)`` runs after
        each step and stops EM early by returning True (a time budget, say); it is called
        with (0, nan) once, when the k-means start is set."""
        x = self._flat(x)
        k = len(self.means)
        if len(x) < k:
            raise PushforwardError(f"--components {k}: more components than the {len(x)} examples")
        generator = generator or torch.Generator().manual_seed(0)
        centres = kmeans_plusplus(x, k, generator)
        labels = kmeans(x, centres, self.config.kmeans_iter, self.config.chunk_size)
        feats = self._features(x)

        def e_step() -> tuple[float, torch.Tensor]:
            return self._e_step(x) if feats is None else self._e_step_features(*feats)

        def m_step(resp: torch.Tensor) -> None:
            if feats is None:
                self._m_step(x, resp)
            else:
                self._m_step_features(*feats, resp)

        m_step(nn.functional.one_hot(labels, k).to(x.dtype))
        if callback:
            callback(0, math.nan)  # the k-means start
        lower, converged, it = -math.inf, False, 0
        for it in range(1, max_iter + 1):
            prev = lower
            lower, resp = e_step()
            m_step(resp)
            if callback and callback(it, lower):
                break
            if abs(lower - prev) < self.config.tol:
                converged = True
                break
        return {"iterations": it, "converged": float(converged), "train_log_likelihood": lower}


def _stable_cholesky(cov: torch.Tensor, reg: float) -> torch.Tensor:
    """Cholesky of [K, D, D], adding growing jitter to any factor that fails (never singular)."""
    chol, info = torch.linalg.cholesky_ex(cov)
    jitter = max(reg, 1e-10)
    while bool((info > 0).any()):
        bad = info > 0
        eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
        fixed, info_fixed = torch.linalg.cholesky_ex(cov[bad] + jitter * eye)
        chol[bad], info[bad] = fixed, info_fixed
        jitter *= 10
        if jitter > 1e6:
            raise PushforwardError(
                "covariance is not positive definite even after regularisation; raise --reg-covar"
            )
    return chol
