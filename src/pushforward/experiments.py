"""The paper's claims as one-command experiments: ``pushforward experiment NAME [--quick]``.

Each writes its figures and a JSON of its numbers into a folder; docs/experiments/ shows the
full results with the command that made them. ``--quick`` shrinks the budgets for tests.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch
from tqdm.auto import tqdm

from . import plots
from .checkpoint import atomic_write_bytes, atomic_write_json, read_json
from .data import TOY_SETS, load_dataset
from .errors import PushforwardError
from .models.gmm import GMM, GMMConfig


@dataclass(frozen=True)
class Settings:
    """How an experiment runs: worker processes, device, data folder; and how much of it:
    ``scale`` multiplies every run's training length (steps or epochs), and ``only`` keeps the
    named parts (configurations, priors, data sets), so one row can be run for longer."""

    jobs: int = 1
    device: str = "auto"
    data_dir: str | None = None
    scale: float = 1.0
    only: tuple[str, ...] = ()

    def length(self, n: int) -> int:
        """A training length (steps or epochs) times ``scale``, at least 1."""
        return max(1, math.ceil(n * self.scale))

    def keep(self, names: list[str]) -> list[str]:
        """The names ``only`` keeps; all of them when it names none of this group."""
        kept = [n for n in names if n in self.only]
        return kept or list(names)


@dataclass(frozen=True)
class Job:
    """One training run of an experiment and how it is scored (a name in SCORERS)."""

    model: str
    folder: str
    options: dict[str, Any]
    score: str
    score_args: dict[str, Any] = field(default_factory=dict)


def _job_key(job: Job) -> Any:
    # the device is how, not what: a run trained on the GPU is reused on the CPU
    options = {k: v for k, v in job.options.items() if k != "device"}
    return json.loads(json.dumps([job.model, options, job.score, job.score_args]))


def _read_marker(path: Path) -> dict[str, Any]:
    try:
        out = read_json(path) if path.exists() else {}
    except PushforwardError:
        out = {}
    return out if isinstance(out, dict) else {}


def _do_job(job: Job) -> dict[str, Any]:
    """Train and score one run, reusing what an earlier attempt finished: the scores of the
    identical job, or its trained model when only the scoring was interrupted. So an
    experiment run again redoes only what did not finish."""
    from .runs import EXPERIMENT_DONE, EXPERIMENT_TRAINED, Run

    folder = Path(job.folder)
    key = _job_key(job)
    done = _read_marker(folder / EXPERIMENT_DONE)
    if done.get("job") == key:
        return done["scores"]  # type: ignore[no-any-return]
    trained = _read_marker(folder / EXPERIMENT_TRAINED)
    if trained.get("job") == key:
        run = Run.load(folder, job.options.get("device", "auto"))
        seconds = trained["train_seconds"]
    else:
        from .train import train

        start = time.perf_counter()
        run = train(job.model, out=job.folder, overwrite=True, progress=False, **job.options)
        seconds = round(time.perf_counter() - start, 1)
        atomic_write_json(folder / EXPERIMENT_TRAINED, {"job": key, "train_seconds": seconds})
    scores = {**SCORERS[job.score](run, **job.score_args), "train_seconds": seconds}
    atomic_write_json(folder / EXPERIMENT_DONE, {"job": key, "scores": scores})
    return scores


def _set_threads(n: int) -> None:
    torch.set_num_threads(n)


def _run_jobs(jobs: list[Job], settings: Settings, desc: str) -> list[dict[str, Any]]:
    """Scores of every job, in order; ``settings.jobs`` processes share the cores evenly (one
    thread each on two cores: oversubscribed threads slow everything many-fold)."""
    how = {"device": settings.device, "data_dir": settings.data_dir}
    jobs = [replace(j, options={**j.options, **how}) for j in jobs]
    if settings.jobs <= 1 or len(jobs) == 1:
        return [_do_job(j) for j in tqdm(jobs, desc=desc, unit="run")]
    threads = max(1, (os.cpu_count() or 1) // settings.jobs)
    with ProcessPoolExecutor(
        min(settings.jobs, len(jobs)),
        mp_context=get_context("spawn"),
        initializer=_set_threads,
        initargs=(threads,),
    ) as pool:
        futures = [pool.submit(_do_job, j) for j in jobs]
        try:
            for f in tqdm(as_completed(futures), total=len(futures), desc=desc, unit="run"):
                f.result()  # the first failure stops the experiment, not the last
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # finished runs stay reusable
            raise
        return [f.result() for f in futures]


def gmm_universality(
    out: Path, quick: bool = False, settings: Settings = Settings()
) -> dict[str, Any]:
    """Claim: a mixture of Gaussians approximates almost any density. GMMs with K = 1, 2, 4, ...,
    64 on every 2-D set: held-out NLL against K, the KL from the true density where it is known
    (KL(p || q) = E_p[log p - log q], estimated on the test points), and the fitted densities."""
    ks = [1, 2, 4, 8] if quick else [1, 2, 4, 8, 16, 32, 64]
    names = settings.keep(["ring8", "moons", "checkerboard"] if quick else list(TOY_SETS))
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
# Adam settings under which these MLP GANs learn (docs/benchmarks.md: 0.5/0.999 lost every ring8 mode)
_GAN_STABLE: dict[str, Any] = {"lr": 5e-4, "beta1": 0.0, "beta2": 0.9}
MODE_BASE: dict[str, Any] = {"hidden": 256, "depth": 2, **_GAN_STABLE, "batch_size": 128}
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


def _for_set(config: dict[str, Any], data: str) -> dict[str, Any]:
    """A configuration's options on one data set: a value given per set (a dict) is picked."""
    return {k: v[data] if isinstance(v, dict) else v for k, v in config.items()}


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-")


def mode_collapse(
    out: Path, quick: bool = False, settings: Settings = Settings()
) -> dict[str, Any]:
    """Claim: GANs drop modes, and the remedies bring them back. Every configuration of
    MODE_CONFIGS on ring8 and grid25 over several seeds; modes, high-quality fraction and reverse
    KL (PacGAN's definitions, 2,500 samples) as mean and standard error, beside the published
    rows."""
    from .runs import Run

    seeds = [0] if quick else [0, 1, 2, 3, 4]
    steps = settings.length(150 if quick else MODE_STEPS)
    configs = {k: MODE_CONFIGS[k] for k in ("gan (ns)", "pacgan4")} if quick else MODE_CONFIGS
    configs = {k: configs[k] for k in settings.keep(list(configs))}
    results: dict[str, Any] = {
        "steps": steps,
        "seeds": seeds,
        "base": MODE_BASE,
        "published": PUBLISHED_MODES,
        "sets": {},
    }
    sets = settings.keep(["ring8", "grid25"])
    # the slowest (several D steps per G step) first, so the workers finish together
    order = sorted(configs, key=lambda name: -configs[name].get("d_steps", 1))
    jobs = [
        Job(
            "gan",
            str(out / "runs" / f"{data}-{_slug(name)}-{seed}"),
            {
                **MODE_BASE,
                **_for_set(configs[name], data),
                "data": data,
                "steps": steps,
                "seed": seed,
                "log_every": max(1, steps // 20),
            },
            "modes",
            {"seed": seed},
        )
        for data in sets
        for name in order
        for seed in seeds
    ]
    scores = iter(_run_jobs(jobs, settings, "mode-collapse"))
    for data in sets:
        rows: dict[str, Any] = {}
        for name in order:
            per_seed = [next(scores) for _ in seeds]
            summary = {
                k: _mean_se([r[k] for r in per_seed])
                for k in ("modes", "hq_fraction", "reverse_kl_modes")
            }
            rows[name] = {"per_seed": per_seed, **summary}
        results["sets"][data] = {name: rows[name] for name in configs}
    names = list(configs)
    fig, axes = plt.subplots(
        len(sets), len(names), figsize=(2.6 * len(names), 2.7 * len(sets)), squeeze=False
    )
    for i, data in enumerate(sets):
        ref = load_dataset(data).train[:20000]
        x0, x1, y0, y1 = plots.data_limits(ref)
        for j, name in enumerate(names):
            ax = axes[i, j]
            ax.scatter(ref[:3000, 0], ref[:3000, 1], s=1, c="0.7", linewidths=0)
            run = Run.load(out / "runs" / f"{data}-{_slug(name)}-{seeds[0]}", "cpu")
            x = run.sample(2500, seed=seeds[0])
            ax.scatter(x[:, 0], x[:, 1], s=1, c="tab:red", alpha=0.5, linewidths=0)
            ax.set_xlim(x0, x1)
            ax.set_ylim(y0, y1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=8)
    plots.write(out / "samples.png", plots.fig_bytes(fig))
    return results


# ------------------------------------------------------------------ scorers (run -> numbers)


def _score_modes(run: Any, seed: int = 0) -> dict[str, Any]:
    from .data import TOY_MODES, TOY_STD
    from .metrics.modes import mode_coverage

    data = run.train_config.data
    x = run.sample(2500, seed=seed)
    return mode_coverage(x, torch.as_tensor(TOY_MODES[data]), TOY_STD[data])


def sampler_parameters(model: Any) -> int:
    """Parameters that define the distribution samples come from: all of a GMM's, the VAE's
    decoder and prior, the GAN's generator (encoder and discriminator only help train)."""
    if hasattr(model, "n_parameters"):
        return int(model.n_parameters())
    parts = [model.decoder, model.prior] if hasattr(model, "decoder") else [model.generator]
    return sum(p.numel() for part in parts for p in part.parameters())


def _score_images(run: Any, n_fake: int = 10_000) -> dict[str, Any]:
    """Sample quality against the test images (feature metrics), and the model's size."""
    scores = run.evaluate(["features"], n_fake=n_fake, write=False)
    return {
        **{k: v for k, v in scores.items() if k not in ("split", "data", "seed")},
        "sampler_parameters": sampler_parameters(run.model),
        "parameters": sum(p.numel() for p in run.model.parameters())
        if not hasattr(run.model, "n_parameters")
        else int(run.model.n_parameters()),
    }


def _score_vae(
    run: Any, n_real: int = 2000, k: int = 1000, n_fake: int = 10_000, features: bool = True
) -> dict[str, Any]:
    """Test NLL (IWAE-k on the first n_real test images), the ELBO, the latent diagnostics, and
    the sample metrics with z from the prior and from the ex-post GMM."""
    metrics = ["nll", "elbo", "latent"]
    scores = run.evaluate(metrics, n_real=n_real, k=k, n_fake=n_fake, write=False)
    if features:
        for sampler in ("prior", "gmm"):
            f = run.evaluate(["features"], n_fake=n_fake, sampler=sampler, write=False)
            scores.update({f"{key}_{sampler}": v for key, v in f.items() if key in _FEATURE_KEYS})
            scores.update({key: v for key, v in f.items() if key.endswith("_floor")})
    return scores


_FEATURE_KEYS = ("fd", "precision", "recall", "density", "coverage", "class_kl")

SCORERS: dict[str, Callable[..., dict[str, Any]]] = {
    "modes": _score_modes,
    "images": _score_images,
    "vae": _score_vae,
}


def _image_panels(out: Path, panels: dict[str, torch.Tensor], name: str, cols: int = 4) -> None:
    """One picture of several models' samples, 36 each, titled by model."""
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, x) in zip(axes.flat, panels.items(), strict=False):
        ax.imshow(plots.image_grid(x[:36], nrow=6), cmap="gray", vmin=0, vmax=255)
        ax.set_title(title, fontsize=8)
    plots.write(out / name, plots.fig_bytes(fig))


def _need_classifier(data: str, settings: Settings) -> None:
    """Train (or load) the feature classifier once, before workers that would each train it."""
    from .metrics.features import classifier_for

    classifier_for(load_dataset(data, settings.data_dir))


# ------------------------------------------------------------------ explicit vs implicit

# matched to the VAE's decoder: the MLP sizes per data set; GMM components follow from them
EXPLICIT_NETS: dict[str, dict[str, Any]] = {
    # 128 wide, the MLP GAN never learned digits (FD 660-1,500 over four optimizer settings)
    "digits": {"latent_dim": 16, "hidden": 256, "depth": 2},
    "fashion-mnist": {"latent_dim": 40, "hidden": 512, "depth": 2},
}
EXPLICIT_MODELS = ("gmm full", "gmm diag", "vae", "gan")


def _gmm_components(per_component: int, budget: int) -> int:
    return max(1, round(budget / per_component))


def explicit_vs_implicit(
    out: Path, quick: bool = False, settings: Settings = Settings()
) -> dict[str, Any]:
    """Claim: in high dimension an explicit density stops paying, and implicit models take over.
    A pixel-space GMM (full and diagonal covariances) against the VAE and the GAN, each with as
    many sampling parameters as the VAE's decoder, on digits and Fashion-MNIST: Fréchet
    distance, precision/recall/density/coverage and class balance, and the samples."""
    from .models.vae import VAE, VAEConfig
    from .runs import Run

    sets = settings.keep(["digits"] if quick else ["digits", "fashion-mnist"])
    models = settings.keep(list(EXPLICIT_MODELS))
    results: dict[str, Any] = {"sets": {}}
    jobs: list[Job] = []
    for data in sets:
        ds = load_dataset(data, settings.data_dir)
        net = EXPLICIT_NETS[data]
        budget = sampler_parameters(VAE(VAEConfig(**net, likelihood="bernoulli"), ds.shape))
        d = math.prod(ds.shape)
        epochs = settings.length((100 if quick else 300) if data == "digits" else 10)
        steps_per_epoch = math.ceil(len(ds.train) / 128)
        # EM iterations: on 60,000 784-d images one full-covariance iteration is ~150 GFLOP
        em_steps = settings.length(100 if data == "digits" and not quick else 20)
        runs: dict[str, tuple[str, dict[str, Any]]] = {
            "gmm full": (
                "gmm",
                {
                    "components": _gmm_components(d + d * (d + 1) // 2 + 1, budget),
                    "reg_covar": 1e-2,
                    "steps": em_steps,
                },
            ),
            "gmm diag": (
                "gmm",
                {
                    "components": _gmm_components(2 * d + 1, budget),
                    "covariance": "diag",
                    "reg_covar": 1e-2,
                    "steps": em_steps,
                    # hundreds of k-means centres on 60,000 images: Lloyd's 300 iterations
                    # took longer than everything else here
                    **({"kmeans_iter": 20} if data != "digits" else {}),
                },
            ),
            "vae": ("vae", {**net, "epochs": epochs}),
            "gan": ("gan", {**net, **_GAN_STABLE, "steps": epochs * steps_per_epoch}),
        }
        results["sets"][data] = {"budget": budget, "models": {}}
        for name in models:
            model, options = runs[name]
            folder = str(out / "runs" / f"{data}-{_slug(name)}")
            jobs.append(Job(model, folder, {**options, "data": data, "seed": 0}, "images"))
        _need_classifier(data, settings)
    scores = iter(_run_jobs(jobs, settings, "explicit-vs-implicit"))
    for data in sets:
        panels = {}
        ds = load_dataset(data, settings.data_dir)
        assert ds.test is not None
        panels["data (test)"] = ds.test[:36]
        for name in models:
            results["sets"][data]["models"][name] = next(scores)
            run = Run.load(out / "runs" / f"{data}-{_slug(name)}", "cpu")
            panels[name] = run.sample(36, seed=0)
        _image_panels(out, panels, f"samples-{data}.png", cols=5)
    return results


# ------------------------------------------------------------------ the fixed prior

FIXED_PRIOR_DATA = "fashion-mnist"
FIXED_PRIOR_EPOCHS = 20  # per prior: the equal training budget
FIXED_PRIORS: dict[str, dict[str, Any]] = {
    "normal": {"prior": "normal"},
    "mog": {"prior": "mog", "prior_components": 50},
    "vamp": {"prior": "vamp", "prior_components": 500},
}


def fixed_prior(out: Path, quick: bool = False, settings: Settings = Settings()) -> dict[str, Any]:
    """Claim: a fixed N(0, I) prior forces the aggregate posterior to match it, costing
    likelihood and leaving holes; learned priors and an ex-post latent GMM are the remedies.
    Equal budgets per prior on Fashion-MNIST (digits with --quick): test NLL (IWAE), active
    units, aggregate-posterior KL, prior-hole fraction and the sample Fréchet distance with z
    drawn from the prior and from the ex-post GMM; and 2-d latents drawn over their prior."""
    from .runs import Run

    data = "digits" if quick else FIXED_PRIOR_DATA
    base = (
        {"latent_dim": 16, "hidden": 128, "depth": 2, "epochs": settings.length(150)}
        if quick
        else {
            "latent_dim": 40,
            "hidden": 512,
            "depth": 2,
            "epochs": settings.length(FIXED_PRIOR_EPOCHS),
        }
    )
    parts = settings.keep([*FIXED_PRIORS, "2d"])
    priors = {k: FIXED_PRIORS[k] for k in parts if k != "2d"}
    if quick:
        priors["mog"] = {**priors["mog"], "prior_components": 10}
        priors["vamp"] = {**priors["vamp"], "prior_components": 50}
    score = {"n_real": 360, "k": 100, "n_fake": 2000} if quick else {"n_real": 2000, "k": 1000}
    jobs = [
        Job(
            "vae",
            str(out / "runs" / name),
            {**base, **extra, "data": data, "seed": 0},
            "vae",
            score,
        )
        for name, extra in priors.items()
    ]
    # 2-d latents to look at: the aggregate posterior over the prior's density
    two_d = {"normal": FIXED_PRIORS["normal"], "mog": {"prior": "mog", "prior_components": 10}}
    two_d = two_d if "2d" in parts else {}
    jobs += [
        Job(
            "vae",
            str(out / "runs" / f"2d-{name}"),
            {**base, **extra, "latent_dim": 2, "data": data, "seed": 0},
            "vae",
            {**score, "features": False},
        )
        for name, extra in two_d.items()
    ]
    _need_classifier(data, settings)
    scores = _run_jobs(jobs, settings, "fixed-prior")
    results: dict[str, Any] = {
        "data": data,
        "base": base,
        "priors": priors,
        "score": score,
        "runs": dict(zip(priors, scores, strict=False)),
        "latent_2d": dict(zip(two_d, scores[len(priors) :], strict=True)),
    }
    panels = {}
    for name in priors:
        run = Run.load(out / "runs" / name, "cpu")
        panels[f"{name} prior"] = run.sample(36, seed=0)
        panels[f"{name}, ex-post GMM"] = run.sample(36, seed=0, sampler="gmm")
    if panels:
        _image_panels(out, panels, "samples.png", cols=2)
    if two_d:
        _latent_2d_figure(out, list(two_d))
    return results


def _latent_2d_figure(out: Path, names: list[str]) -> None:
    """Encoder means of test images (coloured by class) over the prior's density: where the
    prior has mass and no codes are, its samples decode to something between the classes."""
    from .runs import Run

    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4.6), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        run = Run.load(out / "runs" / f"2d-{name}", "cpu")
        z, labels = run.latents(5000)
        lim = float(z.abs().quantile(0.995)) * 1.15
        lim = max(lim, 3.0)
        g = torch.linspace(-lim, lim, 200)
        zz = torch.stack(torch.meshgrid(g, g, indexing="xy"), -1).reshape(-1, 2)
        with torch.no_grad():
            prior: Any = run.model.prior
            logp = prior.log_prob(zz).reshape(200, 200)
        # log-density bands down to e^-8 of the peak: a peaked learned prior stays visible
        top = float(logp.max())
        ax.contourf(
            g, g, logp.clamp_min(top - 8), levels=torch.linspace(top - 8, top, 9), cmap="Greys"
        )
        c = None if labels is None else labels.numpy()
        ax.scatter(z[:, 0], z[:, 1], c=c, cmap="tab10", s=2, alpha=0.6, linewidths=0)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_title(f"{name} prior (grey, log density) and test codes (colour)", fontsize=9)
    plots.write(out / "latent-2d.png", plots.fig_bytes(fig))


# ------------------------------------------------------------------ summary.md: the numbers as tables


def _fmt(v: Any, digits: int = 3) -> str:
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return "–" if v is None else str(v)


def _md_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _pm(mean_se: list[float] | tuple[float, float], scale: float = 1.0, digits: int = 2) -> str:
    mean, se = mean_se
    return f"{mean * scale:.{digits}f} ± {se * scale:.{digits}f}"


def _mode_collapse_md(r: dict[str, Any]) -> str:
    out = [f"{len(r['seeds'])} seeds, {r['steps']:,} steps each; mean ± standard error.\n"]
    for data, rows in r["sets"].items():
        table = [
            [name, _pm(v["modes"]), _pm(v["hq_fraction"], 100, 1), _pm(v["reverse_kl_modes"], 1, 3)]
            for name, v in rows.items()
        ]
        table += [
            [name, f"{m}", f"{hq * 100:.1f}", f"{kl:.3f}"]
            for name, (m, hq, kl) in r["published"][data].items()
        ]
        out.append(f"\n### {data}\n\n")
        out.append(_md_table(["configuration", "modes", "high quality %", "reverse KL"], table))
    return "".join(out)


def _fixed_prior_md(r: dict[str, Any]) -> str:
    sc = r["score"]
    head = [
        "prior",
        f"test NLL (IWAE-{sc['k']})",
        "-ELBO",
        "active units",
        "agg. posterior KL",
        "prior holes",
        "FD (prior)",
        "FD (ex-post GMM)",
        "precision / recall (prior)",
        "precision / recall (ex-post)",
        "train s",
    ]
    rows = [
        [
            name,
            v["nll_nats"],
            -v["elbo"],
            v["active_units"],
            v["agg_posterior_kl"],
            v["prior_holes"],
            v["fd_prior"],
            v["fd_gmm"],
            f"{v['precision_prior']:.3f} / {v['recall_prior']:.3f}",
            f"{v['precision_gmm']:.3f} / {v['recall_gmm']:.3f}",
            v["train_seconds"],
        ]
        for name, v in r["runs"].items()
    ]
    two = [
        [name, v["nll_nats"], -v["elbo"], v["agg_posterior_kl"], v["prior_holes"]]
        for name, v in r["latent_2d"].items()
    ]
    out = f"{r['data']}, {r['base']}; NLL on the first {sc['n_real']} test images.\n\n"
    if rows:
        first = next(iter(r["runs"].values()))
        floors = ", ".join(f"{k} {first[k]:.3f}" for k in sorted(first) if k.endswith("_floor"))
        out += _md_table(head, rows) + f"\nFloors (test against train): {floors}\n"
    if two:
        head2 = ["prior", "test NLL", "-ELBO", "agg. posterior KL", "prior holes"]
        out += "\n2-d latents:\n\n" + _md_table(head2, two)
    return out


def _explicit_md(r: dict[str, Any]) -> str:
    out = []
    keys = ["fd", "precision", "recall", "density", "coverage", "class_kl"]
    for data, v in r["sets"].items():
        rows = [
            [name, m["sampler_parameters"], *(m[k] for k in keys), m["train_seconds"]]
            for name, m in v["models"].items()
        ]
        first = next(iter(v["models"].values()))
        floors = ", ".join(f"{k} {first[k + '_floor']:.3f}" for k in keys)
        out.append(f"\n### {data} (budget {v['budget']:,} sampling parameters)\n\n")
        out.append(_md_table(["model", "sampling parameters", *keys, "train s"], rows))
        out.append(f"\nFloors (test against train): {floors}\n")
    return "".join(out)


SUMMARIES: dict[str, Callable[[dict[str, Any]], str]] = {
    "explicit-vs-implicit": _explicit_md,
    "fixed-prior": _fixed_prior_md,
    "mode-collapse": _mode_collapse_md,
}

EXPERIMENTS: dict[str, Callable[[Path, bool, Settings], dict[str, Any]]] = {
    "gmm-universality": gmm_universality,
    "explicit-vs-implicit": explicit_vs_implicit,
    "fixed-prior": fixed_prior,
    "mode-collapse": mode_collapse,
}
# the names --only may pick in each experiment (a part of each group; none picked keeps all)
PARTS: dict[str, list[str]] = {
    "gmm-universality": list(TOY_SETS),
    "explicit-vs-implicit": [*EXPLICIT_NETS, *EXPLICIT_MODELS],
    "fixed-prior": [*FIXED_PRIORS, "2d"],
    "mode-collapse": ["ring8", "grid25", *MODE_CONFIGS],
}


def run_experiment(
    name: str, out: Path, quick: bool = False, settings: Settings = Settings()
) -> Path:
    """Run one experiment into ``out``; writes out/results.json beside its figures. Run again
    after an interruption, it reuses every run that finished."""
    if settings.jobs < 1:
        raise PushforwardError(f"--jobs {settings.jobs}: must be at least 1")
    if not settings.scale > 0 or not math.isfinite(settings.scale):
        raise PushforwardError(f"--scale {settings.scale}: must be a positive number, e.g. 4")
    if name == "gmm-universality" and settings.scale != 1:
        raise PushforwardError("--scale: gmm-universality runs EM to convergence; drop --scale")
    unknown = [n for n in settings.only if n not in PARTS[name]]
    if unknown:
        raise PushforwardError(
            f"--only {unknown[0]!r}: {name} has no such part; choose from "
            + ", ".join(repr(p) for p in PARTS[name])
        )
    start = time.perf_counter()
    results = EXPERIMENTS[name](out, quick, settings)
    results.update(experiment=name, quick=quick, seconds=round(time.perf_counter() - start, 1))
    atomic_write_json(out / "results.json", results)
    if name in SUMMARIES:
        atomic_write_bytes(out / "summary.md", SUMMARIES[name](results).encode())
    return out / "results.json"


__all__ = ["EXPERIMENTS", "Settings", "run_experiment", "sampler_parameters"]
