"""MLP VAE training on Fashion-MNIST: pushforward against a plain hand-written PyTorch loop.

The same computation on both sides: 784-512-512-16 MLP encoder and decoder (ReLU), N(0, I)
prior, Bernoulli likelihood on dynamically binarized pixels, Adam 1e-3, batch 128, 5 epochs.
Reports training images/s (the epochs only, no evaluation) and the test ELBO after training
(the test split binarized once, seed 1, one z per image, fp32), and the speed ratio of each
pushforward configuration against the plain fp32 loop run in the same process. Run by hand:

    python benchmarks/vae_train.py [--threads 2] [--epochs 5] [--device cpu|cuda] [--scaling]

``--scaling`` instead times one epoch of pushforward (fp32 and bf16) against the training-set
size (10,000 / 30,000 / 60,000 images) and the MLP width (128 ... 1024).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import pushforward
from pushforward.data import binarize, load_dataset
from pushforward.metrics.likelihood import elbo as test_elbo

LATENT, HIDDEN, BATCH, LR = 16, 512, 128, 1e-3


class PlainVAE(nn.Module):
    """What a user writes by hand: two MLPs and the ELBO of Kingma & Welling."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Sequential(
            nn.Linear(784, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
            nn.Linear(HIDDEN, 2 * LATENT),
        )  # fmt: skip
        self.dec = nn.Sequential(
            nn.Linear(LATENT, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
            nn.Linear(HIDDEN, 784),
        )  # fmt: skip

    def elbo(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """x [B, 1, 28, 28] -> per-example ELBO, reconstruction and KL, [B] each."""
        mu, logvar = self.enc(x.flatten(1)).chunk(2, dim=-1)
        eps = (
            torch.randn(mu.shape, generator=generator).to(mu) if generator else torch.randn_like(mu)
        )
        z = mu + (0.5 * logvar).exp() * eps
        logits = self.dec(z)
        recon = -F.binary_cross_entropy_with_logits(logits, x.flatten(1), reduction="none").sum(1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
        return {"elbo": recon - kl, "recon": recon, "kl": kl}


def plain_loop(
    train: torch.Tensor, test: torch.Tensor, epochs: int, device: torch.device
) -> dict[str, float]:
    torch.manual_seed(0)
    model = PlainVAE().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    x_all = train.to(device)
    n = len(x_all) // BATCH * BATCH
    seen, start = 0, time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(x_all), device=device)[:n]
        for i in range(0, n, BATCH):
            x = torch.bernoulli(x_all[perm[i : i + BATCH]])
            loss = -model.elbo(x)["elbo"].mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(x)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        e = test_elbo(model, test.to(device), seed=0)["elbo"]
    return {"images_per_sec": seen / seconds, "seconds": seconds, "test_elbo": e}


def pushforward_run(
    epochs: int, device: str, data: str = "fashion-mnist", evaluate: bool = True, **options: object
) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        run = pushforward.train(
            "vae", data=data, out=f"{tmp}/run", progress=False, epochs=epochs,
            latent_dim=LATENT, batch_size=BATCH, lr=LR, seed=0, device=device,
            log_every=10_000, **{"hidden": HIDDEN, "depth": 2, **options},
        )  # fmt: skip
        info = json.loads((run.path / "model.json").read_text())["info"]
        e = run.evaluate(["elbo"], write=False)["elbo"] if evaluate else math.nan
    steps = info["steps"]
    return {
        "images_per_sec": steps * BATCH / info["seconds"],
        "seconds": info["seconds"],
        "test_elbo": e,
    }


def scaling(device: str) -> None:
    """Seconds per epoch against data size and width: the cost should grow linearly in N and
    about quadratically in the width (the 512 x 512 layers dominate)."""
    train = load_dataset("fashion-mnist").train
    print("| precision | images | width | s per epoch | images/s |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("fp32", "bf16"):
            for n, width in [(10_000, 512), (30_000, 512), (60_000, 512), (60_000, 128),
                             (60_000, 256), (60_000, 1024)]:  # fmt: skip
                path = f"{tmp}/train-{n}.npy"
                np.save(path, train[:n].numpy())
                r = pushforward_run(
                    1, device, data=f"npy:{path}", evaluate=False, hidden=width,
                    precision=precision, binarize="dynamic", likelihood="bernoulli",
                )  # fmt: skip
                print(
                    f"| {precision} | {n:,} | {width} | {r['seconds']:.2f} | "
                    f"{r['images_per_sec']:,.0f} |",
                    flush=True,
                )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--configs",
        default="fp32,bf16,bf16+compile",
        help="pushforward configurations: fp32, bf16, each optionally +compile",
    )
    p.add_argument("--scaling", action="store_true", help="time against data size and width")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.scaling:
        scaling(args.device)
        return
    dev = torch.device(args.device)
    ds = binarize(load_dataset("fashion-mnist"), "dynamic")
    assert ds.test is not None
    print(f"torch {torch.__version__}, {args.threads} threads, {dev}, {args.epochs} epochs")
    ref = plain_loop(ds.train, ds.test, args.epochs, dev)
    rows = [("plain PyTorch loop, fp32", ref)]
    for name in args.configs.split(","):
        precision, _, extra = name.partition("+")
        options = {"precision": precision, **({"compile": True} if extra == "compile" else {})}
        rows.append((f"pushforward {name}", pushforward_run(args.epochs, args.device, **options)))
    print("| loop | images/s | ratio to plain fp32 | train s | test ELBO | ELBO - plain |")
    print("|---|---|---|---|---|---|")
    for name, r in rows:
        print(
            f"| {name} | {r['images_per_sec']:,.0f} | {r['images_per_sec'] / ref['images_per_sec']:.2f}x"
            f" | {r['seconds']:.1f} | {r['test_elbo']:.2f} | {r['test_elbo'] - ref['test_elbo']:+.2f} |"
        )
    assert all(math.isfinite(r["test_elbo"]) for _, r in rows)


if __name__ == "__main__":
    main()
