"""The toy sets: shapes, seeded splits, and exact densities that integrate to 1 and match samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pushforward.data import TOY_MODES, TOY_SETS, TOY_STD, load_dataset
from pushforward.data.toy2d import toy_split

EXACT = [name for name, t in TOY_SETS.items() if t.log_prob is not None]
# (low, high, grid step) fine enough for each density's narrowest feature
GRIDS = {
    "ring8": (-1.1, 1.1, 0.0015),
    "grid25": (-4.5, 4.5, 0.01),
    "checkerboard": (-4.5, 4.5, 0.01),
}


def test_exact_densities_are_the_expected_sets() -> None:
    assert set(EXACT) == {"ring8", "grid25", "checkerboard"}


@pytest.mark.parametrize("name", list(TOY_SETS))
def test_split_shapes_seeding_and_disjointness(name: str) -> None:
    ds = load_dataset(name)
    assert ds.train.shape == (50_000, 2) and ds.test is not None and ds.test.shape == (10_000, 2)
    assert ds.train.dtype == torch.float32 and torch.isfinite(ds.train).all()
    assert torch.equal(toy_split(name, "train"), ds.train)  # the same points every time
    assert not torch.equal(ds.train[:10_000], ds.test)
    assert ds.train.std(0).min() > 0.1  # spread out, not a constant


@pytest.mark.parametrize("name", EXACT)
def test_log_prob_integrates_to_one(name: str) -> None:
    lo, hi, step = GRIDS[name]
    axis = torch.arange(lo, hi, step, dtype=torch.float64) + step / 2
    gx, gy = torch.meshgrid(axis, axis, indexing="xy")
    logp = TOY_SETS[name].log_prob(torch.stack([gx.flatten(), gy.flatten()], 1))
    mass = float(logp.exp().sum() * step**2)
    assert mass == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("name", EXACT)
def test_log_prob_matches_histogram_of_samples(name: str) -> None:
    lo, hi, step = GRIDS[name]
    x = load_dataset(name).train.double()
    bins = 12
    edges = np.linspace(lo, hi, bins + 1)
    hist, _, _ = np.histogram2d(x[:, 0].numpy(), x[:, 1].numpy(), bins=[edges, edges])
    empirical = hist / len(x)
    axis = torch.arange(lo, hi, step, dtype=torch.float64) + step / 2
    gx, gy = torch.meshgrid(axis, axis, indexing="ij")
    dens = TOY_SETS[name].log_prob(torch.stack([gx.flatten(), gy.flatten()], 1)).exp() * step**2
    cell = ((axis - lo) / (hi - lo) * bins).long().clamp(max=bins - 1)
    ci, cj = torch.meshgrid(cell, cell, indexing="ij")
    expected = torch.zeros(bins, bins, dtype=torch.float64)
    expected.index_put_((ci.flatten(), cj.flatten()), dens, accumulate=True)
    tv = 0.5 * np.abs(empirical - expected.numpy()).sum()
    assert tv < 0.02, tv


def test_log_prob_is_zero_density_off_support() -> None:
    lp = TOY_SETS["checkerboard"].log_prob(torch.tensor([[1.0, 1.0], [1.0, -1.0], [5.0, 0.0]]))
    assert torch.isfinite(lp[0]) and lp[1] == -float("inf") and lp[2] == -float("inf")
    ring = TOY_SETS["ring8"].log_prob(torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64))
    # at a mode centre: log(1/8) - log(2 pi 0.01^2)
    assert float(ring[0]) == pytest.approx(np.log(1 / 8) - np.log(2 * np.pi * 1e-4), abs=1e-6)
    assert float(ring[1]) < -1000


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_a_mode_sets_labels_are_its_modes(name: str) -> None:
    """Each point is labelled with the Gaussian it was drawn from: within 6 sd of that mode,
    the modes equally likely; the sets without modes have no labels."""
    ds = load_dataset(name)
    modes = torch.as_tensor(TOY_MODES[name], dtype=torch.float32)
    for x, y in ((ds.train, ds.train_labels), (ds.test, ds.test_labels)):
        assert y is not None and x is not None and y.dtype == torch.int64 and len(y) == len(x)
        assert (x - modes[y]).norm(dim=1).max() < 6 * TOY_STD[name]
        share = torch.bincount(y, minlength=len(modes)).double() / len(y)
        assert (share - 1 / len(modes)).abs().max() < 0.015, share
    assert load_dataset("moons").train_labels is None
