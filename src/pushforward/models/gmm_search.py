"""Choosing a mixture's K on held-out data, and counting its parameters: what a practitioner
does before fitting, kept apart from EM itself.

May import, of this package: data, errors.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import TYPE_CHECKING

import torch

from ..data import Examples
from ..errors import PushforwardError

if TYPE_CHECKING:
    from .gmm import GMM, GMMConfig

DEFAULT_EM_STEPS = 100
SEARCH_EXAMPLES = 10_000  # the search for K fits on at most this many training examples


def search_ks(most: int) -> list[int]:
    """The K the search tries: 1, 2, 4, ... below ``most``, then ``most``."""
    ks = [2**i for i in range(most.bit_length()) if 2**i < most]
    return [*ks, most]


def parameters_per_component(d: int, covariance: str) -> int:
    """A weight, a mean and a covariance (full: its D(D+1)/2 free entries) in D dimensions."""
    return 1 + d + (d * (d + 1) // 2 if covariance == "full" else d)


def choose_components(cls: type[GMM], cfg: GMMConfig, x: Examples, seed: int = 0) -> int:
    """K by held-out log-likelihood, as a practitioner would choose it: EM for K = 1, 2,
    4, ... (and --max-components) on 90% of (at most 10,000) training examples, scored on
    the other 10%; the search stops once two larger K in a row score no better, or before
    a K whose fit would run past --search-minutes (EM's cost grows with K, so the last fit's
    time predicts the next; a fit still running at the deadline stops there). Too few
    components blur the modes together (8 Gaussians on grid25's 25 modes); too many overfit
    the held-out part."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(x), generator=g)[:SEARCH_EXAMPLES]
    n_val = max(1, len(idx) // 10)
    held_out, fit = x[idx[:n_val]], x[idx[n_val:]]
    best_k, best, worse = 1, -math.inf, 0
    deadline = time.perf_counter() + 60 * (cfg.search_minutes or math.inf)
    per_component = 0.0  # seconds the last fit took per component
    for k in search_ks(cfg.max_components):
        if k > max(1, len(fit) // 10):
            break  # fewer than 10 examples per component
        if k > 1 and time.perf_counter() + per_component * k > deadline:
            break  # this K's fit would end past --search-minutes
        try:
            cls.check_memory(replace(cfg, components=k), fit[0].numel())
        except PushforwardError:
            break
        model = cls(replace(cfg, components=k), tuple(x.shape[1:]))
        start = time.perf_counter()
        model.fit(fit, DEFAULT_EM_STEPS, g, lambda _it, _ll: time.perf_counter() >= deadline)
        per_component = (time.perf_counter() - start) / k
        score = float(model.log_prob(held_out).mean())
        if score > best:  # a NaN never wins
            best_k, best, worse = k, score, 0
        else:
            worse += 1
            if worse == 2:
                break
    return best_k
