"""One VAE training step written out by hand (fused Adam, fp32 and bf16 autocast) on 1 or 2
threads: how much the second core gives each precision. Run by hand:

    OMP_NUM_THREADS=1 python benchmarks/vae_threads.py 1
    OMP_NUM_THREADS=2 python benchmarks/vae_threads.py 2
"""

from __future__ import annotations

import sys
import time

import torch

from pushforward.data import load_dataset
from pushforward.models.vae import VAE, VAEConfig


def main() -> None:
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads()
    torch.set_num_threads(threads)
    x_all = load_dataset("fashion-mnist").train[: 128 * 150]
    m = VAE(VAEConfig(latent_dim=16, hidden=512, depth=2, likelihood="bernoulli"), (1, 28, 28))
    opt = torch.optim.Adam(m.parameters(), lr=1e-3, fused=True)
    for bf16 in (False, True):
        for _ in range(2):  # the second pass is the timed one
            start = time.perf_counter()
            for i in range(150):
                x = (torch.rand(128, 1, 28, 28) < x_all[i * 128 : (i + 1) * 128]).float()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    out = m.loss(x, "main")
                opt.zero_grad(set_to_none=True)
                out["loss"].backward()
                opt.step()
            seconds = time.perf_counter() - start
        print(f"{threads} threads, bf16={bf16}: {150 * 128 / seconds:,.0f} images/s")


if __name__ == "__main__":
    main()
