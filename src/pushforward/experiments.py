"""The paper's claims as one-command experiments: ``pushforward experiment NAME [--quick]``.

Each writes its figures and a JSON of its numbers into a folder; docs/experiments/ shows the
full results with the command that made them. ``--quick`` shrinks the budgets for tests.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch
from tqdm.auto import tqdm

from . import plots
from .checkpoint import atomic_write_json
from .data import TOY_SETS, load_dataset
from .models.gmm import GMM, GMMConfig


def gmm_universality(out: Path, quick: bool = False) -> dict[str, Any]:
    """Claim: a mixture of Gaussians approximates almost any density. GMMs with K = 1, 2, 4, ...,
    64 on every 2-D set: held-out NLL against K, the KL from the true density where it is known
    (KL(p || q) = E_p[log p - log q], estimated on the test points), and the fitted densities."""
    ks = [1, 2, 4, 8] if quick else [1, 2, 4, 8, 16, 32, 64]
    names = ["ring8", "moons", "checkerboard"] if quick else list(TOY_SETS)
    n_train = 5_000 if quick else None
    results: dict[str, Any] = {"k": ks, "sets": {}}
    fits: dict[str, list[GMM]] = {}
    for name in tqdm(names, desc="gmm-universality", unit="set"):
        ds = load_dataset(name)
        train, test = ds.train[:n_train] if n_train else ds.train, ds.split("test")
        entropy = float(-ds.log_prob(test.double()).mean()) if ds.log_prob else None
        rows = []
        fits[name] = []
        for k in ks:
            t0 = time.perf_counter()
            gmm = GMM(GMMConfig(components=k), (2,))
            info = gmm.fit(train, generator=torch.Generator().manual_seed(0))
            nll = float(-gmm.log_prob(test).mean())
            rows.append(
                {
                    "k": k,
                    "nll_nats": nll,
                    "kl_nats": None if entropy is None else nll - entropy,
                    "bic": gmm.bic(train),
                    "em_iterations": info["iterations"],
                    "seconds": round(time.perf_counter() - t0, 3),
                }
            )
            fits[name].append(gmm)
        results["sets"][name] = {"true_entropy_nats": entropy, "fits": rows}
    _universality_figures(out, results, fits)
    return results


def _universality_figures(out: Path, results: dict[str, Any], fits: dict[str, list[GMM]]) -> None:
    ks, names = results["k"], list(results["sets"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name in names:
        rows = results["sets"][name]["fits"]
        axes[0].plot(ks, [r["nll_nats"] for r in rows], marker="o", label=name)
        if results["sets"][name]["true_entropy_nats"] is not None:
            axes[1].plot(ks, [max(r["kl_nats"], 1e-4) for r in rows], marker="o", label=name)
    for ax, title in zip(axes, ("held-out NLL (nats)", "KL(true || GMM) (nats)"), strict=True):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("components K")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[1].set_yscale("log")
    plots.write(out / "nll_and_kl_vs_k.png", plots.fig_bytes(fig))
    # the fitted densities: one row per set, the data then one column per K
    fig, axes = plt.subplots(
        len(names), len(ks) + 1, figsize=(1.8 * (len(ks) + 1), 1.8 * len(names)), squeeze=False
    )
    for i, name in enumerate(names):
        ds = load_dataset(name)
        ref = ds.train[:20000]
        x0, x1, y0, y1 = plots.data_limits(ref)
        axes[i, 0].hist2d(
            ref[:, 0].numpy(), ref[:, 1].numpy(), bins=120, range=[[x0, x1], [y0, y1]], cmap="magma"
        )
        axes[i, 0].set_ylabel(name, fontsize=8)
        for j, gmm in enumerate(fits[name]):
            plots.draw_density(axes[i, j + 1], gmm.log_prob, (x0, x1, y0, y1), "magma")
            if i == 0:
                axes[i, j + 1].set_title(f"K = {ks[j]}", fontsize=8)
        if i == 0:
            axes[i, 0].set_title("data", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    plots.write(out / "densities.png", plots.fig_bytes(fig))


# GAN losses and remedies compared by mode-collapse; every entry shares MODE_BASE's networks.
MODE_BASE: dict[str, Any] = {
    "hidden": 256,
    "depth": 2,
    "lr": 5e-4,
    "beta1": 0.0,
    "beta2": 0.9,
    "batch_size": 128,
}
MODE_CONFIGS: dict[str, dict[str, Any]] = {
    "gan (ns)": {},
    "gan (minimax)": {"loss": "minimax"},
    "pacgan2": {"pack": 2},
    "pacgan4": {"pack": 4},
    "hinge + spectral norm": {"loss": "hinge", "spectral_norm": True},
    "wgan-gp": {"loss": "wgan-gp", "d_steps": 5},
    "r1 + ema": {"r1": 1.0, "ema": 0.999},
}
# PacGAN, Lin et al. 2018, Table 1: (modes, high-quality fraction, reverse KL), 400k steps
PUBLISHED_MODES = {
    "ring8": {
        "GAN (PacGAN paper)": (6.3, 0.982, 0.45),
        "PacGAN4 (PacGAN paper)": (7.8, 0.959, 0.07),
    },
    "grid25": {
        "GAN (PacGAN paper)": (17.3, 0.948, 0.70),
        "PacGAN4 (PacGAN paper)": (24.8, 0.936, 0.04),
    },
}


def _mean_se(values: list[float]) -> tuple[float, float]:
    t = torch.tensor(values, dtype=torch.float64)
    se = float(t.std() / math.sqrt(len(t))) if len(t) > 1 else 0.0
    return float(t.mean()), se


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-")


def mode_collapse(out: Path, quick: bool = False) -> dict[str, Any]:
    """Claim: GANs drop modes, and the remedies bring them back. Every configuration of
    MODE_CONFIGS on ring8 and grid25 over several seeds; modes, high-quality fraction and reverse
    KL (PacGAN's definitions, 2,500 samples) as mean and standard error, beside the published
    rows."""
    from .data import TOY_MODES, TOY_STD
    from .metrics.modes import mode_coverage
    from .train import train

    seeds = [0] if quick else [0, 1, 2, 3, 4]
    steps = 150 if quick else 20_000
    configs = {k: MODE_CONFIGS[k] for k in ("gan (ns)", "pacgan4")} if quick else MODE_CONFIGS
    results: dict[str, Any] = {
        "steps": steps,
        "seeds": seeds,
        "base": MODE_BASE,
        "published": PUBLISHED_MODES,
        "sets": {},
    }
    shown: dict[str, dict[str, torch.Tensor]] = {}
    for data in ("ring8", "grid25"):
        modes = torch.as_tensor(TOY_MODES[data])
        rows: dict[str, Any] = {}
        for name, extra in tqdm(configs.items(), desc=f"mode-collapse {data}", unit="config"):
            per_seed = []
            for seed in seeds:
                folder = out / "runs" / f"{data}-{_slug(name)}-{seed}"
                options = {
                    **MODE_BASE,
                    **extra,
                    "steps": steps,
                    "seed": seed,
                    "log_every": max(1, steps // 20),
                }
                run = train("gan", data=data, out=folder, overwrite=True, progress=False, **options)
                x = run.sample(2500, seed=seed)
                per_seed.append(mode_coverage(x, modes, TOY_STD[data]))
                if seed == seeds[0]:
                    shown.setdefault(data, {})[name] = x
            summary = {
                k: _mean_se([r[k] for r in per_seed])
                for k in ("modes", "hq_fraction", "reverse_kl_modes")
            }
            rows[name] = {"per_seed": per_seed, **summary}
        results["sets"][data] = rows
    names = list(configs)
    fig, axes = plt.subplots(2, len(names), figsize=(2.6 * len(names), 5.4), squeeze=False)
    for i, data in enumerate(("ring8", "grid25")):
        ref = load_dataset(data).train[:20000]
        x0, x1, y0, y1 = plots.data_limits(ref)
        for j, name in enumerate(names):
            ax = axes[i, j]
            ax.scatter(ref[:3000, 0], ref[:3000, 1], s=1, c="0.7", linewidths=0)
            x = shown[data][name]
            ax.scatter(x[:, 0], x[:, 1], s=1, c="tab:red", alpha=0.5, linewidths=0)
            ax.set_xlim(x0, x1)
            ax.set_ylim(y0, y1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=8)
    plots.write(out / "samples.png", plots.fig_bytes(fig))
    return results


EXPERIMENTS: dict[str, Callable[[Path, bool], dict[str, Any]]] = {
    "gmm-universality": gmm_universality,
    "mode-collapse": mode_collapse,
}


def run_experiment(name: str, out: Path, quick: bool = False) -> Path:
    """Run one experiment into ``out``; writes out/results.json beside its figures."""
    start = time.perf_counter()
    results = EXPERIMENTS[name](out, quick)
    results.update(experiment=name, quick=quick, seconds=round(time.perf_counter() - start, 1))
    atomic_write_json(out / "results.json", results)
    return out / "results.json"


__all__ = ["EXPERIMENTS", "run_experiment"]
