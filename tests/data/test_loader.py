"""The in-memory batcher: every example once per epoch, seeded order, disjoint DDP shards."""

from __future__ import annotations

import pytest
import torch

from pushforward.data import InMemoryLoader
from pushforward.errors import PushforwardError


def test_each_epoch_is_a_seeded_permutation() -> None:
    x = torch.arange(100.0)[:, None]
    loader = InMemoryLoader(x, 10, seed=0)
    e0 = torch.cat(list(loader.epoch(0)))[:, 0]
    assert sorted(e0.tolist()) == list(range(100))
    assert torch.equal(e0, torch.cat(list(InMemoryLoader(x, 10, seed=0).epoch(0)))[:, 0])
    assert not torch.equal(e0, torch.cat(list(loader.epoch(1)))[:, 0])
    assert not torch.equal(e0, torch.cat(list(InMemoryLoader(x, 10, seed=1).epoch(0)))[:, 0])


def test_ranks_take_disjoint_shards_of_the_same_order() -> None:
    x = torch.arange(103.0)[:, None]
    shards = [
        torch.cat(list(InMemoryLoader(x, 5, seed=2, rank=r, world=2).epoch(3)))[:, 0]
        for r in (0, 1)
    ]
    assert len(shards[0]) == len(shards[1]) == 50
    assert not set(shards[0].tolist()) & set(shards[1].tolist())


def test_drop_last_and_too_large_batch() -> None:
    x = torch.zeros(25, 2)
    assert len(InMemoryLoader(x, 10, seed=0)) == 2
    assert len(InMemoryLoader(x, 10, seed=0, drop_last=False)) == 3
    with pytest.raises(PushforwardError, match="--batch-size"):
        InMemoryLoader(x, 26, seed=0)


def test_dynamic_binarization_redraws_pixels() -> None:
    x = torch.full((1000, 4), 0.3)
    loader = InMemoryLoader(x, 1000, seed=0, dynamic_binarize=True)
    a, b = next(loader.epoch(0)), next(loader.epoch(1))
    assert set(a.unique().tolist()) == {0.0, 1.0} and not torch.equal(a, b)
    assert abs(float(a.mean()) - 0.3) < 0.03
