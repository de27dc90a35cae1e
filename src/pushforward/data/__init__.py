"""Data sets by name: the 2-D toy sets, the image sets, and a user's own files.

Knows nothing of models. ``load_dataset`` is the one entry point; ``list_datasets`` tells where
each built-in set would come from without loading it.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import PushforwardError
from . import idx, images
from .dataset import (
    BINARIZE_MODES,
    Dataset,
    InMemoryLoader,
    binarize,
    binarize_held_out,
    resolve_binarize,
    validation_split,
)
from .download import cache_dir, not_found_fix
from .toy2d import N_TEST, N_TRAIN, TOY_MODES, TOY_SETS, TOY_STD, toy_split

IMAGE_SETS = ("digits", "fashion-mnist", "mnist", "cifar10")
BUILTIN = (*TOY_SETS, *IMAGE_SETS)
USER_PREFIXES = ("npy:", "idx:", "images:")

__all__ = [
    "BINARIZE_MODES",
    "BUILTIN",
    "MAX_CLASSES",
    "TOY_MODES",
    "TOY_SETS",
    "TOY_STD",
    "Dataset",
    "InMemoryLoader",
    "binarize",
    "binarize_held_out",
    "check_data_dir",
    "list_datasets",
    "load_dataset",
    "resolve_binarize",
    "validation_split",
]


def _load_user(spec: str) -> Dataset:
    prefix, _, rest = spec.partition(":")
    path = Path(rest).expanduser()
    xte = yte = ytr = None
    if prefix == "npy":
        kind, xtr = images.load_npy(path)
    elif prefix == "idx":
        xtr, ytr, xte, yte = images.load_idx_dir(path)
        kind = "images"
    else:
        xtr, ytr = images.load_image_folder(path)
        kind = "images"
    return Dataset(spec, kind, xtr, xte, str(path), ytr, yte)


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

    def area(x: torch.Tensor | None) -> torch.Tensor | None:
        return None if x is None else F.interpolate(x, size=(n, n), mode="area")

    train = area(ds.train)
    assert train is not None
    return Dataset(spec, "images", train, area(ds.test), ds.source, ds.train_labels, ds.test_labels)


def load_dataset(name: str, data_dir: str | None = None, test_data: str | None = None) -> Dataset:
    """Load a built-in set by name or a user's ``npy:PATH`` / ``idx:DIR`` / ``images:DIR``;
    ``NAME@N`` is that set's images area-downsampled to N x N pixels.

    ``test_data`` gives a user's set its held-out split (it must match the training shape).
    """
    base, at, size = name.rpartition("@")
    if at and base and "/" not in size:  # NAME@N, and not a path with an @ in a folder's name
        return _downsampled(load_dataset(base, data_dir, test_data), name, size)
    if name in TOY_SETS:
        ds = Dataset(
            name,
            "points",
            toy_split(name, "train"),
            toy_split(name, "test"),
            "generated",
            log_prob=TOY_SETS[name].log_prob,
        )
    elif name == "digits":
        ds = images.load_digits_set()
    elif name in ("fashion-mnist", "mnist"):
        ds = images.load_mnist_like(name, data_dir)
    elif name == "cifar10":
        ds = images.load_cifar10(data_dir)
    elif name.startswith(USER_PREFIXES):
        ds = _load_user(name)
    else:
        raise PushforwardError(
            f"--data {name!r} is not a known data set; choose one of {', '.join(BUILTIN)}, "
            f"or npy:PATH, idx:DIR, images:DIR"
        )
    if test_data:
        held = load_dataset(test_data, data_dir)
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
    rows: list[dict[str, object]] = []
    for name in TOY_SETS:
        exact = "exact log_prob" if TOY_SETS[name].log_prob else "no closed-form density"
        rows.append(
            dict(name=name, shape=(2,), train=N_TRAIN, test=N_TEST, source=f"generated ({exact})")
        )
    d = images.load_digits_set()
    rows.append(
        dict(
            name="digits",
            shape=d.shape,
            train=len(d.train),
            test=len(d.split("test")),
            source=d.source,
        )
    )
    for name in ("fashion-mnist", "mnist"):
        folder = images.locate_mnist(name, data_dir)
        row: dict[str, object] = dict(name=name, shape=(1, 28, 28), train=None, test=None)
        if folder is None:
            row["source"] = (
                f"not found (will download into {cache_dir() / name}); " + not_found_fix(name)
            )
        else:
            fix = "replace it"
            for split, (stem, _) in images.MNIST_FILES.items():
                path = images._find(folder, stem)
                assert path is not None
                row[split] = idx.idx_header(path, fix)[0]
            row["source"] = str(folder)
        rows.append(row)
    where = images.locate_cifar(data_dir)
    rows.append(
        dict(
            name="cifar10",
            shape=(3, 32, 32),
            train=50_000 if where else None,
            test=10_000 if where else None,
            source=str(where)
            if where
            else f"not found (will download into {cache_dir() / 'cifar10'}); "
            + not_found_fix("cifar10"),
        )
    )
    return rows
