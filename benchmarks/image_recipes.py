"""The candidates behind the image recipes: train each on a data set for one or more seeds and
score 10,000 samples against the test images in the data set's classifier features (Fréchet
distance, precision, recall, density, coverage), with the training time (and a flow's
held-out bits per dimension). docs/benchmarks.md
("Image recipes") holds the results; the shipped recipe is the candidate that measured best.
Run by hand, one candidate at a time (each takes up to an hour on 2 CPU cores):

    python benchmarks/image_recipes.py gan-r1-blocks2 --data digits --set steps=5000
    python benchmarks/image_recipes.py --recipe gan grey-28 --data fashion-mnist --seeds 0 1 2
    python benchmarks/image_recipes.py --recipe gan grey-28 --data fashion-mnist --conditional

``--conditional`` trains the class-conditional model and adds its scores: the classifier's
accuracy on each asked class's samples and the Fréchet distance within each class, with their
floors.

Each line of output is one seed's scores as JSON, then the mean and spread over the seeds.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

import pushforward
from pushforward.run import Run

# name -> (model, options): the rows of docs/benchmarks.md's candidates tables, without their
# training length (give it with --set steps=N, epochs=N or minutes=M)
DCGAN = {"arch": "conv", "hidden": 64, "batch_size": 64}
RADFORD = {"lr": 2e-4, "beta1": 0.5, "beta2": 0.999, "r1": 0.0, "ema": 0.999}  # DCGAN's Adam
DEFAULTS_OPT = {"lr": 5e-4, "beta1": 0.0, "beta2": 0.9, "r1": 1.0, "ema": 0.99}  # the MLP's
CANDIDATES: dict[str, tuple[str, dict[str, Any]]] = {
    "gan-defaults": ("gan", {}),  # the model's own defaults, for reference
    "vae-defaults": ("vae", {}),
    "flow-defaults": ("flow", {}),
    "gan-dcgan": ("gan", {**DCGAN, **RADFORD}),
    "gan-dcgan-r1": ("gan", {**DCGAN, **DEFAULTS_OPT}),
    # hinge loss, spectral norm on D, two time-scale rates (Miyato et al. 2018; Heusel et al. 2017)
    "gan-hinge-sn-ttur": (
        "gan",
        {
            **DCGAN,
            "loss": "hinge",
            "spectral_norm": True,
            "lr": 1e-4,
            "lr_d": 4e-4,
            "beta1": 0.0,
            "beta2": 0.9,
            "r1": 0.0,
            "ema": 0.999,
        },
    ),
    "gan-r1-blocks1": ("gan", {**DCGAN, **DEFAULTS_OPT, "blocks": 1}),
    "gan-r1-blocks2": ("gan", {**DCGAN, **DEFAULTS_OPT, "blocks": 2}),
    "gan-r1-blocks2-h32": ("gan", {**DCGAN, **DEFAULTS_OPT, "blocks": 2, "hidden": 32}),
    "gan-dcgan-blocks1": ("gan", {**DCGAN, **RADFORD, "blocks": 1}),
    "vae-conv-mog": ("vae", {"arch": "conv", "hidden": 64, "latent_dim": 32, "prior": "mog"}),
    "vae-conv-blocks2-mog": (
        "vae",
        {"arch": "conv", "hidden": 64, "blocks": 2, "latent_dim": 16, "prior": "mog"},
    ),
}
KEYS = ("fd", "precision", "recall", "density", "coverage")
CONDITIONAL_KEYS = ("cond_accuracy", "cond_accuracy_floor", "intra_fd", "intra_fd_floor")


def score(run: Run, sampler: str) -> dict[str, float]:
    conditional = bool(run.model.classes)
    metrics = ["features", "conditional"] if conditional else ["features"]
    s = run.evaluate(metrics, n_fake=10_000, sampler=sampler, write=False)
    keys = KEYS + (CONDITIONAL_KEYS if conditional and sampler == "prior" else ())
    return {k: round(float(s[k]), 4) for k in keys}


def one(model: str, options: dict[str, Any], data: str, seed: int, out: Path) -> dict[str, Any]:
    start = time.perf_counter()
    run = pushforward.train(
        model, data=data, out=out, seed=seed, overwrite=True, progress=False, **options
    )
    row: dict[str, Any] = {"seed": seed, "train_s": round(time.perf_counter() - start, 1)}
    row["steps"] = run.history()[-1]["step"] if run.history() else None
    samplers = ("prior", "gmm") if model == "vae" else ("prior",)
    for sampler in samplers:
        suffix = "" if sampler == "prior" else f"_{sampler}"
        row.update({k + suffix: v for k, v in score(run, sampler).items()})
    if model == "flow":  # an exact density: its held-out bits/dim on the discrete scale too
        row["bits_per_dim"] = round(run.evaluate(["nll"], write=False)["bits_per_dim"], 4)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("candidate", nargs="?", choices=sorted(CANDIDATES))
    p.add_argument("--recipe", nargs=2, metavar=("MODEL", "NAME"), help="a shipped recipe")
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="change an option")
    p.add_argument("--conditional", action="store_true", help="the class-conditional model")
    p.add_argument("--out", default="recipe-runs", help="folder for the run folders")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.recipe:
        model, options = args.recipe[0], {"recipe": args.recipe[1]}
        name = "/".join(args.recipe)
    elif args.candidate:
        (model, options), name = CANDIDATES[args.candidate], args.candidate
    else:
        p.error("name a candidate or --recipe MODEL NAME")
    options = {**options, **dict(s.split("=", 1) for s in args.set)}
    if args.conditional:
        options["conditional"] = True
        name += "-conditional"
    print(json.dumps({"candidate": name, "options": options, "data": args.data,
                      "machine": f"{platform.processor() or platform.machine()}, "
                      f"{args.threads} threads, torch {torch.__version__}"}))  # fmt: skip
    rows = []
    for seed in args.seeds:
        folder = Path(args.out) / f"{name.replace('/', '-')}-{args.data}-seed{seed}"
        rows.append(one(model, options, args.data, seed, folder))
        print(json.dumps(rows[-1]), flush=True)
    summary = {
        k: (round(statistics.mean(r[k] for r in rows), 3),
            round(statistics.pstdev(r[k] for r in rows), 3))
        for k in rows[0] if k != "seed" and isinstance(rows[0][k], (int, float))
    }  # fmt: skip
    print(json.dumps({"mean_and_spread": summary}))


if __name__ == "__main__":
    main()
