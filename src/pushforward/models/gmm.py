"""The explicit baseline: a Gaussian mixture fitted by EM, written as batched torch.

The paper's "linear combination of Gaussians" made concrete. It has an exact density, so it is
the yardstick the implicit models (VAE, GAN) are measured against. k-means++ seeding, then Lloyd
iterations, then EM; the convergence rule follows scikit-learn's so the two agree at equal ``tol``.

May import, of this package: config, data, errors, limits, models/base, models/drawing,
models/em, models/gmm_search.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch

from ..config import Options, option
from ..data import TOY_MODES, Dataset
from ..errors import PushforwardError
from ..limits import check_fits
from . import drawing as dr
from .base import ExactDensity, Model
from .em import MixtureEM, squares
from .gmm_search import DEFAULT_EM_STEPS, choose_components, parameters_per_component


@dataclass(frozen=True)
class GMMConfig(Options):
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
    kmeans_sample: int = option(
        200_000,
        "k-means runs on all points up to this many, else on a seeded sample of this many (EM "
        "then uses every point)",
        at_least=1,
    )
    restarts: int = option(
        1,
        "k-means starts tried; EM runs from the one with the lowest sum of squared distances",
        at_least=1,
        at_most=100,
    )
    dtype: str = option("float64", "EM arithmetic", ("float64", "float32"))
    chunk_size: int = option(16384, "points per E-step chunk; bounds memory", at_least=1)


_DTYPES = {"float64": torch.float64, "float32": torch.float32}
_CACHE_BYTES = 8 * 2**20  # an E-step chunk's temporaries: within the cores' last-level cache
_MIN_ROWS = 512  # but never fewer rows: with K x D large (64 x 784) GEMMs of a few rows crawl


class GMM(Model, ExactDensity, MixtureEM):
    """Mixture of K Gaussians with full or diagonal covariances over flattened examples."""

    Config = GMMConfig
    explain = "explicit density: a weighted sum of Gaussians, fitted by EM"
    failure_hint = "more --components, or a larger --reg-covar"
    lead = "A Gaussian mixture: EM moves explicit components onto the data"
    curve_label = "-log-likelihood / point"
    step_unit = "EM iteration"
    demo: ClassVar[dict[str, dict[str, Any]]] = {
        "ring8": {"components": 8},
        "digits": {"components": 10, "reg_covar": 1e-2},
    }
    weights: torch.Tensor  # [K]
    means: torch.Tensor  # [K, D]
    covariances: torch.Tensor  # [K, D, D] (full) or [K, D] (diag)
    _prec: torch.Tensor
    _log_det: torch.Tensor

    @classmethod
    def resolve_config(cls, cfg: GMMConfig, data: Dataset, seed: int = 0) -> GMMConfig:
        """Without --components, K is chosen on held-out data (``choose_components``)."""
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

    def _rows(self, like: torch.Tensor, per_row: int) -> int:
        """Rows per chunk: temporaries of ``per_row`` elements each stay within _CACHE_BYTES (so
        the passes over them run in cache) unless that leaves fewer than _MIN_ROWS rows, and
        within --chunk-size points."""
        cached = max(_MIN_ROWS, _CACHE_BYTES // (per_row * like.element_size()))
        return max(1, min(self.config.chunk_size, cached))

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(len(x), -1).to(self.means)  # [N, D]

    def _log_gauss(self, x: torch.Tensor, centre: torch.Tensor | None = None) -> torch.Tensor:
        """log N(x | mu_k, Sigma_k) for each component: x [N, D] -> [N, K], chunk by chunk;
        x already centred (x - ``centre``) when ``centre`` is given."""
        k, d = self.means.shape
        means = self.means if centre is None else self.means - centre  # [K, D]
        out = torch.empty(len(x), k, dtype=x.dtype, device=x.device)  # [N, K]
        if self.config.covariance == "full":
            # one GEMM per chunk for every component: x [n, D] @ [D, K * D], not K small ones
            p = self._prec.permute(1, 0, 2).reshape(d, k * d)
            shift = torch.einsum("kd,kde->ke", means, self._prec)  # [K, D]
            rows = self._rows(x, k * d)
            for s in range(0, len(x), rows):
                y = (x[s : s + rows] @ p).view(-1, k, d).sub_(shift)  # [n, K, D]
                torch.linalg.vector_norm(y, dim=-1, out=out[s : s + rows])
            out.square_()
        else:
            w, const = self._diag_weights(means)
            rows = self._rows(x, 2 * d)
            for s in range(0, len(x), rows):
                torch.mm(squares(x[s : s + rows]), w, out=out[s : s + rows])
            out += const
        return self._to_log_density(out)

    def _diag_weights(self, means: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The diagonal Mahalanobis distance as [x^2, x] @ w + const: (w [2D, K], const [K])."""
        p = self._prec  # [K, D]
        return torch.cat([p, -2 * means * p], 1).T, (means.pow(2) * p).sum(1)

    def _to_log_density(self, sq: torch.Tensor) -> torch.Tensor:
        """Squared Mahalanobis distances [N, K] -> log N(x | mu_k, Sigma_k), in place."""
        d = self.means.shape[1]
        return sq.add_(d * math.log(2 * math.pi)).mul_(-0.5).add_(self._log_det)

    def _log_joint(self, x: torch.Tensor) -> torch.Tensor:
        return self._log_gauss(x) + torch.log(self.weights)  # [N, K]

    # ---------------------------------------------------------------- public API

    @torch.no_grad()
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log-density of each example: x [N, *shape] -> [N] (in the EM dtype)."""
        x = self._flat(x)
        chunks = x.split(self.config.chunk_size)  # [chunk, K] at a time
        return torch.cat([torch.logsumexp(self._log_joint(c), 1) for c in chunks])

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        labels: torch.Tensor | int | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """n draws: a component by weight, then mu_k + T L_k z. Returns float32 [n, *shape]."""
        self.draw_labels(n, labels, generator)  # refuses labels: the mixture is not conditional
        k = torch.multinomial(self.weights.float().cpu(), n, replacement=True, generator=generator)
        z = torch.randn(n, self.means.shape[1], generator=generator, dtype=self.means.dtype)
        z = z * temperature  # [n, D]
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

    # ------------------------------------------------------------------ its frames

    def frame(
        self, view: dr.FrameView, inputs: dict[str, torch.Tensor], generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """2-D points: the parameters at this EM iteration and the density they define."""
        if view.kind != "points" or view.extent is None:
            return {}
        cov = self.covariances.float().cpu()
        return {
            "weights": self.weights.float().cpu(),  # [K]
            "means": self.means.float().cpu(),  # [K, 2]
            "covariances": cov if cov.dim() == 3 else torch.diag_embed(cov),  # [K, 2, 2]
            "log_density": dr.log_map(self.log_prob(dr.plane(view.extent).to(self.means.device))),
        }

    @classmethod
    def panels(cls, info: dict[str, Any]) -> list[dict[str, Any]]:
        if info["kind"] != "points":
            return dr.sample_panels(info["kind"])
        components = dr.panel(
            "The components through EM",
            "Each Gaussian as its 1- and 2-sigma ellipses (thicker: more weight) over the true "
            "density, with held-out points; EM moves them to the data's modes.",
            "data",
            [
                dr.density("true_log_density"),
                dr.dots("points", "#000000", 1.0, 0.35),
                dr.ellipses("weights", "means", "covariances"),
            ],
            ("density", "low", "high true density"),
        )
        mixture = dr.panel(
            "The mixture's density",
            "log p(x) of the mixture at this iteration, scaled like the true density.",
            "data",
            [dr.density("log_density")],
            dr.DENSITY_LEGEND,
        )
        return [components, mixture]


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
