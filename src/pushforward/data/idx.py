"""Readers for the binary formats of the image sets: IDX (MNIST family) and CIFAR-10 binary.

Both are parsed by hand from bytes, checked against their headers, and never unpickled. Any
defect raises PushforwardError naming the file, what is wrong and how to fix it.

May import, of this package: data/rows, errors, limits.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import stat as stat_mod
import struct
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..errors import PushforwardError
from ..limits import check_fits, read_file
from .rows import Examples, Rows, chunk_rows, chunks, fill

_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
CIFAR_RECORD = 1 + 3 * 32 * 32


class IdxFile(NamedTuple):
    """An IDX file's header: where its data starts (in the inflated stream of a .gz), the
    stored dtype (big-endian) and the dims it claims."""

    path: Path
    gz: bool
    dtype: np.dtype
    dims: tuple[int, ...]
    offset: int

    @property
    def nbytes(self) -> int:
        return math.prod(self.dims) * self.dtype.itemsize


@contextlib.contextmanager
def _stream(path: Path, gz: bool, fix: str) -> Iterator[gzip.GzipFile | io.BufferedReader]:
    """The file's bytes (inflated for a .gz); a read error or bad gzip data is one line."""
    try:
        with gzip.open(path, "rb") if gz else open(path, "rb") as f:
            yield f
    except (OSError, EOFError, zlib.error) as e:
        if gz:
            raise PushforwardError(
                f"{path}: corrupt or truncated gzip ({e}); delete it and fetch it again, {fix}"
            ) from None
        raise PushforwardError(f"{path}: cannot read ({e}); {fix}") from None


def open_idx(path: Path, fix: str) -> IdxFile:
    """Read and check an IDX header (through gzip for a .gz): 2 zero bytes, a dtype code, the
    number of dims, then big-endian uint32 dims. A plain file's size must match the claim."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise PushforwardError(f"{path}: file not found; {fix}") from None
    if not stat_mod.S_ISREG(st.st_mode):
        raise PushforwardError(f"{path}: not a regular file (a folder, pipe or device); {fix}")
    with _stream(path, False, fix) as f:  # a file it may not read is one line too
        gz = f.read(2) == b"\x1f\x8b"
    with _stream(path, gz, fix) as f:
        head = f.read(4)
        if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in _IDX_DTYPES or head[3] == 0:
            magic = head.hex() if len(head) == 4 else "(too short)"
            raise PushforwardError(
                f"{path}: not an IDX file (magic {magic}, expected 00000803 for images or "
                f"00000801 for labels); {fix}"
            )
        dims_raw = f.read(4 * head[3])
    if len(dims_raw) < 4 * head[3]:
        raise PushforwardError(f"{path}: truncated IDX header; {fix}")
    dims = struct.unpack(f">{head[3]}I", dims_raw)
    header = IdxFile(path, gz, _IDX_DTYPES[head[2]], dims, 4 + len(dims_raw))
    if not gz and st.st_size != header.offset + header.nbytes:
        _wrong_size(header, st.st_size - header.offset, fix)
    return header


def _wrong_size(header: IdxFile, got: int | None, fix: str) -> None:
    """Refuse data shorter or longer than the header says (``got`` None: longer, uncounted)."""
    short = got is not None and got < header.nbytes
    found = f"{got:,}" if got is not None else "more"
    raise PushforwardError(
        f"{header.path}: IDX file {'truncated' if short else 'has trailing bytes'} (header "
        f"says {header.dims} = {header.nbytes:,} bytes of data, found {found}); {fix}"
    )


def _mapped(header: IdxFile) -> np.ndarray:
    """A plain file's data [*dims] in the stored dtype, mapped read-only (a file cannot map zero
    bytes: an empty array then, which the data checks name)."""
    if not header.nbytes:
        return np.empty(header.dims, header.dtype)
    return np.memmap(header.path, header.dtype, "r", header.offset, header.dims)


def idx_parts(header: IdxFile, rows: int, fix: str) -> Iterator[np.ndarray]:
    """The data, ``rows`` first-dim entries at a time, each [n, *dims[1:]] in the stored dtype:
    a .gz is inflated once, one part at a time, and never past its claim plus one byte (a small
    file that would inflate to gigabytes stops there)."""
    if not header.gz:
        data = _mapped(header)
        for s in range(0, len(data), rows):
            yield np.asarray(data[s : s + rows])
        return
    row_bytes = header.nbytes // max(1, header.dims[0])
    with _stream(header.path, True, fix) as f:
        f.read(header.offset)
        done = 0
        for s in range(0, header.dims[0], rows):
            n = min(rows, header.dims[0] - s)
            part = f.read(n * row_bytes)
            done += len(part)
            if len(part) < n * row_bytes:
                _wrong_size(header, done, fix)
            yield np.frombuffer(part, header.dtype).reshape(n, *header.dims[1:])
        if f.read(1):
            _wrong_size(header, None, fix)


def read_idx(header: IdxFile, fix: str) -> np.ndarray:
    """The whole (small) array in native byte order, e.g. a label file."""
    check_fits(2 * header.nbytes, f"{header.path}: an IDX file of {header.dims}", fix)
    parts = list(idx_parts(header, max(1, header.dims[0]), fix))
    whole = parts[0] if parts else np.empty(header.dims, header.dtype)
    return whole.astype(header.dtype.newbyteorder("="))


def image_layout(header: IdxFile, fix: str) -> bool:
    """Check that an IDX file holds images ([N, H, W] or [N, H, W, C] unsigned bytes); True
    when channels come last."""
    dims = header.dims
    if not (len(dims) == 3 or (len(dims) == 4 and dims[3] in (1, 3))):
        raise PushforwardError(
            f"{header.path}: IDX images of shape {dims}; expected [N, H, W] or [N, H, W, C]; {fix}"
        )
    if header.dtype != np.dtype(">u1"):
        raise PushforwardError(
            f"{header.path}: IDX images of dtype {header.dtype.newbyteorder('=')}; expected "
            "unsigned bytes"
        )
    return len(dims) == 4


def read_idx_labels(path: Path, n_images: int, fix: str) -> np.ndarray:
    header = open_idx(path, fix)
    if len(header.dims) != 1:
        raise PushforwardError(f"{path}: IDX labels of shape {header.dims}; expected [N]; {fix}")
    if header.dims[0] != n_images:
        raise PushforwardError(
            f"{path}: {header.dims[0]} labels for {n_images} images; the label and image files "
            f"do not belong together; {fix}"
        )
    return read_idx(header, fix).astype(np.int64)


def read_idx_images(path: Path, fix: str, memory: int | None = None) -> Examples:
    """IDX images as float32 [N, C, H, W] in [0, 1]. A plain file whose images take more than
    ``memory`` bytes as float32 stays mapped and is read as rows on demand; otherwise (and a
    .gz always) it is converted into one tensor a part at a time, never a second full copy."""
    header = open_idx(path, fix)
    last = image_layout(header, fix)
    n, h, w = header.dims[:3]
    shape = torch.Size((n, header.dims[3] if last else 1, h, w))
    check_fits(4 * math.prod(shape), f"{path}: IDX images of {header.dims}", fix)
    if not header.gz:
        rows = Rows(_mapped(header), str(path), scale=255.0, channels_last=last)
        if memory is not None and 4 * math.prod(shape) > memory:
            return rows
        return fill(shape, chunks(rows), str(path), fix)
    parts = (
        Rows(p, str(path), scale=255.0, channels_last=last)[:]
        for p in idx_parts(header, chunk_rows(shape), fix)
    )
    return fill(shape, parts, str(path), fix)


def parse_cifar_batch(raw: bytes, name: str, fix: str) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 binary records: 1 label byte + 3x32x32 bytes -> (uint8 [N,3,32,32], int64 [N])."""
    if len(raw) == 0 or len(raw) % CIFAR_RECORD:
        raise PushforwardError(
            f"{name}: {len(raw)} bytes is not a whole number of {CIFAR_RECORD}-byte CIFAR-10 "
            f"records (truncated or not the binary version); {fix}"
        )
    rec = np.frombuffer(raw, dtype=np.uint8).reshape(-1, CIFAR_RECORD)
    labels = rec[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise PushforwardError(f"{name}: label {labels.max()} out of range 0..9; {fix}")
    return rec[:, 1:].reshape(-1, 3, 32, 32).copy(), labels


CIFAR_TRAIN = [f"data_batch_{i}.bin" for i in range(1, 6)]
CIFAR_TEST = ["test_batch.bin"]
CIFAR_BATCH_BYTES = 10_000 * CIFAR_RECORD  # each real batch: 10,000 records
_CIFAR_MEMBERS = 64  # the real archive holds 8 entries; more means it is some other file


def _check_batch_size(size: int, name: str, fix: str) -> None:
    """Refuse a batch larger than a real one before a byte of it is read."""
    if size > CIFAR_BATCH_BYTES:
        raise PushforwardError(
            f"{name}: {size:,} bytes, more than a CIFAR-10 batch's {CIFAR_BATCH_BYTES:,} "
            f"(10,000 records); not a CIFAR-10 batch, {fix}"
        )


def _splits(
    batches: dict[str, bytes], where: str, fix: str
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for split, names in (("train", CIFAR_TRAIN), ("test", CIFAR_TEST)):
        parts = [parse_cifar_batch(batches[n], f"{where}{n}", fix) for n in names]
        out[split] = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return out


def read_cifar_dir(folder: Path, fix: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    batches = {}
    for name in CIFAR_TRAIN + CIFAR_TEST:
        path = folder / name
        try:
            batches[name] = read_file(path, f"not a CIFAR-10 batch, {fix}", CIFAR_BATCH_BYTES)
        except FileNotFoundError:
            raise PushforwardError(f"{path}: file not found; {fix}") from None
    return _splits(batches, f"{folder}/", fix)


def read_cifar_tar(path: Path, fix: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read the batches straight out of cifar-10-binary.tar.gz; nothing is extracted to disk.

    Entries are read in archive order, each size checked against a real batch's before it is
    inflated, and at most 64 entries are looked at: a crafted archive (a huge member, millions
    of entries) is refused in one pass instead of filling memory."""
    wanted, batches = set(CIFAR_TRAIN + CIFAR_TEST), {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for i, member in enumerate(tar):
                if i >= _CIFAR_MEMBERS:
                    raise PushforwardError(
                        f"{path}: more than {_CIFAR_MEMBERS} entries; not the CIFAR-10 binary "
                        f"archive, {fix}"
                    )
                if member.isfile():
                    _check_batch_size(member.size, f"{path}:{member.name}", fix)
                name = Path(member.name).name
                if member.isfile() and name in wanted and name not in batches:
                    fh = tar.extractfile(member)
                    assert fh is not None  # a regular file always has one
                    batches[name] = fh.read()
                if len(batches) == len(wanted):
                    break
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise PushforwardError(f"{path}: corrupt or truncated archive ({e}); {fix}") from None
    missing = sorted(wanted - set(batches))
    if missing:
        raise PushforwardError(f"{path}: {missing[0]} missing from the archive; {fix}")
    return _splits(batches, f"{path}:", fix)
