"""The paper's claims as one-command experiments: ``pushforward experiment NAME [--quick]``.

Each writes its figures and a JSON of its numbers into a folder; docs/experiments/ shows the
full results with the command that made them. ``--quick`` shrinks the budgets for tests.
"""

from __future__ import annotations

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


EXPERIMENTS: dict[str, Callable[[Path, bool], dict[str, Any]]] = {
    "gmm-universality": gmm_universality
}


def run_experiment(name: str, out: Path, quick: bool = False) -> Path:
    """Run one experiment into ``out``; writes out/results.json beside its figures."""
    start = time.perf_counter()
    results = EXPERIMENTS[name](out, quick)
    results.update(experiment=name, quick=quick, seconds=round(time.perf_counter() - start, 1))
    atomic_write_json(out / "results.json", results)
    return out / "results.json"


__all__ = ["EXPERIMENTS", "run_experiment"]
