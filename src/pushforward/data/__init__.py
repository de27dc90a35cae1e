"""Data sets by name: the 2-D toy sets, the image sets, and a user's own files.

Knows nothing of models. ``DATASETS`` is the registry of built-in sets (a new one is a
:class:`Source` in its own module plus one line here) and ``USER`` the table of a user's own
formats; ``load_dataset`` is the one entry point and ``list_datasets`` tells where each built-in
set would come from without loading it.

May import, of this package: data/dataset, data/images, data/rows, data/toy2d, errors, limits.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import PushforwardError
from ..limits import available_bytes
from . import images
from .dataset import (
    BINARIZE_MODES,
    Batch,
    Dataset,
    InMemoryLoader,
    Source,
    binarize,
    binarize_held_out,
    resolve_binarize,
    validation_split,
)
from .images import find_levels
from .rows import Examples, Rows, chunk_rows, chunks, in_memory, moments, take
from .toy2d import TOY_MODES, TOY_SETS, TOY_SOURCES, TOY_STD

DATASETS: dict[str, Source] = {
    **TOY_SOURCES,
    "digits": images.DIGITS,
    "fashion-mnist": images.FASHION_MNIST,
    "mnist": images.MNIST,
    "cifar10": images.CIFAR10,
}
# a user's own data, ``PREFIX:PATH``: the loader of each prefix, given the name and the path
USER: dict[str, Callable[[str, Path, int | None], Dataset]] = {
    "npy": images.npy_dataset,
    "idx": images.idx_dataset,
    "images": images.folder_dataset,
}
BUILTIN = tuple(DATASETS)
USER_PREFIXES = tuple(f"{prefix}:" for prefix in USER)

__all__ = [
    "BINARIZE_MODES",
    "BUILTIN",
    "DATASETS",
    "MAX_CLASSES",
    "TOY_MODES",
    "TOY_SETS",
    "TOY_STD",
    "USER",
    "Batch",
    "Dataset",
    "Examples",
    "InMemoryLoader",
    "Rows",
    "Source",
    "binarize",
    "binarize_held_out",
    "check_data_dir",
    "chunk_rows",
    "chunks",
    "find_levels",
    "in_memory",
    "list_datasets",
    "load_dataset",
    "moments",
    "resolve_binarize",
    "take",
    "validation_split",
]


def _downsampled(ds: Dataset, spec: str, size: str) -> Dataset:
    """``ds`` with every image averaged down to size x size pixels (area downsampling)."""
    if ds.kind != "images":
        raise PushforwardError(f"--data {spec}: only images can be downsampled; drop @{size}")
    h = ds.shape[1]
    if not size.isdigit() or not 1 <= int(size) <= h:
        raise PushforwardError(
            f"--data {spec}: @{size} must be a whole number of pixels from 1 to {h}, e.g. "
            f"{spec.rpartition('@')[0]}@{h // 2}"
        )
    n = int(size)

    def area(x: Examples | None) -> torch.Tensor | None:
        """x downsampled a chunk at a time, into one tensor (data read from disk too)."""
        if x is None:
            return None
        out = torch.empty(len(x), x.shape[1], n, n)
        step = chunk_rows(x)
        for s, c in zip(range(0, len(x), step), chunks(x, step), strict=True):
            out[s : s + step] = F.interpolate(c, size=(n, n), mode="area")
        return out

    train = area(ds.train)
    assert train is not None
    return Dataset(spec, "images", train, area(ds.test), ds.source, ds.train_labels, ds.test_labels)


def load_dataset(
    name: str,
    data_dir: str | None = None,
    test_data: str | None = None,
    data_memory: float | None = None,
) -> Dataset:
    """Load a built-in set by name or a user's ``npy:PATH`` / ``idx:DIR`` / ``images:DIR``;
    ``NAME@N`` is that set's images area-downsampled to N x N pixels.

    ``test_data`` gives a user's set its held-out split (it must match the training shape).
    ``data_memory`` (GiB; default half the memory available) bounds the examples a user's set
    holds in memory: a larger npy file is read from disk on demand, other formats are refused.
    """
    memory = memory_bytes(data_memory)
    base, at, size = name.rpartition("@")
    if at and base and "/" not in size:  # NAME@N, and not a path with an @ in a folder's name
        return _downsampled(load_dataset(base, data_dir, test_data, data_memory), name, size)
    prefix, colon, rest = name.partition(":")
    if name in DATASETS:
        ds = DATASETS[name].load(data_dir)
    elif colon and prefix in USER:
        ds = USER[prefix](name, Path(rest).expanduser(), memory)
    else:
        raise PushforwardError(
            f"--data {name!r} is not a known data set; choose one of {', '.join(BUILTIN)}, "
            f"or npy:PATH, idx:DIR, images:DIR"
        )
    if test_data:
        held = load_dataset(test_data, data_dir, data_memory=data_memory)
        if held.train.shape[1:] != ds.train.shape[1:]:
            raise PushforwardError(
                f"--test-data {test_data}: examples of shape {tuple(held.train.shape[1:])}, but "
                f"--data {name} has {tuple(ds.train.shape[1:])}; they must match"
            )
        ds = Dataset(
            ds.name,
            ds.kind,
            ds.train,
            held.train,
            ds.source,
            ds.train_labels,
            held.train_labels,
            ds.log_prob,
        )
    return _checked(ds)


def memory_bytes(data_memory: float | None) -> int:
    """--data-memory in bytes: the GiB given, or half the memory available now."""
    return int(data_memory * 2**30) if data_memory is not None else available_bytes() // 2


MIN_EXAMPLES = 10  # the fewest a split may hold: the metrics compare 5th neighbours and FIDs
MAX_CLASSES = 1000  # labels are class indices 0..999 (ImageNet's count); a feature net has a head


def _checked(ds: Dataset) -> Dataset:
    """Refuse data no model or metric can use, whatever format it came from: a split with too
    few examples or an empty dimension, and labels that are not class indices (a label of two
    billion would size a classifier's head)."""
    splits = [("train", ds.train, ds.train_labels)]
    if ds.test is not None:
        splits.append(("test", ds.test, ds.test_labels))
    for split, x, y in splits:
        if len(x) < MIN_EXAMPLES or 0 in x.shape:
            raise PushforwardError(
                f"{ds.name}: its {split} split holds {len(x)} examples of shape "
                f"{tuple(x.shape[1:])}; give at least {MIN_EXAMPLES} non-empty examples"
            )
        if y is not None and len(y) and not 0 <= int(y.min()) <= int(y.max()) < MAX_CLASSES:
            raise PushforwardError(
                f"{ds.name}: {split} labels from {int(y.min())} to {int(y.max())}; labels are "
                f"class indices from 0 to {MAX_CLASSES - 1}: renumber them"
            )
    return ds


def check_data_dir(data_dir: str | None) -> None:
    """Refuse a --data-dir that is not a folder, where a user gives one (train, data list):
    searched silently, it would hide a typo behind the sets found elsewhere."""
    if data_dir is not None and not Path(data_dir).is_dir():
        raise PushforwardError(f"--data-dir {data_dir}: no such folder; check the path")


def list_datasets(data_dir: str | None = None) -> list[dict[str, object]]:
    """One row per built-in set: shape, sizes, and where it was found (or how to get it)."""
    return [{"name": name, **source.row(data_dir)} for name, source in DATASETS.items()]
