"""Claim: GANs drop modes, and the remedies bring them back (a mixture base, or the mode's label
given to a conditional GAN, among them); a normalizing flow, which cannot tear its Gaussian
apart, leaves mass between them. Every configuration of
``MODE_CONFIGS`` on ring8 and grid25 over several seeds; modes, high-quality fraction and
reverse KL (PacGAN's definitions, 2,500 samples) as mean and standard error, beside the
published rows.

May import, of this package: data, experiments/base, experiments/runner, models, models/gan, plots,
run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import plots
from ..data import load_dataset
from ..models import ExactDensity
from ..models.gan import PLAIN_GAN
from ..run import Run
from .base import Experiment, Settings, md_table, mean_se, pm, slug
from .runner import Job, run_jobs

# GAN losses and remedies compared; every entry shares MODE_BASE's networks and optimiser, and
# starts from the plain GAN (no R1, no EMA)
MODE_BASE: dict[str, Any] = {**PLAIN_GAN, "batch_size": 128}
MODE_STEPS = 10_000
MODE_CONFIGS: dict[str, dict[str, Any]] = {
    "gan (ns)": {},
    "gan (minimax)": {"loss": "minimax"},
    "pacgan2": {"pack": 2},
    "pacgan4": {"pack": 4},
    "hinge + spectral norm": {"loss": "hinge", "spectral_norm": True},
    "wgan-gp": {"loss": "wgan-gp", "d_steps": 5},
    "r1 + ema": {"r1": 1.0, "ema": 0.999},
    # a lighter penalty lets D sharpen around modes of std 0.01-0.05 (grid25 seed 0 at 40,000
    # steps: 94% high quality against 12% for gamma 1 at 10,000)
    "r1 0.1 + ema": {"r1": 0.1, "ema": 0.999},
    # a disconnected base: one fixed Gaussian per mode, so G need not pass through the gaps
    # between modes (with N(0, I) 1.5-3% of ring8 samples lie on those paths). It is told the
    # number of modes; a wrong count does worse (docs/experiments/mode-collapse.md)
    "r1 0.1 + ema + mixture base": {
        "r1": 0.1,
        "ema": 0.999,
        "noise": "mixture",
        "noise_components": {"ring8": 8, "grid25": 25},
    },
    # a base not told K: 100 components, over-complete for both sets, trained longer and
    # sampled at half of each component's spread ("temperature" scores the runs there, and as
    # trained; "steps" replaces MODE_STEPS). ring8 seed 0 at 40,000 steps: 92.6% high quality
    # as trained, 99.6% at temperature 0.5
    "r1 0.1 + ema + 100-component base": {
        "r1": 0.1,
        "ema": 0.999,
        "noise": "mixture",
        "noise_components": 100,
        "steps": {"ring8": 40_000, "grid25": 80_000},
        "temperature": 0.5,
    },
    # not a GAN: a normalizing flow, whose map is a homeomorphism of the plane, so it cannot
    # tear N(0, I) into disconnected modes and its exact density bridges them; a smaller step
    # than its default keeps the NLL from spiking on modes this narrow
    "flow": {"model": "flow", "lr": 3e-4},
    # the disconnected base supplied by the data instead: the label of each point is its mode,
    # and the conditional GAN learns one connected map per label; no network is told K (it
    # comes from the labels)
    "r1 0.1 + ema + labels (conditional)": {"r1": 0.1, "ema": 0.999, "conditional": True},
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
SETS = ["ring8", "grid25"]


def _for_set(config: dict[str, Any], data: str) -> dict[str, Any]:
    """A configuration's options on one data set: a value given per set (a dict) is picked."""
    return {k: v[data] if isinstance(v, dict) else v for k, v in config.items()}


def _training(config: dict[str, Any]) -> dict[str, Any]:
    """A configuration's training options: all but how it is scored and which model it is; a
    GAN's start from MODE_BASE."""
    own = {k: v for k, v in config.items() if k not in ("steps", "temperature", "model")}
    return {**MODE_BASE, **own} if config.get("model", "gan") == "gan" else own


def _mean_se(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("modes", "hq_fraction", "reverse_kl_modes", "hq_spread")
    return {k: mean_se([r[k] for r in per_seed]) for k in keys}


def _figure(out: Path, configs: dict[str, Any], sets: list[str], seed: int) -> None:
    """The first seed's samples of every configuration over each set's data, as scored; and
    where a model writes its density down, that density (densities.png): where it bridges the
    modes."""
    refs = {data: load_dataset(data).train[:20000] for data in sets}
    runs = {
        (data, name): Run.load(out / "runs" / f"{data}-{slug(name)}-{seed}", "cpu")
        for data in sets
        for name in configs
    }
    samples = {
        f"{data}/{name}": run.sample(
            2500, seed=seed, temperature=configs[name].get("temperature", 1.0)
        )
        for (data, name), run in runs.items()
    }
    plots.write(out / "samples.png", plots.scatter_table(refs, list(configs), samples))
    densities = {
        key: run.model.log_prob for key, run in runs.items() if isinstance(run.model, ExactDensity)
    }
    exact = [name for name in configs if (sets[0], name) in densities]
    if exact:
        rows = {d: (refs[d], [densities[(d, name)] for name in exact]) for d in sets}
        plots.write(out / "densities.png", plots.density_table(rows, exact))


def run(out: Path, quick: bool, settings: Settings) -> dict[str, Any]:
    seeds = [0] if quick else [0, 1, 2, 3, 4]
    named = [k for k in MODE_CONFIGS if k in settings.only]  # --quick may name any of them
    names = named or (["gan (ns)", "pacgan4"] if quick else list(MODE_CONFIGS))
    configs = {k: MODE_CONFIGS[k] for k in names}
    sets = settings.keep(SETS)
    steps = {  # each configuration's training length on each set
        data: {
            name: settings.length(150 if quick else _for_set(c, data).get("steps", MODE_STEPS))
            for name, c in configs.items()
        }
        for data in sets
    }
    results: dict[str, Any] = {
        "steps": steps,
        "seeds": seeds,
        "base": MODE_BASE,
        "published": PUBLISHED_MODES,
        "sets": {},
    }
    # the slowest (several D steps per G step) first, so the workers finish together
    order = sorted(configs, key=lambda name: -configs[name].get("d_steps", 1))
    jobs = [
        Job(
            configs[name].get("model", "gan"),
            str(out / "runs" / f"{data}-{slug(name)}-{seed}"),
            {
                **_training(_for_set(configs[name], data)),
                "data": data,
                "steps": steps[data][name],
                "seed": seed,
                "log_every": max(1, steps[data][name] // 20),
            },
            "modes",
            {"seed": seed, "temperature": configs[name].get("temperature", 1.0)},
        )
        for data in sets
        for name in order
        for seed in seeds
    ]
    scores = iter(run_jobs(jobs, settings, "mode-collapse"))
    for data in sets:
        rows: dict[str, Any] = {}
        for name in order:
            per_seed = [next(scores) for _ in seeds]
            rows[name] = {"per_seed": per_seed, **_mean_se(per_seed)}
            if "as_trained" in per_seed[0]:
                rows[name]["as_trained"] = _mean_se([r["as_trained"] for r in per_seed])
                rows[name]["temperature"] = configs[name]["temperature"]
        results["sets"][data] = {name: rows[name] for name in configs}
    _figure(out, configs, sets, seeds[0])
    return results


def _row(name: str, v: dict[str, Any], steps: int) -> list[str]:
    spread = pm(v["hq_spread"]) if "hq_spread" in v else "–"  # results from before it existed
    scores = [pm(v["modes"]), pm(v["hq_fraction"], 100, 1), pm(v["reverse_kl_modes"], 1, 3)]
    return [name, f"{steps:,}", *scores, spread]


def summary(r: dict[str, Any]) -> str:
    out = [
        f"{len(r['seeds'])} seeds; mean ± standard error. Spread within modes: the high-quality "
        "samples' distance from their modes over the data's (1: as varied as the data).\n"
    ]
    for data, rows in r["sets"].items():
        steps = r["steps"][data] if isinstance(r["steps"], dict) else {}
        table = []
        for name, v in rows.items():
            n = steps.get(name, r["steps"])
            if "as_trained" in v:  # scored as trained, then at its temperature
                table.append(_row(name, v["as_trained"], n))
                table.append(_row(f"{name}, temperature {v['temperature']:g}", v, n))
            else:
                table.append(_row(name, v, n))
        table += [
            [name, "400,000", f"{m}", f"{hq * 100:.1f}", f"{kl:.3f}", "–"]
            for name, (m, hq, kl) in r["published"][data].items()
        ]
        out.append(f"\n### {data}\n\n")
        header = ["configuration", "steps", "modes", "high quality %", "reverse KL", "spread"]
        out.append(md_table(header, table))
    return "".join(out)


EXPERIMENT = Experiment("mode-collapse", run, [*SETS, *MODE_CONFIGS], summary)
