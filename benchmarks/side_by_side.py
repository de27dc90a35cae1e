"""MLP VAE training on Fashion-MNIST side by side: a plain hand-written PyTorch loop, pushforward
(fp32 and bf16) and pythae, each configuration in its own fresh process, taking turns, so that
no run inherits another's warm caches or allocator state and drift in the machine's speed is
shared out. Run by hand:

    python benchmarks/side_by_side.py [--threads 2] [--epochs 5] [--repeats 3]
        [--configs plain,fp32,bf16,pythae]

The model everywhere: 784-512-512-16 MLP encoder and decoder (ReLU), N(0, I) prior, Bernoulli
likelihood, Adam 1e-3, batch 128. The plain loop and pushforward redraw the binarized pixels
every batch (dynamic binarization); pythae has no such option and trains on the images
binarized once (seed 0), which is no slower. Reported per configuration: the median over the
repeats of training images/s (the epochs only: no evaluation, no start-up), the ratio to the
plain loop, the peak resident memory of the process by the end of training, and the test ELBO (the test images
binarized once, seed 1, one z per image, fp32).

pythae is not a dependency of pushforward: the first run installs it, with the same torch
version as this environment's, into benchmarks/.venv-pythae.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LATENT, HIDDEN, BATCH, LR = 16, 512, 128, 1e-3
HERE = Path(__file__).resolve().parent
PYTHAE_VENV = HERE / ".venv-pythae"


def mlp(d_in: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(d_in, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
        nn.Linear(HIDDEN, d_out),
    )  # fmt: skip


def test_elbo(
    enc: nn.Module, dec: nn.Module, test: torch.Tensor, shape: tuple[int, ...] = (784,)
) -> float:
    """Mean one-sample ELBO of the binarized test images [N, 784], seeded; ``enc`` takes them
    as [N, *shape]."""
    g = torch.Generator().manual_seed(0)
    total = 0.0
    with torch.no_grad():
        for x in test.split(1000):
            mu, logvar = enc(x.view(len(x), *shape)).chunk(2, dim=-1)
            z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=g)
            logits = dec(z).reshape(len(x), -1)
            recon = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
            kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
            total += float((recon - kl).sum())
    return total / len(test)


def peak_mib() -> float:
    """The process's peak resident memory so far (VmHWM), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def plain(train: torch.Tensor, test: torch.Tensor, epochs: int) -> dict[str, float]:
    """What a user writes by hand: two MLPs, the ELBO of Kingma & Welling, torch.optim.Adam."""
    torch.manual_seed(0)
    enc, dec = mlp(784, 2 * LATENT), mlp(LATENT, 784)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=LR)
    n = len(train) // BATCH * BATCH
    start = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(train))[:n]
        for i in range(0, n, BATCH):
            x = torch.bernoulli(train[perm[i : i + BATCH]])
            mu, logvar = enc(x).chunk(2, dim=-1)
            z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
            recon = -F.binary_cross_entropy_with_logits(dec(z), x, reduction="none").sum(1)
            kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
            loss = -(recon - kl).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    seconds, peak = time.perf_counter() - start, peak_mib()
    e = test_elbo(enc, dec, test)
    return {"seconds": seconds, "images": epochs * n, "test_elbo": e, "peak_mib": peak}


def with_pushforward(
    data: Path, test: torch.Tensor, epochs: int, precision: str
) -> dict[str, float]:
    import importlib

    import pushforward

    training = importlib.import_module("pushforward.training.loop")  # the module, not the function

    peaks = []
    fit_gradient = training.fit_gradient

    def measured(*args: object, **kwargs: object) -> dict[str, object]:
        out = fit_gradient(*args, **kwargs)  # type: ignore[arg-type]
        peaks.append(peak_mib())  # at the end of training: before the samples and health checks
        return out

    training.fit_gradient = measured  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as tmp:
        run = pushforward.train(
            "vae", data=f"npy:{data}", out=f"{tmp}/run", progress=False, epochs=epochs,
            latent_dim=LATENT, hidden=HIDDEN, depth=2, batch_size=BATCH, lr=LR, seed=0,
            precision=precision, binarize="dynamic", likelihood="bernoulli", snapshots=0,
            log_every=100_000, checkpoint_every=100_000,
        )  # fmt: skip
        info = json.loads((run.path / "model.json").read_text())["info"]
        model = run.model.float().eval()
    e = test_elbo(model.encoder, model.decoder, test, (1, 28, 28))
    n = info["steps"] * BATCH
    return {"seconds": info["seconds"], "images": n, "test_elbo": e, "peak_mib": peaks[0]}


def with_pythae(train: torch.Tensor, test: torch.Tensor, epochs: int) -> dict[str, float]:
    """pythae's VAE with the same networks through its TrainingPipeline (its defaults
    otherwise): images binarized once, since pythae cannot redraw them per batch."""
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from pythae.pipelines import TrainingPipeline
    from pythae.trainers import BaseTrainerConfig

    class Encoder(BaseEncoder):
        def __init__(self) -> None:
            super().__init__()
            self.net = mlp(784, 2 * LATENT)

        def forward(self, x: torch.Tensor) -> ModelOutput:
            mu, logvar = self.net(x.reshape(len(x), -1)).chunk(2, dim=-1)
            return ModelOutput(embedding=mu, log_covariance=logvar)

    class Decoder(BaseDecoder):
        def __init__(self) -> None:
            super().__init__()
            self.net = mlp(LATENT, 784)

        def forward(self, z: torch.Tensor) -> ModelOutput:
            return ModelOutput(reconstruction=torch.sigmoid(self.net(z)).reshape(-1, 1, 28, 28))

    torch.manual_seed(0)
    binary = torch.bernoulli(train, generator=torch.Generator().manual_seed(0))
    config = VAEConfig(input_dim=(1, 28, 28), latent_dim=LATENT, reconstruction_loss="bce")
    model = VAE(config, encoder=Encoder(), decoder=Decoder())
    with tempfile.TemporaryDirectory() as tmp:
        trainer = BaseTrainerConfig(
            output_dir=tmp, num_epochs=epochs, learning_rate=LR, optimizer_cls="Adam",
            per_device_train_batch_size=BATCH, per_device_eval_batch_size=1000, no_cuda=True,
            steps_saving=None,
        )  # fmt: skip
        pipeline = TrainingPipeline(training_config=trainer, model=model)
        start = time.perf_counter()
        pipeline(train_data=binary.reshape(-1, 1, 28, 28).numpy(), eval_data=None)
        seconds, peak = time.perf_counter() - start, peak_mib()
    enc, dec = model.encoder.net, model.decoder.net
    e = test_elbo(enc, dec, test)
    return {"seconds": seconds, "images": epochs * len(train), "test_elbo": e, "peak_mib": peak}


def worker(name: str, data: Path, epochs: int, threads: int) -> None:
    """One configuration in this process: one JSON line on stdout."""
    torch.set_num_threads(threads)
    arrays = np.load(data.with_suffix(".test.npy"))
    test = torch.from_numpy(arrays).reshape(len(arrays), -1)
    train = torch.from_numpy(np.load(data)).reshape(-1, 784)
    if name == "plain":
        r = plain(train, test, epochs)
    elif name == "pythae":
        r = with_pythae(train, test, epochs)
    else:
        r = with_pushforward(data, test, epochs, name)
    print(json.dumps({**r, "images_per_sec": r["images"] / r["seconds"]}))


def pythae_python() -> str:
    """The interpreter of benchmarks/.venv-pythae, created on first use with this torch."""
    python = PYTHAE_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PYTHAE_VENV)], check=True)
        version = torch.__version__.split("+")[0]
        pip = [str(python), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, f"torch=={version}"], check=True)
        subprocess.run([*pip, "pythae", "numpy"], check=True)
    return str(python)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--configs", default="plain,fp32,bf16,pythae")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.worker, args.data, args.epochs, args.threads)
        return
    from pushforward.data import binarize, load_dataset

    ds = binarize(load_dataset("fashion-mnist"), "dynamic")
    assert ds.test is not None
    configs = args.configs.split(",")
    results: dict[str, list[dict[str, float]]] = {c: [] for c in configs}
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "train.npy"
        np.save(data, ds.train.numpy())
        np.save(data.with_suffix(".test.npy"), ds.test.numpy())
        for _ in range(args.repeats):
            for c in configs:
                python = pythae_python() if c == "pythae" else sys.executable
                cmd = [python, __file__, "--worker", c, "--data", str(data)]
                cmd += ["--epochs", str(args.epochs), "--threads", str(args.threads)]
                out = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
                results[c].append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(c, results[c][-1], file=sys.stderr, flush=True)
    ref = statistics.median(r["images_per_sec"] for r in results[configs[0]])
    print(f"torch {torch.__version__}, {args.threads} threads, {args.epochs} epochs, ", end="")
    print(f"median of {args.repeats} runs each, taking turns")
    print(f"| loop | images/s | runs | ratio to {configs[0]} | peak MiB | test ELBO |")
    print("|---|---|---|---|---|---|")
    for c in configs:
        speeds = [r["images_per_sec"] for r in results[c]]
        med = statistics.median(speeds)
        runs = " / ".join(f"{s:,.0f}" for s in speeds)
        peak = statistics.median(r["peak_mib"] for r in results[c])
        e = statistics.median(r["test_elbo"] for r in results[c])
        print(f"| {c} | {med:,.0f} | {runs} | {med / ref:.2f}x | {peak:,.0f} | {e:.2f} |")


if __name__ == "__main__":
    main()
