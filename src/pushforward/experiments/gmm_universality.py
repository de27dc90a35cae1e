"""Claim: a mixture of Gaussians approximates almost any density. GMMs with K = 1, 2, 4, ..., 64
on every 2-D set: held-out NLL against K, the KL from the true density where it is known
(KL(p || q) = E_p[log p - log q], estimated on the test points), and the fitted densities.
Beside them the other explicit density, a normalizing flow at its defaults: a Gaussian pushed
through one invertible network instead of K of them placed by EM.

May import, of this package: data, experiments/base, experiments/runner, models, plots, run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, cast

import torch
from tqdm.auto import tqdm

from .. import plots
from ..data import TOY_SETS, in_memory, load_dataset
from ..models import GMM, ExactDensity, GMMConfig
from ..run import Run
from .base import Experiment, Settings, md_table
from .runner import Job, run_jobs

QUICK_FLOW_STEPS = 300  # the full run trains the flow at its defaults


def run(out: Path, quick: bool, settings: Settings) -> dict[str, Any]:
    ks = [1, 2, 4, 8] if quick else [1, 2, 4, 8, 16, 32, 64]
    names = settings.keep(["ring8", "moons", "checkerboard"] if quick else list(TOY_SETS))
    n_train = 5_000 if quick else None
    results: dict[str, Any] = {"k": ks, "sets": {}}
    fits: dict[str, list[GMM]] = {}
    for name in tqdm(names, desc="gmm-universality", unit="set", disable=None):
        ds = load_dataset(name)
        train, test = in_memory(ds.train)[:n_train], in_memory(ds.split("test"))
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
    flows = _flows(out, names, quick, settings)
    for name, (_, scores) in flows.items():
        entropy = results["sets"][name]["true_entropy_nats"]
        kl = None if entropy is None else scores["nll_nats"] - entropy
        # every metric of `pushforward eval` (modes, MMD and W2 too), and the KL
        results["sets"][name]["flow"] = {**scores, "kl_nats": kl}
    _figures(out, results, fits, {name: run for name, (run, _) in flows.items()})
    return results


def _flows(
    out: Path, names: list[str], quick: bool, settings: Settings
) -> dict[str, tuple[Run, dict[str, Any]]]:
    """A flow trained on each set (its defaults; 300 steps when ``quick``) and every metric."""
    length = {"steps": QUICK_FLOW_STEPS} if quick else {}
    jobs = [
        Job("flow", str(out / "runs" / f"flow-{name}"), {"data": name, "seed": 0, **length}, "all")
        for name in names
    ]  # fmt: skip
    scores = run_jobs(jobs, settings, "gmm-universality: flows")
    return {
        name: (Run.load(job.folder, "cpu"), s)
        for name, job, s in zip(names, jobs, scores, strict=True)
    }


def _figures(
    out: Path, results: dict[str, Any], fits: dict[str, list[GMM]], flows: dict[str, Run]
) -> None:
    sets = results["sets"]
    nll = {name: [r["nll_nats"] for r in v["fits"]] for name, v in sets.items()}
    kl = {
        name: [r["kl_nats"] for r in v["fits"]]
        for name, v in sets.items()
        if v["true_entropy_nats"] is not None
    }
    plots.write(out / "nll_and_kl_vs_k.png", plots.against_k(results["k"], nll, kl))
    # the fitted densities: one row per set, the data, one column per K, then the flow
    rows = {
        name: (
            load_dataset(name).train[:20000],
            [*(gmm.log_prob for gmm in fits[name]), cast(ExactDensity, flows[name].model).log_prob],
        )
        for name in sets
    }
    titles = [*(f"K = {k}" for k in results["k"]), "flow"]
    plots.write(out / "densities.png", plots.density_table(rows, titles))


def summary(r: dict[str, Any]) -> str:
    """Held-out NLL per set and K (and the flow's), and the KL to the true density where it is
    known."""
    head = ["set", "true entropy", *(f"K = {k}" for k in r["k"]), "flow"]
    nll = [
        [name, v["true_entropy_nats"], *(f["nll_nats"] for f in v["fits"]), v["flow"]["nll_nats"]]
        for name, v in r["sets"].items()
    ]
    kl = [
        [name, v["true_entropy_nats"], *(f["kl_nats"] for f in v["fits"]), v["flow"]["kl_nats"]]
        for name, v in r["sets"].items()
        if v["true_entropy_nats"] is not None
    ]
    return (
        "## Held-out NLL (nats per point)\n\n"
        + md_table(head, nll)
        + "\n## KL(p* || p) to the true density (nats)\n\n"
        + md_table(head, kl)
    )


# EM runs to convergence: a longer schedule (--scale) means nothing here
EXPERIMENT = Experiment("gmm-universality", run, list(TOY_SETS), summary, scalable=False)
