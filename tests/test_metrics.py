"""Metrics on hand-made inputs with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from pushforward.data import TOY_MODES
from pushforward.metrics.modes import mode_coverage

RING = torch.as_tensor(TOY_MODES["ring8"])


def test_perfect_samples_cover_every_mode_uniformly() -> None:
    x = RING.repeat(100, 1) + 0.005 * torch.randn(
        800, 2, generator=torch.Generator().manual_seed(0)
    )
    r = mode_coverage(x, RING, 0.01)
    assert (
        r["modes"] == 8
        and r["hq_fraction"] == 1.0
        and r["reverse_kl_modes"] == pytest.approx(0.0, abs=1e-12)
    )


def test_collapsed_and_off_mode_samples() -> None:
    x = torch.cat([RING[:2].repeat(50, 1), torch.zeros(100, 2)])  # two modes, half at the centre
    r = mode_coverage(x, RING, 0.01)
    assert r["modes"] == 2 and r["hq_fraction"] == 0.5
    assert r["reverse_kl_modes"] == pytest.approx(math.log(4))  # uniform over 2 of 8 modes
    assert mode_coverage(torch.zeros(10, 2), RING, 0.01)["modes"] == 0
    # the 3-sd boundary: 0.029 away counts, 0.031 does not
    edge = RING[:1] + torch.tensor([[0.029, 0.0], [0.031, 0.0]], dtype=RING.dtype)
    assert mode_coverage(edge, RING, 0.01)["hq_fraction"] == 0.5
