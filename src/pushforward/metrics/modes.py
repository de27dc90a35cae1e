"""Mode coverage on the ring8 and grid25 mixtures, with the published definitions
(VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018):

- a sample is *high quality* when it lies within 3 standard deviations of its nearest mode;
- a mode is *captured* when some high-quality sample has it as nearest mode;
- reverse KL = KL(histogram of high-quality samples over modes || uniform over modes);

and, beside them, how spread out the high-quality samples are about their modes: the scores
above rise when samples pile onto the mode centres, and this is the diversity that costs.

Imports nothing of this package: any module may import it.
"""

from __future__ import annotations

import math

import torch


@torch.no_grad()
def mode_coverage(
    samples: torch.Tensor, modes: torch.Tensor, std: float, radius: float = 3.0
) -> dict[str, float]:
    """samples [N, 2], modes [K, 2] -> modes captured, high-quality fraction, reverse KL, and
    ``hq_spread``: the root-mean-square distance of the high-quality samples from their modes
    over the data's own (1: as spread as the data; 0.5: at half its distance)."""
    samples, modes = samples.double().cpu(), modes.double().cpu()
    diff = samples[:, None] - modes  # [N, K, 2], exact (cdist's matrix form rounds near 0)
    dist, nearest = diff.pow(2).sum(-1).sqrt().min(dim=1)  # [N]
    hq = dist <= radius * std
    counts = torch.bincount(nearest[hq], minlength=len(modes)).double()  # [K]
    k = len(modes)
    if counts.sum() > 0:
        p = counts / counts.sum()
        nz = p > 0
        reverse_kl = float((p[nz] * (p[nz] * k).log()).sum())
    else:
        reverse_kl = math.inf
    # a data point's squared distance from its mode is std^2 times a chi-square with 2 degrees
    # of freedom (an exponential of mean 2), here cut at the radius as the samples are
    cut = math.exp(-(radius**2) / 2)
    data_ms = std**2 * (2 - radius**2 * cut / (1 - cut))
    spread = math.sqrt(float(dist[hq].pow(2).mean()) / data_ms) if hq.any() else math.nan
    return {
        "modes": int((counts > 0).sum()),
        "hq_fraction": float(hq.double().mean()),
        "reverse_kl_modes": reverse_kl,
        "hq_spread": spread,
    }
