"""Claim: a fixed N(0, I) prior forces the aggregate posterior to match it, costing likelihood
and leaving holes; learned priors and an ex-post latent GMM are the remedies. Equal budgets per
prior on Fashion-MNIST (digits with --quick): test NLL (IWAE), active units, aggregate-posterior
KL, prior-hole fraction and the sample Fréchet distance with z drawn from the prior and from the
ex-post GMM; and 2-d latents drawn over their prior.

May import, of this package: experiments/base, experiments/runner, models, plots, run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import plots
from ..models import Encoder
from ..run import Run
from .base import Experiment, Settings, md_table
from .runner import Job, need_classifier, run_jobs

FIXED_PRIOR_DATA = "fashion-mnist"
FIXED_PRIOR_EPOCHS = 20  # per prior: the equal training budget
FIXED_PRIORS: dict[str, dict[str, Any]] = {
    "normal": {"prior": "normal"},
    "mog": {"prior": "mog", "prior_components": 50},
    "vamp": {"prior": "vamp", "prior_components": 500},
}


def _plan(quick: bool, settings: Settings) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(the options every run shares, prior name -> its options) of this scale."""
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
    priors = {k: FIXED_PRIORS[k] for k in settings.keep([*FIXED_PRIORS, "2d"]) if k != "2d"}
    if quick:  # fewer components for 1,437 digits
        smaller = {"mog": 10, "vamp": 50}
        priors = {
            k: {**v, "prior_components": smaller[k]} if k in smaller else v
            for k, v in priors.items()
        }
    return base, priors


def run(out: Path, quick: bool, settings: Settings) -> dict[str, Any]:
    data = "digits" if quick else FIXED_PRIOR_DATA
    base, priors = _plan(quick, settings)
    score = {"n_real": 360, "k": 100, "n_fake": 2000} if quick else {"n_real": 2000, "k": 1000}
    common = {**base, "data": data, "seed": 0}
    jobs = [
        Job("vae", str(out / "runs" / name), {**common, **extra}, "vae", score)
        for name, extra in priors.items()
    ]
    # 2-d latents to look at: the aggregate posterior over the prior's density
    two_d = {"normal": FIXED_PRIORS["normal"], "mog": {"prior": "mog", "prior_components": 10}}
    two_d = two_d if "2d" in settings.keep([*FIXED_PRIORS, "2d"]) else {}
    jobs += [
        Job(
            "vae",
            str(out / "runs" / f"2d-{name}"),
            {**common, **extra, "latent_dim": 2},
            "vae",
            {**score, "features": False},
        )
        for name, extra in two_d.items()
    ]
    need_classifier(data, settings)
    scores = run_jobs(jobs, settings, "fixed-prior")
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
        plots.write(out / "samples.png", plots.image_panels(panels, cols=2))
    if two_d:
        plots.write(out / "latent-2d.png", _latent_2d(out, list(two_d)))
    return results


def _latent_2d(out: Path, names: list[str]) -> bytes:
    """Encoder means of test images (coloured by class) over the prior's density."""
    panels = {}
    for name in names:
        run = Run.load(out / "runs" / f"2d-{name}", "cpu")
        z, labels = run.latents(5000)
        assert isinstance(run.model, Encoder)
        title = f"{name} prior (grey, log density) and test codes (colour)"
        panels[title] = (z, labels, run.model.prior.log_prob)
    return plots.latents_over_priors(panels)


def summary(r: dict[str, Any]) -> str:
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
        out += md_table(head, rows) + f"\nFloors (test against train): {floors}\n"
    if two:
        head2 = ["prior", "test NLL", "-ELBO", "agg. posterior KL", "prior holes"]
        out += "\n2-d latents:\n\n" + md_table(head2, two)
    return out


EXPERIMENT = Experiment("fixed-prior", run, [*FIXED_PRIORS, "2d"], summary)
