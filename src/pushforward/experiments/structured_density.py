"""Claim, against a ground truth: writing a density down with a mixture of Gaussians works in low
dimension and falls away as the dimension grows, while a pushforward keeps up. The data are D/2
independent curved pairs, a ~ N(0, 1) and b = c (a^2 - 1) + s e with e ~ N(0, 1), turned by a
fixed random rotation of R^D: the shear (a, b) -> (a, b - c (a^2 - 1)) has Jacobian 1 and the
rotation keeps volume, so the entropy is closed-form, H = D/2 (log(2 pi e) + log s), and so is
the density. At each D the GMM (its default K search and budget), the flow (exact) and the
VAE (its IWAE bound) are scored by held-out NLL against H.

May import, of this package: experiments/base, experiments/runner, files, plots.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import plots
from ..files import atomic_write_npy
from .base import Experiment, Settings, md_table
from .runner import Job, run_jobs

DIMS = [2, 8, 16, 32, 64]
QUICK_DIMS = [2, 8]
CURVE, NOISE = 1.0, 0.3  # c and s above: each pair a parabola-shaped ridge 0.3 wide
N_TRAIN, N_TEST = 50_000, 10_000
# each model's training options (the flow and the VAE: their defaults for points, a longer
# run); the GMM searches K on the data and runs EM to convergence, as by default
MODELS: dict[str, dict[str, Any]] = {"gmm": {}, "flow": {"steps": 10_000}, "vae": {"steps": 10_000}}
IWAE_K, IWAE_POINTS = 1000, 2000  # the VAE's bound: importance samples, first test points


def rotation(d: int) -> torch.Tensor:
    """The fixed random rotation of R^d (seeded by d): [d, d], float64."""
    g = torch.Generator().manual_seed(1000 + d)
    q, r = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))  # [d, d], a rotation or reflection: |det| 1


def sample(n: int, d: int, seed: int) -> torch.Tensor:
    """n points of the D-dimensional curved pairs, rotated: [n, d], float64."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d // 2, generator=g, dtype=torch.float64)
    b = CURVE * (a**2 - 1) + NOISE * torch.randn(n, d // 2, generator=g, dtype=torch.float64)
    return torch.stack([a, b], 2).reshape(n, d) @ rotation(d).T


def log_prob(x: torch.Tensor, d: int) -> torch.Tensor:
    """The true log-density at x [n, d]: [n]."""
    y = x.double() @ rotation(d)  # back to the pairs
    a, b = y[:, 0::2], y[:, 1::2]
    normal = torch.distributions.Normal(0.0, 1.0)
    ridge = torch.distributions.Normal(CURVE * (a**2 - 1), NOISE)
    return normal.log_prob(a).sum(1) + ridge.log_prob(b).sum(1)


def entropy(d: int) -> float:
    """H = D/2 (log(2 pi e) + log s) nats: a's and b's given a, for each pair."""
    return d / 2 * (math.log(2 * math.pi * math.e) + math.log(NOISE))


def _write_data(folder: Path, d: int, n_train: int) -> tuple[Path, Path]:
    """The train and test points as .npy files (float32), written once: their paths."""
    paths = []
    for split, n, seed in (("train", n_train, d), ("test", N_TEST, 10_000 + d)):
        path = folder / f"pairs{d}-{split}.npy"
        if not path.exists():
            atomic_write_npy(path, sample(n, d, seed).float().numpy())
        paths.append(path)
    return paths[0], paths[1]


def run(out: Path, quick: bool, settings: Settings) -> dict[str, Any]:
    dims = [d for d in (QUICK_DIMS if quick else DIMS) if str(d) in settings.keep(_parts())]
    models = [m for m in MODELS if m in settings.keep(list(MODELS))]
    n_train = 5_000 if quick else N_TRAIN
    k, points = (100, 500) if quick else (IWAE_K, IWAE_POINTS)
    jobs, truth = [], {}
    for d in dims:
        train, test = _write_data(out / "data", d, n_train)
        test_points = torch.from_numpy(np.load(test))
        true_nll = -log_prob(test_points, d)  # [N_TEST]: its mean estimates H
        truth[d] = {
            "entropy_nats": entropy(d),
            "true_nll_nats": float(true_nll.mean()),
            "true_nll_nats_iwae_points": float(true_nll[:points].mean()),
        }
        for m in models:
            opts = dict(MODELS[m])
            if "steps" in opts:
                opts["steps"] = settings.length(200 if quick else opts["steps"])
            bound = {"k": k, "n_real": points} if m == "vae" else {}
            metrics = {"metrics": ["nll"], **bound}
            data = {"data": f"npy:{train}", "test_data": f"npy:{test}"}
            jobs.append(Job(m, str(out / "runs" / f"{m}-{d}"), {**opts, **data}, "all", metrics))
    scores = iter(run_jobs(jobs, settings, "structured-density"))
    results: dict[str, Any] = {"dims": dims, "models": models, "noise": NOISE, "curve": CURVE}
    results["by_dim"] = {
        str(d): {**truth[d], **{m: _scored(next(scores), truth[d], m) for m in models}}
        for d in dims
    }
    _figure(out, results)
    return results


def _parts() -> list[str]:
    return [str(d) for d in DIMS]


def _scored(scores: dict[str, Any], truth: dict[str, float], model: str) -> dict[str, Any]:
    """The model's scores, and KL(p || model) estimated on the points it was scored on: its
    NLL minus the true density's there (the gap to H, less the test sample's noise)."""
    keep = ("nll_nats", "nll_kind", "parameters", "train_seconds", "warning")
    out = {k: scores[k] for k in keep if k in scores}
    true = truth["true_nll_nats_iwae_points" if model == "vae" else "true_nll_nats"]
    return {**out, "kl_nats": scores["nll_nats"] - true}


def _figure(out: Path, r: dict[str, Any]) -> None:
    dims = r["dims"]
    series = {
        "KL(true || model), nats": {
            m: [r["by_dim"][str(d)][m]["kl_nats"] for d in dims] for m in r["models"]
        },
        "KL per dimension, nats": {
            m: [r["by_dim"][str(d)][m]["kl_nats"] / d for d in dims] for m in r["models"]
        },
    }
    plots.write(out / "kl_vs_dimension.png", plots.against_dimension(dims, series, "dimension D"))


def summary(r: dict[str, Any]) -> str:
    head = ["D", "entropy H", "true density's NLL"]
    head += [f"{m}: NLL (KL)" for m in r["models"]]
    rows = [
        [
            d,
            f"{v['entropy_nats']:.3f}",
            f"{v['true_nll_nats']:.3f}",
            *(f"{v[m]['nll_nats']:.3f} ({v[m]['kl_nats']:.3f})" for m in r["models"]),
        ]
        for d, v in ((d, r["by_dim"][str(d)]) for d in r["dims"])
    ]
    intro = (
        "Held-out NLL in nats per point on the 10,000 test points (the VAE's: its IWAE-1000 "
        "bound on the first 2,000), and in brackets KL(p || model), its NLL less the true "
        "density's on the same points (whose mean estimates H).\n\n"
    )
    return intro + (md_table(head, rows))


EXPERIMENT = Experiment("structured-density", run, [*_parts(), *MODELS], summary)
