"""DCGAN training on Fashion-MNIST: pushforward against a plain hand-written PyTorch loop.

The same computation on both sides: pushforward's conv GAN at --hidden 64 (G: linear to
128 x 7 x 7, two 4x4 stride-2 transposed convolutions with batch norm, sigmoid; D: two 4x4
stride-2 convolutions with LeakyReLU(0.2) and batch norm, then a linear logit), the
non-saturating loss, Adam 2e-4 (0.5, 0.999), batch 128, one D step per G step. Reports
training images/s (real images through D per second) and the ratio against the plain fp32 loop
run in the same process. Run by hand:

    python benchmarks/gan_train.py [--threads 2] [--steps 200] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

import pushforward
from pushforward.data import load_dataset

WIDTH, LATENT, BATCH = 64, 16, 128


def plain_nets() -> tuple[nn.Module, nn.Module]:
    """The DCGAN pair as one writes it by hand, sized like pushforward's for 28 x 28."""
    g = nn.Sequential(
        nn.Linear(LATENT, 2 * WIDTH * 49), nn.ReLU(), nn.Unflatten(1, (2 * WIDTH, 7, 7)),
        nn.ConvTranspose2d(2 * WIDTH, WIDTH, 4, 2, 1), nn.BatchNorm2d(WIDTH), nn.ReLU(),
        nn.ConvTranspose2d(WIDTH, 1, 4, 2, 1), nn.Sigmoid(),
    )  # fmt: skip
    d = nn.Sequential(
        nn.Conv2d(1, WIDTH, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(WIDTH, 2 * WIDTH, 4, 2, 1), nn.BatchNorm2d(2 * WIDTH), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Linear(2 * WIDTH * 49, 1),
    )  # fmt: skip
    return g, d


def plain_loop(
    train: torch.Tensor,
    steps: int,
    device: torch.device,
    channels_last: bool = False,
    bf16: bool = False,
) -> dict[str, float]:
    """The hand-written loop; ``channels_last`` stores weights and activations NHWC (what
    oneDNN's convolutions prefer), ``bf16`` runs the step under CPU/CUDA autocast."""
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    g, d = (m.to(device, memory_format=fmt) for m in plain_nets())
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    x_all = train.to(device).contiguous(memory_format=fmt)
    cast = torch.autocast(device.type, torch.bfloat16, enabled=bf16)
    start = time.perf_counter()
    for _ in range(steps):
        with cast:
            real = x_all[torch.randint(len(x_all), (BATCH,), device=device)]
            fake = g(torch.randn(BATCH, LATENT, device=device))
            d_loss = F.softplus(-d(real)).mean() + F.softplus(d(fake.detach())).mean()
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            g_loss = F.softplus(-d(g(torch.randn(BATCH, LATENT, device=device)))).mean()
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
    float(g_loss.detach())
    seconds = time.perf_counter() - start
    return {"images_per_sec": steps * BATCH / seconds, "seconds": seconds}


def pushforward_run(steps: int, device: str, **options: object) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        run = pushforward.train(
            "gan", data="fashion-mnist", out=f"{tmp}/run", progress=False, steps=steps,
            arch="conv", hidden=WIDTH, latent_dim=LATENT, batch_size=BATCH, seed=0,
            device=device, log_every=10_000, checkpoint_every=10**9, **options,
        )  # fmt: skip
        info = json.loads((run.path / "model.json").read_text())["info"]
    return {"images_per_sec": steps * BATCH / info["seconds"], "seconds": info["seconds"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--device", default="cpu")
    p.add_argument("--configs", default="fp32,bf16", help="pushforward precisions to time")
    p.add_argument("--layouts", action="store_true", help="also the plain loop channels-last/bf16")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    train = load_dataset("fashion-mnist").train
    print(f"torch {torch.__version__}, {args.threads} threads, {dev}, {args.steps} steps")
    print("| loop | images/s | ratio to plain fp32 | train s |")
    print("|---|---|---|---|")
    ref: dict[str, float] = {}

    def row(name: str, r: dict[str, float]) -> None:
        ratio = r["images_per_sec"] / (ref or r)["images_per_sec"]
        print(
            f"| {name} | {r['images_per_sec']:,.0f} | {ratio:.2f}x | {r['seconds']:.1f} |",
            flush=True,
        )

    ref = plain_loop(train, args.steps, dev)
    row("plain PyTorch loop, fp32", ref)
    if args.layouts:
        row("plain loop, fp32, channels-last", plain_loop(train, args.steps, dev, True))
        row("plain loop, bf16", plain_loop(train, args.steps, dev, False, True))
        row("plain loop, bf16, channels-last", plain_loop(train, args.steps, dev, True, True))
    for name in args.configs.split(","):
        row(f"pushforward {name}", pushforward_run(args.steps, args.device, precision=name))


if __name__ == "__main__":
    main()
