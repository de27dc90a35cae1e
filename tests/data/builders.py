"""Writers for small data files in the real formats, shared by the data tests."""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pushforward.data import Dataset

_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D}


def idx_bytes(arr: np.ndarray) -> bytes:
    code = _CODES[arr.dtype]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, arr: np.ndarray, gz: bool = False) -> Path:
    data = idx_bytes(arr)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_mnist_folder(folder: Path, n_train: int = 30, n_test: int = 10, gz: bool = True) -> Path:
    """An MNIST-layout folder of random 28x28 images with labels."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(
            folder / f"{prefix}-images-idx3-ubyte{suffix}",
            rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
            gz,
        )
        write_idx(
            folder / f"{prefix}-labels-idx1-ubyte{suffix}",
            rng.integers(0, 10, n, dtype=np.uint8),
            gz,
        )
    return folder


def cifar_bytes(n: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    rec = np.concatenate([rng.integers(0, 10, (n, 1)), rng.integers(0, 256, (n, 3072))], 1)
    return rec.astype(np.uint8).tobytes()


CIFAR_NAMES = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]


def write_cifar_folder(folder: Path, n: int = 10) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(CIFAR_NAMES):
        (folder / name).write_bytes(cifar_bytes(n, seed=i))
    return folder


def write_cifar_tar(path: Path, n: int = 10) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for i, name in enumerate(CIFAR_NAMES):
            data = cifar_bytes(n, seed=i)
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_images(
    folder: Path, n: int, size: tuple[int, int] = (6, 5), mode: str = "L", ext: str = "png"
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n)
    for i in range(n):
        shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(
            folder / f"{i:03d}.{ext}"
        )
    return folder


def shaped(shape: tuple[int, ...], n: int = 64) -> Dataset:
    """A small random data set of examples shaped ``shape`` (points or images), for building
    models with their data-dependent defaults."""
    kind = "images" if len(shape) == 3 else "points"
    train = torch.rand(n, *shape, generator=torch.Generator().manual_seed(0))
    return Dataset(name="shaped", kind=kind, train=train, test=None, source="generated")
