"""Claim: as the dimension grows an explicit density stops being practical, and implicit models
take over. The same images at several sizes (Fashion-MNIST area-downsampled to 7x7, 14x14 and
28x28, and 8x8 digits): the GMM, full and diagonal, with K chosen on held-out data, against the
conv VAE and GAN recipes, under two fair budgets: equal sampling parameters, and equal
wall-clock time. Fréchet distance, precision and recall in each size's classifier features,
against the dimension, and the samples. Beside them the explicit model with a network, a
normalizing flow (its recipe, the same time): the two explicit densities' held-out NLL on one
scale, bits per dimension of the pixels spread over their cells.

May import, of this package: data, experiments/base, experiments/runner, models,
models/gmm_search, plots, recipes, run.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .. import plots
from ..data import load_dataset
from ..models import GAN, GANConfig
from ..models.gmm_search import parameters_per_component
from ..recipes import recipe
from ..run import Run
from .base import Experiment, Settings, md_table, slug
from .runner import FEATURE_KEYS, Job, need_classifier, run_jobs

# data -> (the recipe its VAE and GAN train with, minutes per model in the full run)
SIZES: dict[str, tuple[str, float]] = {
    "fashion-mnist@7": ("grey-28", 5.0),
    "digits": ("digits-8", 3.0),
    "fashion-mnist@14": ("grey-28", 10.0),
    "fashion-mnist": ("grey-28", 30.0),
}
QUICK_SIZES = ("digits@4", "digits")  # 16 and 64 dimensions, in seconds
QUICK_STEPS = 300
MODELS = (
    "gmm full", "gmm diag", "gmm full, same time", "gmm diag, same time", "vae", "gan", "flow"
)  # fmt: skip
NETWORKS = ("vae", "gan", "flow")
GMM_OPTIONS = {"reg_covar": 1e-2, "kmeans_iter": 20}


def _recipe_options(model: str, data: str) -> dict[str, Any]:
    """The model's recipe for ``data``'s family (its networks adapt to the size); its batch
    size, but not its length: every model here gets the same budget."""
    name = SIZES.get(data, ("digits-8", 0.0))[0]
    options = recipe(model, name).options
    return {k: v for k, v in options.items() if k not in ("steps", "epochs", "minutes")}


def budget(data: str, shape: tuple[int, ...]) -> int:
    """Sampling parameters of the GAN recipe's generator at this size: the equal-size budget."""
    options = _recipe_options("gan", data)
    fields = {k: v for k, v in options.items() if k in GANConfig.__dataclass_fields__}
    return GAN(GANConfig(**fields), shape).sampler_parameters()


def _configs(
    data: str, d: int, p: int, quick: bool, settings: Settings
) -> dict[str, tuple[str, dict[str, Any]]]:
    """name -> (model, options) of every model compared on ``data`` (``d`` dimensions, a
    budget of ``p`` sampling parameters); ``--scale`` multiplies every time budget."""
    minutes = SIZES.get(data, ("", 0.1))[1] * settings.scale
    steps = settings.length(QUICK_STEPS)
    length: dict[str, Any] = {"steps": steps} if quick else {"minutes": minutes}
    gmm_time = {"search_minutes": minutes / 2, "minutes": minutes / 2}
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for cov in ("full", "diag"):
        most = max(1, (p + 1) // parameters_per_component(d, cov))  # K within the budget
        out[f"gmm {cov}"] = ("gmm", {**GMM_OPTIONS, "covariance": cov, "max_components": most})
        out[f"gmm {cov}, same time"] = ("gmm", {**GMM_OPTIONS, "covariance": cov, **gmm_time})
    for model in NETWORKS:
        out[model] = (model, {**_recipe_options(model, data), **length})
    return out


def run(out: Path, quick: bool, settings: Settings) -> dict[str, Any]:
    sets = settings.keep(list(QUICK_SIZES if quick else SIZES))
    models = settings.keep(list(MODELS))
    results: dict[str, Any] = {"sets": {}}
    jobs: list[Job] = []
    for data in sets:
        ds = load_dataset(data, settings.data_dir)
        d, p = math.prod(ds.shape), budget(data, ds.shape)
        configs = _configs(data, d, p, quick, settings)
        results["sets"][data] = {"dimension": d, "budget": p, "models": {}}
        for name in models:
            model, options = configs[name]
            folder = str(out / "runs" / f"{slug(data)}-{slug(name)}")
            nll = {"nll": True} if model in ("gmm", "flow") else {}
            jobs.append(Job(model, folder, {**options, "data": data, "seed": 0}, "images", nll))
        need_classifier(data, settings)
    scores = iter(run_jobs(jobs, settings, "explicit-vs-implicit"))
    for data in sets:
        test = load_dataset(data, settings.data_dir).split("test")
        panels = {"data (test)": test[:36]}
        for name in models:
            row = next(scores)
            run = Run.load(out / "runs" / f"{slug(data)}-{slug(name)}", "cpu")
            if run.model_name == "gmm":
                row["components"] = run.model.config.components
            results["sets"][data]["models"][name] = row
            panels[name] = run.sample(36, seed=0)
        plots.write(out / f"samples-{slug(data)}.png", plots.image_panels(panels, cols=4))
    dims = [results["sets"][s]["dimension"] for s in sets]
    series = {
        key: {m: [results["sets"][s]["models"][m][key] for s in sets] for m in models}
        for key in ("fd", "precision", "recall")
    }
    plots.write(out / "against-dimension.png", plots.against_dimension(dims, series))
    return results


def summary(r: dict[str, Any]) -> str:
    out = []
    keys = list(FEATURE_KEYS)
    for data, v in sorted(r["sets"].items(), key=lambda item: item[1]["dimension"]):
        rows = [
            [
                name + (f", K = {m['components']}" if "components" in m else ""),
                m["sampler_parameters"],
                m.get("bits_per_dim"),
                *(m[k] for k in keys),
                m["train_seconds"],
            ]
            for name, m in v["models"].items()
        ]
        first = next(iter(v["models"].values()))
        floors = ", ".join(f"{k} {first[k + '_floor']:.3f}" for k in keys)
        out.append(
            f"\n### {data}: {v['dimension']} dimensions "
            f"(budget {v['budget']:,} sampling parameters)\n\n"
        )
        out.append(md_table(["model", "sampling parameters", "bits/dim", *keys, "train s"], rows))
        out.append(f"\nFloors (test against train): {floors}\n")
    out.append(
        "\nbits/dim: the explicit densities' held-out NLL on the discrete pixels' scale, each "
        "pixel spread uniformly over its cell (an upper bound on the discrete NLL; the flow's "
        "cells are its dequantization's, the GMM's are centred on the pixel values).\n"
    )
    return "".join(out)


EXPERIMENT = Experiment("explicit-vs-implicit", run, [*SIZES, *QUICK_SIZES, *MODELS], summary)
