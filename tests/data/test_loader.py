"""The in-memory batcher: every example once per epoch, seeded order, disjoint DDP shards, and
each batch's labels gathered with it."""

from __future__ import annotations

import pytest
import torch

from pushforward.data import InMemoryLoader
from pushforward.errors import PushforwardError


def xs(loader: InMemoryLoader, epoch: int) -> torch.Tensor:
    """The first column of an epoch's examples, in order."""
    return torch.cat([x for x, _ in loader.epoch(epoch)])[:, 0]


def test_each_epoch_is_a_seeded_permutation() -> None:
    x = torch.arange(100.0)[:, None]
    loader = InMemoryLoader(x, 10, seed=0)
    e0 = xs(loader, 0)
    assert sorted(e0.tolist()) == list(range(100))
    assert torch.equal(e0, xs(InMemoryLoader(x, 10, seed=0), 0))
    assert not torch.equal(e0, xs(loader, 1))
    assert not torch.equal(e0, xs(InMemoryLoader(x, 10, seed=1), 0))
    assert all(y is None for _, y in loader.epoch(0))  # no labels given: none yielded


def test_labels_follow_their_examples_and_the_order_is_unchanged() -> None:
    x = torch.arange(100.0)[:, None]
    labels = torch.arange(100) * 7 % 10
    plain = InMemoryLoader(x, 10, seed=3)
    labelled = InMemoryLoader(x, 10, seed=3, labels=labels)
    assert torch.equal(xs(plain, 2), xs(labelled, 2))  # the same permutation with labels
    for xb, yb in labelled.epoch(2):
        assert yb is not None and torch.equal(yb, labels[xb[:, 0].long()])
    # a resumed epoch skips batches and still pairs each example with its label
    skipped = list(labelled.epoch(2, skip=4))
    assert len(skipped) == 6
    assert all(torch.equal(yb, labels[xb[:, 0].long()]) for xb, yb in skipped)


def test_ranks_take_disjoint_shards_of_the_same_order() -> None:
    x = torch.arange(103.0)[:, None]
    shards = [xs(InMemoryLoader(x, 5, seed=2, rank=r, world=2), 3) for r in (0, 1)]
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
    a, b = next(loader.epoch(0))[0], next(loader.epoch(1))[0]
    assert set(a.unique().tolist()) == {0.0, 1.0} and not torch.equal(a, b)
    assert abs(float(a.mean()) - 0.3) < 0.03
