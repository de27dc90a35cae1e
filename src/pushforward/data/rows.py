"""Examples that stay on disk: a memory-mapped array read a chunk or a batch at a time.

A data set larger than ``--data-memory`` is not loaded: its file is mapped (nothing is read)
and :class:`Rows` turns the rows asked for into float32 examples, as loading would have (the
same values, bit for bit), so a model trains and is scored the same either way. The process's
own memory then grows with the batch and chunk sizes, not with the file; the pages of the file
the OS caches are its to drop.

Code that reads every example goes through :func:`chunks` and :func:`take`, which accept an
in-memory tensor as well, so one path serves both.

May import, of this package: errors, limits.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import numpy as np
import torch

from ..errors import PushforwardError
from ..limits import gib

CHUNK_BYTES = 4 * 2**20  # float32 examples read per chunk of a pass over the data


class Rows:
    """Rows of a (memory-mapped) array ``array`` [N, ...] as float32 examples [n, *shape]:
    integer pixels divided by 255, a missing channel added, channels-last moved first.
    ``index`` [M] restricts it to those rows, in that order (a validation split's rest)."""

    def __init__(
        self,
        array: np.ndarray,
        source: str,
        *,
        scale: float | None = None,
        channels_last: bool = False,
        index: np.ndarray | None = None,
    ) -> None:
        self.array, self.source, self.scale = array, source, scale
        self.channels_last, self.index = channels_last, index
        example = tuple(array.shape[1:])
        if array.ndim == 3:
            example = (1, *example)
        elif channels_last:
            example = (example[2], example[0], example[1])
        n = len(array) if index is None else len(index)
        self.shape = torch.Size((n, *example))

    dtype = torch.float32
    device = torch.device("cpu")

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"Rows({self.source}, shape={tuple(self.shape)})"

    def _convert(self, a: np.ndarray) -> torch.Tensor:
        """Raw rows [n, ...] -> float32 examples [n, *shape], as the in-memory loader makes them."""
        if a.ndim == 3:
            a = a[:, None]
        elif self.channels_last:
            a = a.transpose(0, 3, 1, 2)
        with np.errstate(over="ignore"):  # a fresh array: never a view of the mapped file
            out = np.array(a, dtype=np.float32, order="C", copy=True)
        if self.scale is not None:
            out /= np.float32(self.scale)
        return torch.from_numpy(out)

    def _read(self, rows: np.ndarray | slice) -> torch.Tensor:
        if self.index is not None:
            picked = self.index[rows]
            order = np.argsort(picked, kind="stable")  # read in file order, then put back
            got = self._convert(self.array[picked[order]])
            out = torch.empty_like(got)
            out[torch.from_numpy(order)] = got
            return out
        return self._convert(self.array[rows])

    def __getitem__(self, key: int | slice | torch.Tensor) -> torch.Tensor:
        """Examples by position: one [*shape] (an int), a slice, or a tensor of indices [n]
        (or a boolean mask [N]) -> [n, *shape]."""
        if isinstance(key, int):
            return self._read(slice(key, key + 1 if key != -1 else None))[0]
        if isinstance(key, slice):
            return self._read(slice(*key.indices(len(self))))
        idx = key.cpu()
        if idx.dtype == torch.bool:
            idx = idx.nonzero().flatten()
        return self._read(idx.long().numpy())

    def subset(self, idx: torch.Tensor) -> Rows:
        """These rows restricted to the positions ``idx`` [M] (no example is read)."""
        picked = idx.cpu().long().numpy()
        if self.index is not None:
            picked = self.index[picked]
        return Rows(
            self.array,
            self.source,
            scale=self.scale,
            channels_last=self.channels_last,
            index=picked,
        )

    def to(self, device: torch.device | str) -> Rows:
        """Rows stay on the host; each batch moves to the model's device on its own."""
        return self

    def cpu(self) -> Rows:
        return self


# A data set's examples: a tensor held in memory, or rows read from disk on demand.
Examples = torch.Tensor | Rows


def chunk_rows(x: Examples | torch.Size, max_bytes: int = CHUNK_BYTES) -> int:
    """Rows of float32 examples (of x, or of this shape [N, ...]) in ``max_bytes`` (at least
    one)."""
    shape = x if isinstance(x, torch.Size) else x.shape
    return max(1, max_bytes // (4 * max(1, math.prod(shape[1:]))))


def chunks(x: Examples, rows: int | None = None) -> Iterator[torch.Tensor]:
    """x in order, ``rows`` examples at a time (default: CHUNK_BYTES of them)."""
    rows = rows or chunk_rows(x)
    for s in range(0, len(x), rows):
        yield x[s : s + rows]


def take(x: Examples, idx: torch.Tensor) -> torch.Tensor:
    """The examples at positions ``idx`` [n]: [n, *shape] (on x's device for a tensor)."""
    return x[idx.to(x.device)]


def fill(shape: torch.Size, parts: Iterable[torch.Tensor], src: str, fix: str) -> torch.Tensor:
    """One float32 tensor of ``shape`` [N, ...] filled from ``parts`` [n, ...] in order, so a
    reader never holds a second full copy; an allocation the system refuses is one line."""
    try:
        out = torch.empty(shape, dtype=torch.float32)
    except RuntimeError:
        raise PushforwardError(
            f"{src}: its examples take {gib(4 * math.prod(shape))} as float32, more than this "
            f"process may allocate; {fix}"
        ) from None
    s = 0
    for part in parts:
        out[s : s + len(part)] = part
        s += len(part)
    return out


def in_memory(x: Examples) -> torch.Tensor:
    """x as one tensor: only for data known to be small (a split's first examples, a sample)."""
    return x if isinstance(x, torch.Tensor) else x[:]


def moments(x: Examples) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-coordinate mean and standard deviation (unbiased) of x [N, *shape] in one pass, in
    float64 (Chan et al.'s pairwise update of each chunk's mean and sum of squares)."""
    n, mean, m2 = 0, None, None
    for c in chunks(x):
        c = c.double()
        cm = c.mean(0)
        cs = ((c - cm) ** 2).sum(0)
        if mean is None or m2 is None:
            n, mean, m2 = len(c), cm, cs
            continue
        total = n + len(c)
        delta = cm - mean
        mean = mean + delta * (len(c) / total)
        m2 = m2 + cs + delta**2 * (n * len(c) / total)
        n = total
    if mean is None or m2 is None:
        raise PushforwardError("no examples to standardise")
    return mean, (m2 / max(1, n - 1)).sqrt()
