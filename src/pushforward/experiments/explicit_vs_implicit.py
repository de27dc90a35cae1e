"""Claim: in high dimension an explicit density stops paying, and implicit models take over. A
pixel-space GMM (full and diagonal covariances) against the VAE and the GAN, each with as many
sampling parameters as the VAE's decoder, on digits and Fashion-MNIST: Fréchet distance,
precision/recall/density/coverage and class balance, and the samples."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .. import plots
from ..data import Dataset, load_dataset
from ..models import VAE, VAEConfig
from ..models.gan import PLAIN_GAN
from ..run import Run
from .base import Experiment, Settings, md_table, slug
from .runner import FEATURE_KEYS, Job, need_classifier, run_jobs

# matched to the VAE's decoder: the MLP sizes per data set; GMM components follow from them
EXPLICIT_NETS: dict[str, dict[str, Any]] = {
    # 128 wide, the MLP GAN never learned digits (FD 660-1,500 over four optimizer settings)
    "digits": {"latent_dim": 16, "hidden": 256, "depth": 2},
    "fashion-mnist": {"latent_dim": 40, "hidden": 512, "depth": 2},
}
EXPLICIT_MODELS = ("gmm full", "gmm diag", "vae", "gan")


def _components(per_component: int, budget: int) -> int:
    return max(1, round(budget / per_component))


def _configs(
    data: str, ds: Dataset, budget: int, quick: bool, settings: Settings
) -> dict[str, tuple[str, dict[str, Any]]]:
    """name -> (model, options) of every model compared on ``data``, at equal ``budget``."""
    net, d = EXPLICIT_NETS[data], math.prod(ds.shape)
    epochs = settings.length((100 if quick else 300) if data == "digits" else 10)
    steps_per_epoch = math.ceil(len(ds.train) / 128)
    # EM iterations: on 60,000 784-d images one full-covariance iteration is ~150 GFLOP
    em_steps = settings.length(100 if data == "digits" and not quick else 20)
    full = {"components": _components(d + d * (d + 1) // 2 + 1, budget), "reg_covar": 1e-2}
    diag = {
        "components": _components(2 * d + 1, budget),
        "covariance": "diag",
        "reg_covar": 1e-2,
        # hundreds of k-means centres on 60,000 images: Lloyd's 300 iterations took longer
        # than everything else here
        **({"kmeans_iter": 20} if data != "digits" else {}),
    }
    return {
        "gmm full": ("gmm", {**full, "steps": em_steps}),
        "gmm diag": ("gmm", {**diag, "steps": em_steps}),
        "vae": ("vae", {**net, "epochs": epochs}),
        "gan": ("gan", {**PLAIN_GAN, **net, "steps": epochs * steps_per_epoch}),
    }


def run(out: Path, quick: bool, settings: Settings) -> dict[str, Any]:
    sets = settings.keep(["digits"] if quick else ["digits", "fashion-mnist"])
    models = settings.keep(list(EXPLICIT_MODELS))
    results: dict[str, Any] = {"sets": {}}
    jobs: list[Job] = []
    for data in sets:
        ds = load_dataset(data, settings.data_dir)
        vae = VAE(VAEConfig(**EXPLICIT_NETS[data], likelihood="bernoulli"), ds.shape)
        budget = vae.sampler_parameters()
        configs = _configs(data, ds, budget, quick, settings)
        results["sets"][data] = {"budget": budget, "models": {}}
        for name in models:
            model, options = configs[name]
            folder = str(out / "runs" / f"{data}-{slug(name)}")
            jobs.append(Job(model, folder, {**options, "data": data, "seed": 0}, "images"))
        need_classifier(data, settings)
    scores = iter(run_jobs(jobs, settings, "explicit-vs-implicit"))
    for data in sets:
        test = load_dataset(data, settings.data_dir).split("test")
        panels = {"data (test)": test[:36]}
        for name in models:
            results["sets"][data]["models"][name] = next(scores)
            run = Run.load(out / "runs" / f"{data}-{slug(name)}", "cpu")
            panels[name] = run.sample(36, seed=0)
        plots.write(out / f"samples-{data}.png", plots.image_panels(panels, cols=5))
    return results


def summary(r: dict[str, Any]) -> str:
    out = []
    keys = list(FEATURE_KEYS)
    for data, v in r["sets"].items():
        rows = [
            [name, m["sampler_parameters"], *(m[k] for k in keys), m["train_seconds"]]
            for name, m in v["models"].items()
        ]
        first = next(iter(v["models"].values()))
        floors = ", ".join(f"{k} {first[k + '_floor']:.3f}" for k in keys)
        out.append(f"\n### {data} (budget {v['budget']:,} sampling parameters)\n\n")
        out.append(md_table(["model", "sampling parameters", *keys, "train s"], rows))
        out.append(f"\nFloors (test against train): {floors}\n")
    return "".join(out)


EXPERIMENT = Experiment("explicit-vs-implicit", run, [*EXPLICIT_NETS, *EXPLICIT_MODELS], summary)
