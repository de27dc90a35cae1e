"""Where a training step's time goes: pushforward's MLP VAE (784-512-512-16, batch 128, the
model of side_by_side.py) trained for 300 steps on Fashion-MNIST under torch.profiler, its
operators' own time per step summed into kinds (matrix products, the optimizer, casts, random
draws, the other element-wise work) beside the wall time per step; the rest of the wall time is
Python, autograd and dispatch between the operators. Run by hand:

    python benchmarks/step_profile.py [--threads 2] [--precision bf16] [--model vae|gan]

``--model gan`` profiles the DCGAN of the image recipes (64 channels, batch 128) instead.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

import pushforward
from pushforward.data import load_dataset

KINDS = {
    "matrix products": ("aten::mm", "aten::addmm", "aten::bmm", "convolution", "mkldnn"),
    "optimizer": ("adam", "foreach", "lerp"),
    "casts and copies": ("aten::copy_", "aten::_to_copy", "aten::clone"),
    "random draws": ("uniform_", "normal_", "bernoulli", "randint", "random_"),
}


def kind(name: str) -> str:
    low = name.lower()
    for k, keys in KINDS.items():
        if any(key in low for key in keys):
            return k
    return "other operators"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", default="bf16")
    p.add_argument("--model", default="vae", choices=("vae", "gan"))
    p.add_argument("--steps", type=int, default=300)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    train = load_dataset("fashion-mnist").train[:20_000]
    options: dict[str, object] = (
        {"latent_dim": 16, "hidden": 512, "depth": 2, "binarize": "dynamic",
         "likelihood": "bernoulli", "lr": 1e-3}
        if args.model == "vae"
        else {"arch": "conv", "hidden": 64}
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "train.npy"
        np.save(data, train.numpy())

        def run(steps: int, out: str) -> float:
            r = pushforward.train(
                args.model, data=f"npy:{data}", out=f"{tmp}/{out}", progress=False,
                steps=steps, batch_size=128, seed=0, precision=args.precision, snapshots=0,
                log_every=100_000, checkpoint_every=100_000, **options,
            )  # fmt: skip
            return float(json.loads((r.path / "model.json").read_text())["info"]["seconds"])

        run(20, "warm")
        start = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            seconds = run(args.steps, "profiled")
        wall = time.perf_counter() - start
    per_kind: dict[str, float] = defaultdict(float)
    for e in prof.key_averages():
        per_kind[kind(e.key)] += e.self_cpu_time_total / 1000 / args.steps  # ms per step
    step_ms = 1000 * seconds / args.steps
    print(f"{args.model}, {args.precision}, {args.threads} threads, torch {torch.__version__}: ")
    print(f"{step_ms:.2f} ms per step under the profiler (run {wall:.1f} s with start-up)")
    print("| kind | ms per step | share |")
    print("|---|---|---|")
    for k, ms in sorted(per_kind.items(), key=lambda kv: -kv[1]):
        print(f"| {k} | {ms:.2f} | {ms / step_ms:.0%} |")
    rest = step_ms - sum(per_kind.values())
    print(f"| Python, autograd and dispatch (the rest) | {rest:.2f} | {rest / step_ms:.0%} |")


if __name__ == "__main__":
    main()
