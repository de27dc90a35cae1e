"""A user's .npy array (``--data npy:PATH``): its header is read and checked by hand and its
data mapped, never unpickled. Examples that fit in ``--data-memory`` are converted into one
float32 tensor a chunk at a time (no second full copy); a larger array stays mapped and is read
as :class:`Rows`. Either way every value is checked first, in one pass of bounded memory.

May import, of this package: data/rows, errors, limits.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ..errors import PushforwardError
from .rows import Examples, Rows, chunk_rows, chunks, fill

FIX = "save a numeric array of shape [N, D] (points) or [N, H, W] / [N, C, H, W] (images)"


def _header(path: Path, src: str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, Fortran order, dtype, data offset) from the NPY header, which is parsed as a
    literal: nothing in it is run."""
    with open(path, "rb") as f:
        magic = f.read(6)
        if magic.startswith(b"PK"):
            raise PushforwardError(f"{src}: is an .npz archive; save one array with numpy.save")
        if magic != b"\x93NUMPY":
            raise PushforwardError(
                f"{src}: not an .npy file (it does not start with the NPY header); save the "
                "array with numpy.save"
            )
        f.seek(0)
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"NPY format version {version[0]}.{version[1]} is not read")
        except Exception as e:  # numpy raises many types for a bad header
            raise PushforwardError(
                f"{src}: truncated or unreadable .npy header ({type(e).__name__}: {e}); re-save "
                "it with numpy.save"
            ) from None
        return tuple(int(s) for s in shape), bool(fortran), np.dtype(dtype), f.tell()


def open_npy(path: Path) -> tuple[str, np.ndarray, bool]:
    """The array of an .npy file, mapped read-only and checked for shape and type (not yet
    for values): (kind, array [N, ...], channels last)."""
    src = f"npy:{path}"
    if not path.exists():
        raise PushforwardError(f"{src}: file not found; check the path")
    if not path.is_file():
        raise PushforwardError(f"{src}: not a regular file (a folder, pipe or device)")
    shape, fortran, dtype, offset = _header(path, src)
    if dtype.hasobject:
        raise PushforwardError(
            f"{src}: holds pickled Python objects, which are never loaded; save a numeric array"
        )
    if dtype.kind not in "biuf" or dtype.subdtype is not None:
        raise PushforwardError(f"{src}: arrays of dtype {dtype} are not supported; {FIX}")
    if len(shape) not in (2, 3, 4) or 0 in shape:
        raise PushforwardError(f"{src}: array of shape {shape}; {FIX}")
    channels_last = False
    if len(shape) == 4 and shape[1] not in (1, 3):
        if shape[3] not in (1, 3):
            raise PushforwardError(
                f"{src}: images of shape {shape} have neither 1 nor 3 channels; {FIX}"
            )
        channels_last = True  # [N, H, W, C]
    need = offset + math.prod(shape) * dtype.itemsize
    size = path.stat().st_size
    if size < need:
        raise PushforwardError(
            f"{src}: truncated: its header describes {need:,} bytes but the file has {size:,}; "
            "re-save it with numpy.save"
        )
    order: Literal["C", "F"] = "F" if fortran else "C"
    arr = np.memmap(str(path), dtype=dtype, mode="r", offset=offset, shape=shape, order=order)
    return ("points" if len(shape) == 2 else "images"), arr, channels_last


def _check_values(kind: str, arr: np.ndarray, rows: Rows, src: str) -> None:
    """Every value, a chunk at a time: finite, within float32, pixels within their range."""
    step = chunk_rows(rows)
    bad, lo, hi = 0, math.inf, -math.inf
    for s in range(0, len(arr), step):
        raw = np.asarray(arr[s : s + step])
        if raw.dtype.kind == "f":
            bad += int(raw.size - np.isfinite(raw).sum())
        if bad:
            continue
        if kind == "points":
            if not torch.isfinite(rows[s : s + step]).all():
                raise PushforwardError(
                    f"{src}: values beyond float32's range (|x| > 3.4e38); rescale them"
                )
        else:
            lo, hi = min(lo, float(raw.min())), max(hi, float(raw.max()))
    if bad:
        raise PushforwardError(f"{src}: {bad} NaN or inf values; remove or replace them")
    if kind == "images" and arr.dtype.kind in "biu" and (lo < 0 or hi > 255):
        raise PushforwardError(
            f"{src}: integer pixel values in [{lo:g}, {hi:g}], outside 0..255; rescale them"
        )
    if kind == "images" and arr.dtype.kind == "f" and (lo < 0 or hi > 1):
        raise PushforwardError(
            f"{src}: float pixel values in [{lo:g}, {hi:g}], outside [0, 1]; divide by 255 or "
            "rescale to [0, 1]"
        )


def load_npy(path: Path, memory: int | None = None) -> tuple[str, Examples]:
    """(kind, examples) of an .npy file: a float32 tensor when its examples take at most
    ``memory`` bytes (None: no limit), else rows read from the mapped file on demand."""
    kind, arr, channels_last = open_npy(path)
    src = f"npy:{path}"
    scale = 255.0 if kind == "images" and arr.dtype.kind in "biu" else None
    rows = Rows(arr, src, scale=scale, channels_last=channels_last)
    _check_values(kind, arr, rows, src)
    if memory is not None and 4 * math.prod(rows.shape) > memory:
        return kind, rows
    fix = "give --data-memory below that to read them from disk"
    return kind, fill(rows.shape, chunks(rows), src, fix)
