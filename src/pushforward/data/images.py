"""Image data: the bundled digits, the MNIST family and CIFAR-10 found locally or downloaded, and a
user's own arrays, IDX folders and image folders. Everything comes back as float32 in [0, 1].

May import, of this package: data/dataset, data/download, data/idx, data/npy, errors, limits.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import PushforwardError
from ..limits import gib
from . import idx
from .dataset import Dataset, Source
from .download import cache_dir, download, not_found_fix, search_dirs
from .npy import load_npy
from .rows import Examples, Rows, chunks, fill

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


def check_claim(values: int, memory: int | None, src: str, what: str, fix: str) -> None:
    """Refuse data of ``values`` numbers (4 bytes each as float32) beyond ``memory`` bytes, before
    any of it is read: these formats are held in memory whole."""
    if memory is not None and 4 * values > memory:
        raise PushforwardError(
            f"{src}: its {what} take {gib(4 * values)} as float32, more than --data-memory "
            f"{gib(memory)} allows; raise --data-memory, or {fix}"
        )


def _to_unit(images: np.ndarray, src: str) -> torch.Tensor:
    """uint8 images [N, C, H, W] as float32 in [0, 1], converted a chunk at a time."""
    rows = Rows(images, src, scale=255.0)
    return fill(rows.shape, chunks(rows), src, "free memory or use a machine with more")


def load_digits_set() -> Dataset:
    """scikit-learn's bundled 8x8 digits (0..16 grey levels), a fixed seeded 80/20 split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy((d.images / 16.0).astype(np.float32))[:, None]  # [1797, 1, 8, 8]
    y = torch.from_numpy(d.target.astype(np.int64))
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    n_test = 360
    tr, te = perm[n_test:], perm[:n_test]
    return Dataset("digits", "images", x[tr], x[te], "scikit-learn (bundled)", y[tr], y[te])


def _find(path: Path, stem: str) -> Path | None:
    for cand in (path / stem, path / f"{stem}.gz"):
        if cand.is_file():
            return cand
    return None


def locate_mnist(name: str, data_dir: str | None) -> Path | None:
    """First folder holding all four IDX files of ``name`` (plain or .gz)."""
    for d in search_dirs(name, data_dir):
        if all(_find(d, stem) for pair in MNIST_FILES.values() for stem in pair):
            return d
    return None


def load_mnist_like(name: str, data_dir: str | None) -> Dataset:
    folder = locate_mnist(name, data_dir) or download(name)
    fix = f"replace it, or {not_found_fix(name)}"
    arrays = {}
    for split, (img_stem, lab_stem) in MNIST_FILES.items():
        img_path, lab_path = _find(folder, img_stem), _find(folder, lab_stem)
        assert img_path is not None and lab_path is not None
        images = idx.read_idx_images(img_path, fix)
        arrays[split] = (
            images,
            torch.from_numpy(idx.read_idx_labels(lab_path, len(images), fix)),
        )
    (xtr, ytr), (xte, yte) = arrays["train"], arrays["test"]
    return Dataset(name, "images", xtr, xte, str(folder), ytr, yte)


def locate_cifar(data_dir: str | None) -> Path | None:
    """A cifar-10-batches-bin folder or a cifar-10-binary.tar.gz in the searched folders."""
    for d in search_dirs("cifar10", data_dir):
        for cand in (d / "cifar-10-batches-bin", d):
            if all((cand / n).is_file() for n in idx.CIFAR_TRAIN + idx.CIFAR_TEST):
                return cand
        if (d / "cifar-10-binary.tar.gz").is_file():
            return d / "cifar-10-binary.tar.gz"
    return None


def load_cifar10(data_dir: str | None) -> Dataset:
    where = locate_cifar(data_dir) or download("cifar10") / "cifar-10-binary.tar.gz"
    fix = f"replace it, or {not_found_fix('cifar10')}"
    splits = idx.read_cifar_tar(where, fix) if where.is_file() else idx.read_cifar_dir(where, fix)
    (xtr, ytr), (xte, yte) = splits["train"], splits["test"]
    return Dataset(
        "cifar10",
        "images",
        _to_unit(xtr, str(where)),
        _to_unit(xte, str(where)),
        str(where),
        torch.from_numpy(ytr),
        torch.from_numpy(yte),
    )


def _digits_row(data_dir: str | None = None) -> dict[str, object]:
    d = load_digits_set()
    return dict(shape=d.shape, train=len(d.train), test=len(d.split("test")), source=d.source)


def _not_found(name: str, shape: tuple[int, ...]) -> dict[str, object]:
    """The row of a set that is not on this machine: where it would go, and how to get it."""
    where = f"not found (will download into {cache_dir() / name}); {not_found_fix(name)}"
    return dict(shape=shape, train=None, test=None, source=where)


def _mnist_row(name: str, data_dir: str | None) -> dict[str, object]:
    folder = locate_mnist(name, data_dir)
    if folder is None:
        return _not_found(name, (1, 28, 28))
    row: dict[str, object] = dict(shape=(1, 28, 28), train=None, test=None)
    for split, (stem, _) in MNIST_FILES.items():
        path = _find(folder, stem)
        assert path is not None
        row[split] = idx.open_idx(path, "replace it").dims[0]
    return {**row, "source": str(folder)}


def _cifar_row(data_dir: str | None) -> dict[str, object]:
    where = locate_cifar(data_dir)
    if where is None:
        return _not_found("cifar10", (3, 32, 32))
    return dict(shape=(3, 32, 32), train=50_000, test=10_000, source=str(where))


DIGITS = Source("images", lambda data_dir: load_digits_set(), _digits_row)
FASHION_MNIST = Source(
    "images",
    partial(load_mnist_like, "fashion-mnist"),
    partial(_mnist_row, "fashion-mnist"),
)
MNIST = Source("images", partial(load_mnist_like, "mnist"), partial(_mnist_row, "mnist"))
CIFAR10 = Source("images", load_cifar10, _cifar_row)


# ---------------------------------------------------------------- a user's own data


def load_idx_dir(
    folder: Path, memory: int | None = None
) -> tuple[Examples, torch.Tensor | None, Examples | None, torch.Tensor | None]:
    """IDX images in a folder: a '*train*' file (or the only one) and an optional 't10k'/'test'
    one. Plain files past ``memory`` bytes as float32 are read from disk on demand; gzip'd ones,
    which must be inflated whole, are refused from their headers before anything is read."""
    src = f"idx:{folder}"
    if not folder.is_dir():
        raise PushforwardError(f"{src}: folder not found; check the path")
    images = sorted(p for p in folder.iterdir() if "idx3" in p.name and p.is_file())
    if not images:
        raise PushforwardError(f"{src}: no IDX image file (name containing 'idx3') in the folder")
    test = [p for p in images if "t10k" in p.name or "test" in p.name]
    train = [p for p in images if p not in test]
    if len(train) != 1 or len(test) > 1:
        raise PushforwardError(
            f"{src}: expected one training IDX image file and at most one test file, found "
            f"{[p.name for p in images]}; keep one of each"
        )
    fix = "replace the file with a valid IDX file"
    headers = [idx.open_idx(p, fix) for p in train + test]
    inflated = [h for h in headers if h.gz]  # a plain file past the limit is read from disk
    gunzip = "gunzip them (a plain IDX file is read from disk a chunk at a time)"
    check_claim(sum(math.prod(h.dims) for h in inflated), memory, src, "gzip'd IDX files", gunzip)

    def read(path: Path) -> tuple[Examples, torch.Tensor | None]:
        x = idx.read_idx_images(path, fix, memory)
        label_path = path.with_name(path.name.replace("images", "labels").replace("idx3", "idx1"))
        y = None
        if label_path != path and label_path.is_file():
            y = torch.from_numpy(idx.read_idx_labels(label_path, len(x), fix))
        return x, y

    xtr, ytr = read(train[0])
    xte, yte = read(test[0]) if test else (None, None)
    if xte is not None and xte.shape[1:] != xtr.shape[1:]:
        raise PushforwardError(
            f"{src}: train images {tuple(xtr.shape[1:])} and test images {tuple(xte.shape[1:])} differ in size"
        )
    return xtr, ytr, xte, yte


_GREY = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N")
_WIDE = ("I", "I;16", "I;16B", "I;16L", "I;16N")  # 16-bit PNGs open in these modes


def _unit_pixels(pic: Image.Image, grey: bool, path: Path) -> np.ndarray:
    """One image's pixels as float32 in [0, 1] at the precision they were stored in: a 16-bit
    image is divided by 65535 (Pillow's convert("L") would clip it to 255, near white)."""
    if pic.mode in _WIDE:
        a = np.asarray(pic, dtype=np.float64)  # [H, W]
        if a.min() < 0 or a.max() > 65535:
            raise PushforwardError(
                f"{path}: {pic.mode} pixel values in [{a.min():g}, {a.max():g}], outside the "
                "16-bit range 0..65535; save it as an 8- or 16-bit PNG"
            )
        a = (a / 65535.0).astype(np.float32)
        return a if grey else np.repeat(a[:, :, None], 3, axis=2)
    if pic.mode == "F":
        raise PushforwardError(f"{path}: floating-point pixels; save it as an 8- or 16-bit PNG")
    return np.asarray(pic.convert("L" if grey else "RGB"), dtype=np.float32) / 255.0


def _image(path: Path, decode: bool) -> Image.Image:
    """An opened image: its header only, or its pixels too; an unreadable file is one line."""
    try:
        with Image.open(path) as im:
            if not decode:
                return im
            im.load()
            return im.copy()
    except Image.DecompressionBombError as e:  # a few KB that would decode to gigabytes
        raise PushforwardError(
            f"{path}: too large to decode ({e}); remove it or shrink the image"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise PushforwardError(
            f"{path}: not a readable image ({e}); remove or replace it"
        ) from None


def load_image_folder(
    folder: Path, memory: int | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """PNG/JPEG files of one size in a folder, or in class subfolders (which become labels).
    Every header is read first (sizes, modes), the claim refused past ``memory`` bytes as
    float32, then each image is decoded straight into its row of the one tensor."""
    src = f"images:{folder}"
    if not folder.is_dir():
        raise PushforwardError(f"{src}: folder not found; check the path")
    is_img = lambda p: p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES  # noqa: E731
    files = [(p, -1) for p in sorted(folder.iterdir()) if is_img(p)]
    classes = sorted(d for d in folder.iterdir() if d.is_dir())
    for label, d in enumerate(classes):
        files += [(p, label) for p in sorted(d.iterdir()) if is_img(p)]
    if not files:
        raise PushforwardError(f"{src}: no .png or .jpg images in the folder or its subfolders")
    heads = [_image(path, decode=False) for path, _ in files]
    grey = all(h.mode in _GREY for h in heads)
    size = heads[0].size
    for (path, _), head in zip(files, heads, strict=True):
        if head.size != size:
            raise PushforwardError(
                f"{path}: {head.size[0]}x{head.size[1]} pixels but {files[0][0].name} is "
                f"{size[0]}x{size[1]}; resize all images to one size"
            )
    shape = torch.Size((len(files), 1 if grey else 3, size[1], size[0]))  # [N, C, H, W]
    fix = "save them as one .npy array (read from disk a chunk at a time)"
    check_claim(math.prod(shape), memory, src, "images", fix)
    parts = (
        torch.from_numpy(a[None, None] if grey else a.transpose(2, 0, 1)[None])
        for a in (_unit_pixels(_image(p, decode=True), grey, p) for p, _ in files)
    )  # each [1, C, H, W] in [0, 1]
    x = fill(shape, parts, src, f"{fix}, and give --data-memory below that")
    labels = [lab for _, lab in files]
    y = torch.tensor(labels) if classes and -1 not in labels else None
    return x, y


def npy_dataset(spec: str, path: Path, memory: int | None = None) -> Dataset:
    kind, x = load_npy(path, memory)
    return Dataset(spec, kind, x, None, str(path))


def idx_dataset(spec: str, path: Path, memory: int | None = None) -> Dataset:
    xtr, ytr, xte, yte = load_idx_dir(path, memory)
    return Dataset(spec, "images", xtr, xte, str(path), ytr, yte)


def folder_dataset(spec: str, path: Path, memory: int | None = None) -> Dataset:
    x, y = load_image_folder(path, memory)
    return Dataset(spec, "images", x, None, str(path), y)


def find_levels(x: torch.Tensor) -> int:
    """The number of evenly spaced values in [0, 1] the pixels x take (L: k / (L - 1)), or 0
    when they are not on such a grid (continuous images): the smallest L - 1 up to 65,535 that
    makes every distinct value a whole multiple of 1 / (L - 1), up to float32's rounding (an
    average of 16 8-bit pixels, fashion-mnist@7, is a multiple of 1 / 4080 within 1e-3 of
    one step; a continuous value passes by chance with odds 1 in 100 per value)."""
    values = torch.unique(x.double().flatten())  # [V]
    if len(values) > 65536 or values.min() < 0 or values.max() > 1:
        return 0
    steps = torch.arange(1, 65536, dtype=torch.float64)  # candidate L - 1
    for chunk in steps.split(4096):
        scaled = values[None] * chunk[:, None]  # [4096, V]
        whole = ((scaled - scaled.round()).abs() < 5e-3).all(1)
        if whole.any():
            return int(chunk[whole][0]) + 1
    return 0
