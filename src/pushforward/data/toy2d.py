"""The 2-D toy sets: seeded samplers and, where the density has a closed form, exact log-densities.

ring8 and grid25 are the VEEGAN/PacGAN mode-collapse mixtures; checkerboard is uniform on eight
squares. Those three carry an exact ``log_prob`` so evaluation can score samples under the truth.
moons, swissroll, pinwheel and spirals are noisy curves with no closed-form density.

May import, of this package: data/dataset.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from .dataset import Dataset, Source

Sampler = Callable[[np.random.Generator, int], np.ndarray]  # (rng, n) -> [n, 2]
LogProb = Callable[[torch.Tensor], torch.Tensor]  # [N, 2] -> [N]


def isotropic_mixture_log_prob(x: torch.Tensor, means: torch.Tensor, std: float) -> torch.Tensor:
    """log p(x) of an equal-weight mixture of N(mean_k, std^2 I); x [N, D], means [K, D] -> [N]."""
    means = means.to(x)
    d = x.shape[1]
    sq = torch.cdist(x, means).pow(2)  # [N, K]
    log_norm = -0.5 * d * math.log(2 * math.pi * std**2)
    return torch.logsumexp(-0.5 * sq / std**2, dim=1) + log_norm - math.log(means.shape[0])


@dataclass(frozen=True)
class GaussianMixture2D:
    """An equal-weight isotropic mixture: samples and the exact density."""

    means: np.ndarray  # [K, 2]
    std: float

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        k = rng.integers(0, len(self.means), size=n)
        return self.means[k] + self.std * rng.standard_normal((n, 2))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return isotropic_mixture_log_prob(x, torch.as_tensor(self.means), self.std)


_RING8 = GaussianMixture2D(
    means=np.array(
        [[math.cos(2 * math.pi * k / 8), math.sin(2 * math.pi * k / 8)] for k in range(8)]
    ),
    std=0.01,
)
_GRID25 = GaussianMixture2D(
    means=np.array([[a, b] for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)], dtype=float),
    std=0.05,
)


def _checkerboard(rng: np.random.Generator, n: int) -> np.ndarray:
    # uniform on the 8 squares of side 2 in [-4, 4]^2 whose cell indices sum to an even number
    x1 = rng.uniform(-2, 2, n)
    x2 = rng.uniform(0, 1, n) - 2 * rng.integers(0, 2, n) + np.floor(x1) % 2
    return 2 * np.stack([x1, x2], axis=1)


def _checkerboard_log_prob(x: torch.Tensor) -> torch.Tensor:
    u = x / 2
    inside = (u.abs() <= 2).all(dim=1) & ((torch.floor(u[:, 0]) + torch.floor(u[:, 1])) % 2 == 0)
    out = torch.full(x.shape[:1], -math.inf, dtype=x.dtype, device=x.device)
    return out.masked_fill(inside, -math.log(32.0))  # 8 squares of area 4


def _moons(rng: np.random.Generator, n: int) -> np.ndarray:
    t = rng.uniform(0, math.pi, n)
    upper = rng.integers(0, 2, n).astype(bool)
    x = np.where(upper, np.cos(t), 1 - np.cos(t))
    y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
    pts = np.stack([x - 0.5, y - 0.25], axis=1)
    return pts + 0.05 * rng.standard_normal((n, 2))


def _swissroll(rng: np.random.Generator, n: int) -> np.ndarray:
    t = 1.5 * math.pi * (1 + 2 * rng.uniform(0, 1, n))
    pts = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / 5
    return pts + 0.2 * rng.standard_normal((n, 2))


def _pinwheel(rng: np.random.Generator, n: int) -> np.ndarray:
    arms, rate = 5, 0.25
    feats = rng.standard_normal((n, 2)) * np.array([0.3, 0.1]) + np.array([1.0, 0.0])
    arm = rng.integers(0, arms, n)
    angle = 2 * math.pi * arm / arms + rate * np.exp(feats[:, 0])
    c, s = np.cos(angle), np.sin(angle)
    return 2 * np.stack([c * feats[:, 0] - s * feats[:, 1], s * feats[:, 0] + c * feats[:, 1]], 1)


def _spirals(rng: np.random.Generator, n: int) -> np.ndarray:
    t = np.sqrt(rng.uniform(0, 1, n)) * 3 * math.pi
    sign = np.where(rng.integers(0, 2, n) == 1, 1.0, -1.0)[:, None]
    pts = sign * np.stack([-np.cos(t) * t, np.sin(t) * t], axis=1) / 3
    return pts + 0.1 * rng.standard_normal((n, 2))


@dataclass(frozen=True)
class ToySet:
    sample: Sampler
    log_prob: LogProb | None
    description: str


TOY_SETS: dict[str, ToySet] = {
    "ring8": ToySet(_RING8.sample, _RING8.log_prob, "8 Gaussians on the unit circle, std 0.01"),
    "grid25": ToySet(_GRID25.sample, _GRID25.log_prob, "25 Gaussians on {-4..4}^2, std 0.05"),
    "checkerboard": ToySet(_checkerboard, _checkerboard_log_prob, "uniform on 8 squares"),
    "moons": ToySet(_moons, None, "two interleaved half circles"),
    "swissroll": ToySet(_swissroll, None, "a noisy 2-D swiss roll"),
    "pinwheel": ToySet(_pinwheel, None, "5 curved arms"),
    "spirals": ToySet(_spirals, None, "two interleaved spirals"),
}

TOY_MODES: dict[str, np.ndarray] = {"ring8": _RING8.means, "grid25": _GRID25.means}
TOY_STD: dict[str, float] = {"ring8": _RING8.std, "grid25": _GRID25.std}

N_TRAIN, N_TEST = 50_000, 10_000


def toy_split(name: str, split: str, n: int | None = None) -> torch.Tensor:
    """The fixed ``train`` or ``test`` split of a toy set: the same points on every machine.

    Each split has its own seed stream (fixed by the set's name), independent of the run's seed.
    """
    n = n if n is not None else (N_TRAIN if split == "train" else N_TEST)
    stream = sum(ord(c) * 31**i for i, c in enumerate(name)) % 2**31
    rng = np.random.default_rng([stream, 0 if split == "train" else 1])
    return torch.from_numpy(TOY_SETS[name].sample(rng, n).astype(np.float32))  # [n, 2]


def separated_mixture(n: int, dim: int = 16, k: int = 10, seed: int = 0) -> torch.Tensor:
    """n points [n, dim] from k well-separated full-covariance Gaussians (float64).

    A higher-dimensional test bed for the GMM: its components (means ~ N(0, 8^2 I)) and
    covariances are fixed; ``seed`` only changes which points are drawn.
    """
    means = np.random.default_rng(123).normal(0, 8, (k, dim))
    factors = np.random.default_rng(321).normal(0, 0.4, (k, dim, dim)) + np.eye(dim)
    rng = np.random.default_rng(seed)
    comp = rng.integers(0, k, n)
    x = means[comp] + np.einsum("nde,ne->nd", factors[comp], rng.standard_normal((n, dim)))
    return torch.from_numpy(x)


def mode_labels(name: str, x: torch.Tensor) -> torch.Tensor | None:
    """The mode each point of a mode set (ring8, grid25) belongs to, its nearest mode: [N]
    int64, or None for a set without modes. With the modes' spread (0.01 and 0.05 against a
    spacing of 0.77 and 2), that is the Gaussian the point was drawn from."""
    if name not in TOY_MODES:
        return None
    modes = torch.as_tensor(TOY_MODES[name], dtype=x.dtype, device=x.device)
    return torch.cdist(x, modes).argmin(1).long()


def _toy_dataset(name: str, data_dir: str | None = None) -> Dataset:
    """A toy set's fixed splits, with its exact log-density where it has one; a mode set's
    points are labelled with their mode."""
    train, test = toy_split(name, "train"), toy_split(name, "test")
    return Dataset(
        name,
        "points",
        train,
        test,
        "generated",
        mode_labels(name, train),
        mode_labels(name, test),
        log_prob=TOY_SETS[name].log_prob,
    )


def _toy_row(name: str, data_dir: str | None = None) -> dict[str, object]:
    exact = "exact log_prob" if TOY_SETS[name].log_prob else "no closed-form density"
    return dict(shape=(2,), train=N_TRAIN, test=N_TEST, source=f"generated ({exact})")


TOY_SOURCES = {
    name: Source("points", partial(_toy_dataset, name), partial(_toy_row, name))
    for name in TOY_SETS
}
