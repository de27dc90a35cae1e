"""The in-memory data set every model trains on, and the index-based batcher.

May import, of this package: data/rows, errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import torch

from ..errors import PushforwardError
from .rows import Examples, Rows, take


@dataclass(frozen=True)
class Dataset:
    """One data set held as tensors: float32 examples, images scaled to [0, 1].

    ``log_prob`` is the exact density where one is known (toy sets), so metrics can use the truth.
    """

    name: str
    kind: str  # "points" ([N, D]) or "images" ([N, C, H, W])
    train: Examples  # [N, *shape]: a tensor, or rows read from disk (data/rows.py)
    test: Examples | None
    source: str
    train_labels: torch.Tensor | None = None  # [N] int64
    test_labels: torch.Tensor | None = None
    log_prob: Callable[[torch.Tensor], torch.Tensor] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one example."""
        return tuple(self.train.shape[1:])

    @property
    def dim(self) -> int:
        return int(self.train[0].numel())

    def split(self, name: str) -> Examples:
        x = self.train if name == "train" else self.test
        if x is None:
            raise PushforwardError(
                f"data {self.name!r} has no {name} split; pass --data DATA to eval, or "
                f"--test-data DATA when training"
            )
        return x

    def to(self, device: torch.device) -> Dataset:
        test = None if self.test is None else self.test.to(device)
        return replace(self, train=self.train.to(device), test=test)

    def binarized(self, seed: int = 0) -> Dataset:
        """Static binarization: each pixel drawn once from Bernoulli(intensity), fixed by seed."""
        if self.kind != "images":
            raise PushforwardError(f"--binarize applies to images; {self.name!r} is 2-D points")
        g = torch.Generator().manual_seed(seed)
        train = bernoulli(held_whole(self.train, "--binarize static"), g)
        test = None if self.test is None else bernoulli(held_whole(self.test, "--binarize"), g)
        return replace(self, train=train, test=test)


@dataclass(frozen=True)
class Source:
    """A built-in data set, as the registry in ``data/__init__.py`` holds it: how to load it
    (given ``--data-dir``) and the row ``pushforward data list`` shows for it, which says where it
    was found without loading it (shape, train and test sizes, source; None where unknown)."""

    kind: str  # "points" or "images"
    load: Callable[[str | None], Dataset]
    row: Callable[[str | None], dict[str, Any]]


def held_whole(x: Examples, what: str) -> torch.Tensor:
    """x, which ``what`` transforms as a whole: refused for data read from disk."""
    if isinstance(x, Rows):
        raise PushforwardError(
            f"{what} draws every pixel of {x.source} at once, which is larger than --data-memory "
            "and read from disk; use --binarize dynamic on training data only, or raise "
            "--data-memory"
        )
    return x


BINARIZE_MODES = ("auto", "none", "dynamic", "static")


def bernoulli(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each pixel of x [N, ...] drawn once from Bernoulli(intensity), on the host generator so
    the draw is the same on every device."""
    return torch.bernoulli(x.cpu(), generator=generator).to(x)


def resolve_binarize(mode: str, bernoulli_likelihood: bool, kind: str) -> str:
    """``auto`` becomes ``dynamic`` for a Bernoulli likelihood on images, else ``none``."""
    if mode != "auto":
        return mode
    return "dynamic" if bernoulli_likelihood and kind == "images" else "none"


def binarize(ds: Dataset, mode: str) -> Dataset:
    """Apply ``--binarize``: static draws every pixel once; dynamic leaves the training images
    to be redrawn per batch (by :class:`InMemoryLoader`) and binarizes the held-out split once,
    with a fixed seed, so that evaluations are comparable (after the same draws for the
    training split; where that split is read from disk, the held-out one is drawn alone)."""
    if mode in ("none", "auto"):
        return ds
    if ds.kind != "images":
        raise PushforwardError(f"--binarize {mode} applies to images; {ds.name!r} is points")
    if mode == "static":
        return ds.binarized(seed=0)
    if ds.test is None:
        return ds
    if isinstance(ds.train, Rows):
        test = held_whole(ds.test, "--binarize of the held-out split")
        return replace(ds, test=bernoulli(test, torch.Generator().manual_seed(1)))
    return replace(ds, test=ds.binarized(seed=1).test)


def binarize_held_out(x: Examples, mode: str, kind: str) -> Examples:
    """Other held-out data (``eval --data``) as a binarizing run sees it: drawn once, seed 1."""
    if mode in ("static", "dynamic") and kind == "images":
        return bernoulli(held_whole(x, "--binarize"), torch.Generator().manual_seed(1))
    return x


def validation_split(
    ds: Dataset, n: int, binarize_mode: str
) -> tuple[Dataset, torch.Tensor | None, torch.Tensor | None]:
    """``--validation N``: N training examples, chosen by a fixed shuffle (the same for every
    seed), leave the training set; under dynamic binarization they are binarized once, like the
    test split, so their score moves only with the weights. Returns the data left for training,
    the examples and their labels (None without labels). n = 0: no split."""
    if n == 0:
        return ds, None, None
    if not 0 < n < len(ds.train):
        raise PushforwardError(
            f"--validation {n}: give between 1 and {len(ds.train) - 1} examples "
            f"({ds.name} has {len(ds.train)} for training)"
        )
    held = torch.zeros(len(ds.train), dtype=torch.bool)
    held[torch.randperm(len(ds.train), generator=torch.Generator().manual_seed(0))[:n]] = True
    val = take(ds.train, held.nonzero().flatten())  # [n, *shape]
    if binarize_mode == "dynamic":
        val = bernoulli(val, torch.Generator().manual_seed(2))
    y = ds.train_labels
    rest = (~held).nonzero().flatten()  # in order
    train = ds.train.subset(rest) if isinstance(ds.train, Rows) else ds.train[rest]
    left = replace(ds, train=train, train_labels=None if y is None else y[rest])
    return left, val, None if y is None else y[held]


Batch = tuple[torch.Tensor, torch.Tensor | None]  # examples [B, *shape], their labels [B]


class InMemoryLoader:
    """Batches of one on-device tensor by index: no DataLoader workers, no copies to the host.
    Each batch comes with its labels (``labels`` [N], gathered by the same indices) or None.

    Each epoch's order is a permutation seeded by (seed, epoch), so a run's data order is a pure
    function of its seed and can be replayed on resume. Under DDP each rank takes every
    ``world``-th index of the same permutation. ``dynamic_binarize`` redraws pixels every batch.
    """

    def __init__(
        self,
        x: Examples,
        batch_size: int,
        seed: int,
        *,
        rank: int = 0,
        world: int = 1,
        drop_last: bool = True,
        dynamic_binarize: bool = False,
        labels: torch.Tensor | None = None,
        device: torch.device | None = None,
    ) -> None:
        if batch_size < 1:
            raise PushforwardError(f"--batch-size {batch_size}: must be at least 1")
        per_rank = len(x) // world
        if drop_last and per_rank < batch_size:
            raise PushforwardError(
                f"--batch-size {batch_size} is larger than the {per_rank} training examples per "
                f"process; lower --batch-size"
            )
        self.x, self.batch_size, self.seed = x, batch_size, seed
        self.rank, self.world, self.drop_last = rank, world, drop_last
        self.dynamic_binarize = dynamic_binarize
        self.labels = None if labels is None else labels.to(x.device)
        self.device = device or x.device  # where batches go (rows read from disk: the model's)

    def __len__(self) -> int:
        n = len(self.x) // self.world
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[Batch]:
        """The batches of one epoch, after its first ``skip`` (whose binarization noise is still
        drawn, so the rest match an uninterrupted epoch exactly)."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        perm = torch.randperm(len(self.x), generator=g)
        perm = perm[: len(perm) // self.world * self.world][self.rank :: self.world]
        perm = perm.to(self.x.device)
        for i in range(len(self)):
            idx = perm[i * self.batch_size : (i + 1) * self.batch_size]
            if i < skip:  # only the noise is drawn; the batch itself is never gathered
                if self.dynamic_binarize:
                    torch.rand((len(idx), *self.x.shape[1:]), generator=g)
                continue
            batch = self.x[idx].to(self.device)  # [B, ...]
            if self.dynamic_binarize:
                noise = torch.rand(batch.shape, generator=g).to(batch.device)
                batch = (noise < batch).to(batch.dtype)
            y = None if self.labels is None else self.labels[idx].to(self.device)
            yield batch, y
