"""Readers for the binary formats of the image sets: IDX (MNIST family) and CIFAR-10 binary.

Both are parsed by hand from bytes, checked against their headers, and never unpickled. Any
defect raises PushforwardError naming the file, what is wrong and how to fix it.

May import, of this package: errors, limits.
"""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import PushforwardError
from ..limits import check_fits, read_file

_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
CIFAR_RECORD = 1 + 3 * 32 * 32


def read_maybe_gzip(path: Path, fix: str) -> bytes:
    """File bytes, gunzipped when the file starts with the gzip magic."""
    try:
        raw = read_file(path, fix)
    except FileNotFoundError:
        raise PushforwardError(f"{path}: file not found; {fix}") from None
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return _gunzip_idx(raw, path)
    except (OSError, EOFError, zlib.error) as e:
        raise PushforwardError(
            f"{path}: corrupt or truncated gzip ({e}); delete it and fetch it again, {fix}"
        ) from None


def _gunzip_idx(raw: bytes, path: Path) -> bytes:
    """The gunzipped bytes of an IDX file, read no further than its header says it holds (and
    one byte more, so that parse_idx can name trailing bytes): a small .gz that would inflate
    to gigabytes (a decompression bomb) is never inflated past the size its header claims, and
    that size is checked against free memory first."""
    with gzip.GzipFile(fileobj=io.BytesIO(raw)) as f:
        head = f.read(4)
        if len(head) < 4 or head[2] not in _IDX_DTYPES or head[3] == 0:
            return head + f.read(1 << 20)  # not IDX: parse_idx names it from these bytes
        dims_raw = f.read(4 * head[3])
        if len(dims_raw) < 4 * head[3]:
            return head + dims_raw
        dims = struct.unpack(f">{head[3]}I", dims_raw)
        size = int(np.prod(dims, dtype=np.int64)) * _IDX_DTYPES[head[2]].itemsize
        check_fits(2 * size, f"{path}: an IDX file of {dims}", "check the file (it may be damaged)")
        return head + dims_raw + f.read(size + 1)


def parse_idx(raw: bytes, path: Path, fix: str) -> np.ndarray:
    """Decode IDX bytes: 2 zero bytes, a dtype code, ndim, big-endian uint32 dims, then data."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        magic = raw[:4].hex() if len(raw) >= 4 else "(too short)"
        raise PushforwardError(
            f"{path}: not an IDX file (magic {magic}, expected 00000803 for images or "
            f"00000801 for labels); {fix}"
        )
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise PushforwardError(f"{path}: truncated IDX header; {fix}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    got = len(raw) - header
    if got != expected:
        what = "truncated" if got < expected else "has trailing bytes"
        raise PushforwardError(
            f"{path}: IDX file {what} (header says {dims} = {expected} bytes of data, found "
            f"{got}); {fix}"
        )
    return (
        np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))
    )


def peek_dims(path: Path) -> tuple[int, ...] | None:
    """The dims an IDX file's header claims, read from its first bytes only (through gzip for a
    .gz); None when there is no IDX header to read (the full read then names the defect)."""
    try:
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        with gzip.open(path, "rb") if gz else open(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in _IDX_DTYPES or not head[3]:
                return None
            dims_raw = f.read(4 * head[3])
    except (OSError, EOFError, zlib.error):
        return None
    if len(dims_raw) < 4 * head[3]:
        return None
    return tuple(struct.unpack(f">{head[3]}I", dims_raw))


def idx_header(path: Path, fix: str) -> tuple[int, ...]:
    """Only the dims of an IDX file, for listing without decoding everything."""
    raw = read_maybe_gzip(path, fix)
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise PushforwardError(f"{path}: not an IDX file; {fix}")
    return struct.unpack(f">{raw[3]}I", raw[4 : 4 + 4 * raw[3]])


def read_idx_images(path: Path, fix: str) -> np.ndarray:
    """IDX images as uint8 [N, 1, H, W] (or [N, C, H, W] for a 4-D [N, H, W, C] file)."""
    arr = parse_idx(read_maybe_gzip(path, fix), path, fix)
    if arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim == 4 and arr.shape[3] in (1, 3):
        arr = arr.transpose(0, 3, 1, 2)
    else:
        raise PushforwardError(
            f"{path}: IDX images of shape {arr.shape}; expected [N, H, W] or [N, H, W, C]; {fix}"
        )
    if arr.dtype != np.uint8:
        raise PushforwardError(f"{path}: IDX images of dtype {arr.dtype}; expected unsigned bytes")
    return np.ascontiguousarray(arr)


def read_idx_labels(path: Path, n_images: int, fix: str) -> np.ndarray:
    arr = parse_idx(read_maybe_gzip(path, fix), path, fix)
    if arr.ndim != 1:
        raise PushforwardError(f"{path}: IDX labels of shape {arr.shape}; expected [N]; {fix}")
    if len(arr) != n_images:
        raise PushforwardError(
            f"{path}: {len(arr)} labels for {n_images} images; the label and image files do not "
            f"belong together; {fix}"
        )
    return arr.astype(np.int64)


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
