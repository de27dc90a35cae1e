"""Bad data never gives a traceback: exit status 2 and one line naming the file and the fix."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ..conftest import PicklePayload, assert_user_error
from .builders import idx_bytes, write_cifar_folder, write_images, write_mnist_folder


def _npy(tmp: Path, arr: np.ndarray, name: str = "x.npy") -> str:
    np.save(tmp / name, arr, allow_pickle=True)
    return str(tmp / name)


def _truncated_npy(tmp: Path) -> str:
    path = _npy(tmp, np.zeros((100, 2)))
    Path(path).write_bytes(Path(path).read_bytes()[:300])
    return path


def _object_npy(tmp: Path) -> str:
    return _npy(tmp, np.array([{"a": 1}, None], dtype=object))


def _idx_dir(tmp: Path, mutate: Callable[[Path], None], gz: bool = False) -> str:
    folder = write_mnist_folder(tmp / "idx", gz=gz)
    mutate(folder)
    return str(folder)


def _set_bytes(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_bytes(data)


def _truncate(name: str, keep: int) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_bytes((folder / name).read_bytes()[:keep])


TRAIN_IMG = "train-images-idx3-ubyte"
GZ_GARBAGE = b"\x1f\x8b" + bytes(range(200))
CASES: dict[str, tuple[Callable[[Path], str], str, str]] = {
    # name: (build -> --data value, text the message must contain, file the message must name)
    "npy missing": (lambda t: f"npy:{t / 'nope.npy'}", "not found", "nope.npy"),
    "npy truncated": (lambda t: f"npy:{_truncated_npy(t)}", "re-save", "x.npy"),
    "npy object array": (lambda t: f"npy:{_object_npy(t)}", "pickled", "x.npy"),
    "npy NaN": (lambda t: f"npy:{_npy(t, np.array([[0.0, np.nan]] * 4))}", "NaN", "x.npy"),
    "npy inf": (lambda t: f"npy:{_npy(t, np.array([[0.0, np.inf]] * 4))}", "inf", "x.npy"),
    "npy float pixels out of range": (
        lambda t: f"npy:{_npy(t, np.full((3, 4, 4), 2.0))}",
        "outside [0, 1]",
        "x.npy",
    ),
    "npy int pixels out of range": (
        lambda t: f"npy:{_npy(t, np.full((3, 4, 4), 300, np.int16))}",
        "outside 0..255",
        "x.npy",
    ),
    "npy wrong shape": (lambda t: f"npy:{_npy(t, np.zeros(10))}", "shape", "x.npy"),
    "npy empty": (lambda t: f"npy:{_npy(t, np.zeros((0, 2)))}", "shape", "x.npy"),
    "npy string dtype": (lambda t: f"npy:{_npy(t, np.array([['a', 'b']]))}", "dtype", "x.npy"),
    "npy channels": (
        lambda t: f"npy:{_npy(t, np.zeros((2, 5, 4, 4), np.uint8))}",
        "channels",
        "x.npy",
    ),
    "idx wrong magic": (
        lambda t: f"idx:{_idx_dir(t, _set_bytes(TRAIN_IMG, b'PK' + bytes(100)))}",
        "not an IDX file",
        TRAIN_IMG,
    ),
    "idx truncated": (
        lambda t: f"idx:{_idx_dir(t, _truncate(TRAIN_IMG, 1000))}",
        "truncated",
        TRAIN_IMG,
    ),
    "idx trailing bytes": (
        lambda t: (
            f"idx:{_idx_dir(t, _set_bytes(TRAIN_IMG, idx_bytes(np.zeros((2, 3, 3), np.uint8)) + b'xx'))}"
        ),
        "trailing",
        TRAIN_IMG,
    ),
    "idx corrupt gz": (
        lambda t: f"idx:{_idx_dir(t, _set_bytes(TRAIN_IMG + '.gz', GZ_GARBAGE), gz=True)}",
        "gzip",
        TRAIN_IMG,
    ),
    "idx truncated gz": (
        lambda t: f"idx:{_idx_dir(t, _truncate(TRAIN_IMG + '.gz', 2000), gz=True)}",
        "gzip",
        TRAIN_IMG,
    ),
    "idx count mismatch": (
        lambda t: (
            f"idx:{_idx_dir(t, _set_bytes('train-labels-idx1-ubyte', idx_bytes(np.zeros(29, np.uint8))))}"
        ),
        "29 labels for 30 images",
        "train-labels",
    ),
    "idx labels as images": (
        lambda t: f"idx:{_idx_dir(t, _set_bytes(TRAIN_IMG, idx_bytes(np.zeros(30, np.uint8))))}",
        "expected [N, H, W]",
        TRAIN_IMG,
    ),
    "idx folder missing": (lambda t: f"idx:{t / 'none'}", "folder not found", "none"),
    "idx folder empty": (
        lambda t: f"idx:{(t / 'empty').mkdir() or t / 'empty'}",
        "no IDX image file",
        "empty",
    ),
    "images mixed sizes": (
        lambda t: (
            f"images:{write_images(t / 'im', 2) and write_images(t / 'im' / 'sub', 1, size=(9, 9)).parent}"
        ),
        "resize",
        "000.png",
    ),
    "images empty folder": (lambda t: f"images:{(t / 'im').mkdir() or t / 'im'}", "no .png", "im"),
    "images corrupt file": (
        lambda t: (
            f"images:{write_images(t / 'im', 2) and (t / 'im' / 'bad.png').write_bytes(b'nope') and t / 'im'}"
        ),
        "not a readable image",
        "bad.png",
    ),
    "unknown name": (lambda t: "mnistt", "not a known data set", "mnistt"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_data_is_one_line_exit_2(case: str, tmp_path: Path, cli) -> None:
    build, text, names = CASES[case]
    data = build(tmp_path)
    assert_user_error(
        cli("train", "gmm", "--data", data, "--components", "1", "--steps", "1"), text, names
    )
    assert not (tmp_path / "runs").exists() or not any(
        (tmp_path / "runs").rglob("model.safetensors")
    )


def test_named_set_with_corrupt_file(tmp_path: Path, cli) -> None:
    folder = write_mnist_folder(tmp_path / "d" / "mnist")
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\0\0\x08\x03" + bytes(10)))
    line = assert_user_error(
        cli("train", "gmm", "--data", "mnist", "--data-dir", str(tmp_path / "d")), "truncated"
    )
    assert "t10k-images-idx3-ubyte.gz" in line


def test_cifar_truncated_batch(tmp_path: Path, cli) -> None:
    folder = write_cifar_folder(tmp_path / "d" / "cifar-10-batches-bin")
    (folder / "data_batch_3.bin").write_bytes((folder / "data_batch_3.bin").read_bytes()[:-5])
    assert_user_error(
        cli("train", "gmm", "--data", "cifar10", "--data-dir", str(tmp_path / "d")),
        "data_batch_3.bin",
        "records",
    )


def test_test_data_shape_mismatch(tmp_path: Path, cli) -> None:
    np.save(tmp_path / "a.npy", np.zeros((20, 2)))
    np.save(tmp_path / "b.npy", np.zeros((20, 3)))
    assert_user_error(
        cli(
            "train",
            "gmm",
            "--data",
            f"npy:{tmp_path / 'a.npy'}",
            "--test-data",
            f"npy:{tmp_path / 'b.npy'}",
        ),
        "--test-data",
        "must match",
    )


def test_pickled_npy_never_runs(tmp_path: Path, cli) -> None:
    marker = tmp_path / "PWNED"
    arr = np.empty(1, dtype=object)
    arr[0] = PicklePayload(str(marker))
    with open(tmp_path / "evil.npy", "wb") as f:
        np.lib.format.write_array(f, arr, allow_pickle=True)
    assert b"PWNED" in (tmp_path / "evil.npy").read_bytes()  # the payload is really in there
    assert_user_error(cli("train", "gmm", "--data", f"npy:{tmp_path / 'evil.npy'}"), "pickled")
    assert_user_error(cli("eval", str(tmp_path)), "not found")
    assert not marker.exists()
    # the payload is live: unpickling the same file is what would have run it
    opened = np.load(tmp_path / "evil.npy", allow_pickle=True)[0]  # the payload's open(marker)
    opened.close()
    assert marker.exists()


def test_values_beyond_float32_range(tmp_path: Path, cli) -> None:
    """Found by the fuzzer: float64 points that overflow float32 must not become silent infs."""
    np.save(tmp_path / "big.npy", np.array([[1e300, 0.0], [1.0, 2.0]]))
    assert_user_error(
        cli("train", "gmm", "--data", f"npy:{tmp_path / 'big.npy'}"), "float32", "big.npy"
    )
