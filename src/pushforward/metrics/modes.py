"""Mode coverage on the ring8 and grid25 mixtures, with the published definitions
(VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018):

- a sample is *high quality* when it lies within 3 standard deviations of its nearest mode;
- a mode is *captured* when some high-quality sample has it as nearest mode;
- reverse KL = KL(histogram of high-quality samples over modes || uniform over modes).

Imports nothing of this package: any module may import it.
"""

from __future__ import annotations

import math

import torch


@torch.no_grad()
def mode_coverage(
    samples: torch.Tensor, modes: torch.Tensor, std: float, radius: float = 3.0
) -> dict[str, float]:
    """samples [N, 2], modes [K, 2] -> modes captured, high-quality fraction, reverse KL."""
    samples, modes = samples.double().cpu(), modes.double().cpu()
    dist, nearest = torch.cdist(samples, modes).min(dim=1)  # [N]
    hq = dist <= radius * std
    counts = torch.bincount(nearest[hq], minlength=len(modes)).double()  # [K]
    k = len(modes)
    if counts.sum() > 0:
        p = counts / counts.sum()
        nz = p > 0
        reverse_kl = float((p[nz] * (p[nz] * k).log()).sum())
    else:
        reverse_kl = math.inf
    return {
        "modes": int((counts > 0).sum()),
        "hq_fraction": float(hq.double().mean()),
        "reverse_kl_modes": reverse_kl,
    }
