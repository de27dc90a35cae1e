"""Data read from disk (``--data-memory`` below the file's size): the rows read are the values
loading gives, bit for bit, and a model trains and fits to the same numbers either way."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import pushforward
from pushforward.data import Rows, chunks, load_dataset, moments, validation_split
from pushforward.data.npy import load_npy
from pushforward.files import digest, load_tensors
from pushforward.models import GMM, GMMConfig
from pushforward.run_folder import data_digest

from ..conftest import assert_user_error
from .builders import write_idx

TINY = 1e-6  # GiB: every file is read from disk


def _arrays(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "points64": rng.normal(size=(300, 3)),
        "points_int": rng.integers(-5, 5, size=(300, 2)).astype(np.int16),
        "grey_hw": rng.integers(0, 256, size=(40, 6, 5)).astype(np.uint8),
        "rgb_nhwc": rng.integers(0, 256, size=(40, 4, 4, 3)).astype(np.uint8),
        "grey_nchw_f32": rng.random(size=(40, 1, 5, 5), dtype=np.float32),
        "fortran": np.asfortranarray(rng.normal(size=(300, 4))),
        "big_endian": rng.normal(size=(300, 2)).astype(">f8"),
    }


@pytest.mark.parametrize("name", list(_arrays(np.random.default_rng(0))))
def test_rows_read_what_loading_gives(tmp_path: Path, name: str) -> None:
    arr = _arrays(np.random.default_rng(0))[name]
    np.save(tmp_path / "a.npy", arr)
    kind, whole = load_npy(tmp_path / "a.npy")
    kind2, rows = load_npy(tmp_path / "a.npy", memory=1)
    assert isinstance(whole, torch.Tensor) and isinstance(rows, Rows) and kind == kind2
    assert rows.shape == whole.shape and len(rows) == len(whole)
    assert torch.equal(rows[:], whole)
    assert torch.equal(rows[3], whole[3]) and torch.equal(rows[-1], whole[-1])
    assert torch.equal(rows[5:17:3], whole[5:17:3])
    idx = torch.tensor([7, 2, 2, 30, 0])
    assert torch.equal(rows[idx], whole[idx])  # a batch in the loader's order, repeats kept
    mask = torch.arange(len(whole)) % 3 == 0
    assert torch.equal(rows[mask], whole[mask])
    sub = rows.subset(torch.tensor([9, 1, 4]))
    assert torch.equal(sub[torch.tensor([2, 0])], whole[torch.tensor([4, 9])])
    assert torch.equal(torch.cat(list(chunks(rows, 7))), whole)
    whole[0].fill_(7.0)  # a loaded tensor is the process's own: the file is never written
    assert not torch.equal(rows[0], whole[0])


@pytest.mark.parametrize("shape", [(50, 6, 5), (50, 4, 4, 3)])
def test_idx_files_read_from_disk_or_inflated_give_what_loading_gives(
    tmp_path: Path, shape: tuple[int, ...]
) -> None:
    """A plain IDX folder past --data-memory is read from disk as rows; in memory, or gzip'd
    (inflated a part at a time), it is the same float32 tensor: pixels / 255, channels first."""
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, size=shape, dtype=np.uint8)
    y = rng.integers(0, 10, size=shape[0]).astype(np.uint8)
    expect = torch.from_numpy(x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)) / 255.0
    for gz in (False, True):
        folder = tmp_path / f"gz{gz}"
        folder.mkdir()
        suffix = ".gz" if gz else ""
        write_idx(folder / f"train-images-idx3-ubyte{suffix}", x, gz)
        write_idx(folder / f"train-labels-idx1-ubyte{suffix}", y, gz)
        write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", x[:12], gz)
        whole = load_dataset(f"idx:{folder}")
        assert isinstance(whole.train, torch.Tensor) and torch.equal(whole.train, expect)
        assert torch.equal(whole.split("test"), expect[:12])
        assert whole.train_labels is not None
        assert torch.equal(whole.train_labels, torch.from_numpy(y.astype(np.int64)))
        if not gz:
            disk = load_dataset(f"idx:{folder}", data_memory=TINY)
            assert isinstance(disk.train, Rows) and isinstance(disk.split("test"), Rows)
            assert torch.equal(disk.train[:], expect)
            assert torch.equal(disk.split("test")[:], expect[:12])
            assert data_digest(disk) == data_digest(whole)


_PEAK = """
import re, sys
from pushforward.data import load_dataset
def kib(field):  # this process's resident memory (VmRSS) or its peak since the reset (VmHWM)
    return int(re.search(field + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1))
try:  # the peak starts again from here (else it holds since exec: the imports, about as much)
    open("/proc/self/clear_refs", "w").write("5")
except OSError:
    pass
before = kib("VmRSS")
data = load_dataset(sys.argv[1])
print((kib("VmHWM") - before) * 1024, data.train.numel() * 4)
"""


@pytest.mark.parametrize("fmt", ["idx.gz", "images"])
def test_readers_never_hold_a_second_full_copy(tmp_path: Path, fmt: str) -> None:
    """Loading a gzip'd IDX file (96 MiB as float32) or a folder of PNGs (74 MiB) raises the
    process's peak memory by the float32 tensor it returns and little more: decoded straight
    into it, never through a second full copy (inflating whole, then converting, then stacking
    peaked at two to three times the result)."""
    rng = np.random.default_rng(5)
    if fmt == "idx.gz":
        x = (rng.integers(0, 16, size=(24_576, 32, 32)) * 17).astype(np.uint8)
        folder = tmp_path / "idx"
        folder.mkdir()
        write_idx(folder / "train-images-idx3-ubyte.gz", x, gz=True)
        spec = f"idx:{folder}"
    else:
        from PIL import Image

        folder = tmp_path / "pics"
        folder.mkdir()
        for i in range(1500):
            pixels = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:04d}.png", compress_level=0)
        spec = f"images:{folder}"
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_PEAK), spec],
        capture_output=True,
        text=True,
        check=True,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    grew, result = (int(v) for v in out.stdout.split())
    assert result > 70 * 2**20
    assert grew < 1.15 * result + 16 * 2**20, (grew / 2**20, result / 2**20)


def test_moments_and_the_data_checksum_match_in_memory(tmp_path: Path) -> None:
    x = np.random.default_rng(1).normal(3.0, 2.0, size=(5000, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    whole = load_dataset(f"npy:{tmp_path / 'x.npy'}")
    rows = load_dataset(f"npy:{tmp_path / 'x.npy'}", data_memory=TINY)
    assert isinstance(rows.train, Rows) and isinstance(whole.train, torch.Tensor)
    mean, std = moments(rows.train)
    t = whole.train.double()
    assert torch.allclose(mean, t.mean(0), atol=1e-12) and torch.allclose(std, t.std(0), atol=1e-12)
    # the checksum config.json records is the one it always was, from either
    assert data_digest(rows) == data_digest(whole) == digest({"train": whole.train})
    # a validation split takes the same examples and leaves the same rest
    a, va, _ = validation_split(whole, 100, "none")
    b, vb, _ = validation_split(rows, 100, "none")
    assert torch.equal(va, vb) and isinstance(b.train, Rows)
    assert torch.equal(b.train[:], a.train)


def test_em_from_disk_equals_em_in_memory(tmp_path: Path) -> None:
    """Streaming EM (a chunk at a time from the mapped file) against the same fit on the
    tensor: equal to 1e-10 in float64, for full and diagonal covariances, and for the start
    from a k-means sample."""
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(5, 4)) * 5
    x = (centres[rng.integers(5, size=6000)] + rng.normal(size=(6000, 4))).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    whole = load_dataset(f"npy:{tmp_path / 'x.npy'}").train
    rows = load_dataset(f"npy:{tmp_path / 'x.npy'}", data_memory=TINY).train
    assert isinstance(rows, Rows)
    for cov, sample in (("full", 200_000), ("diag", 200_000), ("full", 1000)):
        fits = []
        for data in (whole, rows):
            gmm = GMM(GMMConfig(components=5, covariance=cov, kmeans_sample=sample), (4,))
            info = gmm.fit(data, 30, torch.Generator().manual_seed(0))
            fits.append((gmm, info))
        (a, ia), (b, ib) = fits
        assert ia["iterations"] == ib["iterations"]
        assert abs(ia["train_log_likelihood"] - ib["train_log_likelihood"]) < 1e-10
        for name in ("weights", "means", "covariances"):
            assert torch.allclose(getattr(a, name), getattr(b, name), rtol=0, atol=1e-10), name
        # the fit is a good one: every true centre has a component within 0.5
        gap = torch.cdist(torch.as_tensor(centres), a.means).min(1).values
        assert float(gap.max()) < 0.5, (cov, sample, gap)


@pytest.mark.parametrize("model", ["vae", "gan"])
def test_a_network_trains_the_same_from_disk(tmp_path: Path, model: str) -> None:
    """The same seeded run on the loaded tensor and on rows read from disk: identical weights
    (the batches are the same examples, converted the same way)."""
    x = np.random.default_rng(3).normal(size=(2000, 2)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    weights = []
    for memory, out in ((None, "mem"), (TINY, "disk")):
        pushforward.train(
            model,
            data=f"npy:{tmp_path / 'x.npy'}",
            out=str(tmp_path / out),
            steps=60,
            data_memory=memory,
            snapshots=0,
            progress=False,
        )
        weights.append(load_tensors(tmp_path / out / "model.safetensors"))
        config = json.loads((tmp_path / out / "config.json").read_text())
        assert config["train"]["data_memory"] == memory
    assert weights[0].keys() == weights[1].keys()
    for k in weights[0]:
        assert torch.equal(weights[0][k], weights[1][k]), k


def test_formats_held_whole_are_refused_past_the_limit_before_reading(
    tmp_path: Path, cli: object
) -> None:
    run = cli  # type: ignore[assignment]
    # a gzip'd IDX header claiming 1.6 GB is refused from its 16 bytes: the file holds no
    # pixels (a plain one is mapped instead, and its size checked against the claim)
    idx = tmp_path / "idx"
    idx.mkdir()
    header = bytes([0, 0, 8, 3]) + np.array([2_000_000, 28, 28], dtype=">u4").tobytes()
    (idx / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(header))
    assert_user_error(
        run("train", "gmm", "--data", f"idx:{idx}", "--data-memory", "1"),
        f"idx:{idx}",
        "more than --data-memory",
        "gunzip",
    )
    (idx / "train-images-idx3-ubyte.gz").unlink()
    (idx / "train-images-idx3-ubyte").write_bytes(header)
    assert_user_error(
        run("train", "gmm", "--data", f"idx:{idx}", "--data-memory", "1"),
        "train-images-idx3-ubyte",
        "truncated",
        "1,568,000,000 bytes",
    )
    folder = tmp_path / "pics"
    folder.mkdir()
    from PIL import Image

    for i in range(20):
        Image.fromarray(np.full((8, 8), i, dtype=np.uint8)).save(folder / f"{i}.png")
    assert_user_error(
        run("train", "gmm", "--data", f"images:{folder}", "--data-memory", "1e-6"),
        f"images:{folder}",
        "more than --data-memory",
    )
    # static binarization draws the whole set at once: refused for data read from disk
    np.save(tmp_path / "im.npy", np.zeros((20, 4, 4), dtype=np.uint8))
    assert_user_error(
        run("train", "vae", "--data", f"npy:{tmp_path / 'im.npy'}", "--data-memory", "1e-6",
            "--binarize", "static"),
        "--binarize static",
        "--data-memory",
    )  # fmt: skip
    assert_user_error(
        run("train", "gmm", "--data", "ring8", "--data-memory", "0"),
        "--data-memory",
    )
