"""Image sets from every source: bundled digits, IDX folders, CIFAR binary, npy, image folders."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from pushforward.data import download as dl
from pushforward.data import list_datasets, load_dataset
from pushforward.errors import PushforwardError

from ..conftest import assert_user_error
from .builders import write_cifar_folder, write_cifar_tar, write_images, write_mnist_folder

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def test_digits_shape_range_labels_and_fixed_split() -> None:
    ds = load_dataset("digits")
    assert (
        ds.train.shape == (1437, 1, 8, 8)
        and ds.test is not None
        and ds.test.shape == (360, 1, 8, 8)
    )
    assert float(ds.train.min()) == 0.0 and float(ds.train.max()) == 1.0
    assert ds.train_labels is not None and set(ds.train_labels.tolist()) == set(range(10))
    assert torch.equal(load_dataset("digits").test, ds.test)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_layout_found_via_data_dir(tmp_path: Path, gz: bool) -> None:
    write_mnist_folder(tmp_path / "d" / "mnist", gz=gz)
    ds = load_dataset("mnist", data_dir=str(tmp_path / "d"))
    assert (
        ds.train.shape == (30, 1, 28, 28)
        and ds.test is not None
        and ds.test.shape == (10, 1, 28, 28)
    )
    assert float(ds.train.min()) >= 0 and float(ds.train.max()) <= 1
    assert ds.train_labels is not None and len(ds.train_labels) == 30
    assert ds.source == str(tmp_path / "d" / "mnist")


def test_search_order_env_then_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUSHFORWARD_CACHE", str(tmp_path / "cache"))
    write_mnist_folder(tmp_path / "cache" / "fashion-mnist", n_train=14)
    write_mnist_folder(tmp_path / "env" / "fashion-mnist", n_train=11)
    monkeypatch.setenv("PUSHFORWARD_DATA", str(tmp_path / "env"))
    assert len(load_dataset("fashion-mnist").train) == 11
    monkeypatch.delenv("PUSHFORWARD_DATA")
    assert len(load_dataset("fashion-mnist").train) == 14


@pytest.mark.skipif(
    not DEBIAN_FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed"
)
def test_fashion_mnist_from_debian_has_published_split() -> None:
    ds = load_dataset("fashion-mnist")
    assert (
        ds.train.shape == (60_000, 1, 28, 28)
        and ds.test is not None
        and ds.test.shape == (10_000, 1, 28, 28)
    )
    assert ds.train_labels is not None and torch.bincount(ds.train_labels).tolist() == [6000] * 10
    assert float(ds.train.max()) == 1.0 and float(ds.train.min()) == 0.0


def test_missing_named_set_error_says_how_to_get_it() -> None:
    with pytest.raises(PushforwardError) as e:
        load_dataset("mnist")
    with pytest.raises(PushforwardError) as f:
        dl.download("fashion-mnist")
    assert "--data-dir" in str(e.value)
    assert "apt-get install dataset-fashion-mnist" in str(f.value) and "--data-dir" in str(f.value)


@pytest.fixture
def served(tmp_path: Path):
    """A local HTTP server over tmp_path/www, standing in for a mirror."""
    www = tmp_path / "www"
    www.mkdir()
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(www))  # noqa: E731
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield www, f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


def test_download_verifies_checksums(
    served, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    www, url = served
    monkeypatch.setenv("PUSHFORWARD_CACHE", str(tmp_path / "cache"))
    write_mnist_folder(www)
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in www.iterdir()}
    monkeypatch.delenv("PUSHFORWARD_OFFLINE")
    monkeypatch.setitem(dl.REMOTES, "mnist", dl.Remote(files, (url,), "hint"))
    ds = load_dataset("mnist")
    assert ds.train.shape == (30, 1, 28, 28) and ds.source == str(tmp_path / "cache" / "mnist")
    # a tampered mirror: checksum mismatch is refused and nothing lands in the cache
    bad = dict(files, **{"train-images-idx3-ubyte.gz": "0" * 64})
    monkeypatch.setitem(dl.REMOTES, "fashion-mnist", dl.Remote(bad, (url,), "hint"))
    monkeypatch.setitem(dl.DEBIAN_DIRS, "fashion-mnist", tmp_path / "no-debian")
    with pytest.raises(PushforwardError, match="checksum"):
        load_dataset("fashion-mnist")
    assert not (tmp_path / "cache" / "fashion-mnist" / "train-images-idx3-ubyte.gz").exists()
    assert not list((tmp_path / "cache" / "fashion-mnist").glob(".*part"))


@pytest.mark.parametrize("layout", ["folder", "tar"])
def test_cifar10_binary_format(tmp_path: Path, layout: str) -> None:
    if layout == "folder":
        write_cifar_folder(tmp_path / "d" / "cifar10" / "cifar-10-batches-bin")
    else:
        (tmp_path / "d").mkdir()
        write_cifar_tar(tmp_path / "d" / "cifar-10-binary.tar.gz")
    ds = load_dataset("cifar10", data_dir=str(tmp_path / "d"))
    assert (
        ds.train.shape == (50, 3, 32, 32)
        and ds.test is not None
        and ds.test.shape == (10, 3, 32, 32)
    )
    # first record of data_batch_1: label byte then R, G, B planes
    from .builders import cifar_bytes

    raw = np.frombuffer(cifar_bytes(10, seed=0), np.uint8).reshape(10, 3073)
    assert int(ds.train_labels[0]) == raw[0, 0]
    assert torch.allclose(
        ds.train[0, 1, 0, :3],
        torch.tensor(raw[0, 1 + 1024 : 1024 + 4] / 255.0, dtype=torch.float32),
    )


def test_npy_points_and_images(tmp_path: Path) -> None:
    np.save(tmp_path / "pts.npy", np.random.default_rng(0).normal(size=(100, 3)))
    ds = load_dataset(f"npy:{tmp_path / 'pts.npy'}")
    assert ds.kind == "points" and ds.train.shape == (100, 3) and ds.test is None
    np.save(tmp_path / "hwc.npy", np.zeros((10, 4, 4, 3), np.uint8) + 255)
    img = load_dataset(f"npy:{tmp_path / 'hwc.npy'}")
    assert (
        img.kind == "images" and img.train.shape == (10, 3, 4, 4) and float(img.train.max()) == 1.0
    )
    np.save(tmp_path / "gray.npy", np.full((10, 7, 7), 0.5, np.float32))
    assert load_dataset(f"npy:{tmp_path / 'gray.npy'}").train.shape == (10, 1, 7, 7)


def test_user_data_with_test_split(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.ones((50, 2)))
    np.save(tmp_path / "b.npy", np.zeros((20, 2)))
    ds = load_dataset(f"npy:{tmp_path / 'a.npy'}", test_data=f"npy:{tmp_path / 'b.npy'}")
    assert ds.test is not None and ds.test.shape == (20, 2) and float(ds.test.sum()) == 0


def test_idx_dir_and_image_folders(tmp_path: Path) -> None:
    write_mnist_folder(tmp_path / "idx", gz=False)
    ds = load_dataset(f"idx:{tmp_path / 'idx'}")
    assert ds.train.shape == (30, 1, 28, 28) and ds.test is not None and ds.train_labels is not None
    write_images(tmp_path / "flat", 10)
    flat = load_dataset(f"images:{tmp_path / 'flat'}")
    assert flat.train.shape == (10, 1, 5, 6) and flat.train_labels is None
    write_images(tmp_path / "cls" / "cat", 6, mode="RGB", ext="jpg")
    write_images(tmp_path / "cls" / "dog", 4, mode="RGB", ext="png")
    cls = load_dataset(f"images:{tmp_path / 'cls'}")
    assert cls.train.shape == (10, 3, 5, 6) and cls.train_labels.tolist() == [0] * 6 + [1] * 4


def test_static_binarization_is_fixed_and_binary() -> None:
    ds = load_dataset("digits")
    a, b = ds.binarized(seed=0), ds.binarized(seed=0)
    assert torch.equal(a.train, b.train) and set(a.train.unique().tolist()) <= {0.0, 1.0}
    assert abs(float(a.train.mean()) - float(ds.train.mean())) < 0.01


def test_data_list_reports_sources(tmp_path: Path) -> None:
    write_mnist_folder(tmp_path / "d" / "mnist", n_train=9)
    rows = {r["name"]: r for r in list_datasets(str(tmp_path / "d"))}
    assert rows["mnist"]["train"] == 9 and rows["mnist"]["source"] == str(tmp_path / "d" / "mnist")
    assert rows["ring8"]["train"] == 50_000 and "exact log_prob" in str(rows["ring8"]["source"])
    assert rows["digits"]["train"] == 1437
    assert "not found" in str(rows["cifar10"]["source"])


def test_name_at_n_is_the_set_area_downsampled(tmp_path: Path) -> None:
    full = load_dataset("digits")
    half = load_dataset("digits@4")
    assert half.name == "digits@4" and half.shape == (1, 4, 4)
    # each pixel is the mean of its 2x2 block, so the image means are unchanged
    block = full.train[:, :, :2, :2].mean((2, 3))
    assert torch.allclose(half.train[:, :, 0, 0], block, atol=1e-6)
    assert torch.allclose(half.split("test").mean((1, 2, 3)), full.split("test").mean((1, 2, 3)))
    assert torch.equal(half.train_labels, full.train_labels)
    mnist = write_mnist_folder(tmp_path / "m", n_train=12, n_test=10)
    seven = load_dataset(f"idx:{mnist}@7")
    assert seven.shape == (1, 7, 7) and len(seven.split("test")) == 10
    assert load_dataset("digits@8").train.equal(full.train)


@pytest.mark.parametrize(
    ("name", "needle"),
    [("ring8@4", "only images"), ("digits@9", "from 1 to 8"), ("digits@", "from 1 to 8")],
)
def test_a_bad_downsampling_is_one_line(cli, name: str, needle: str) -> None:  # type: ignore[no-untyped-def]
    assert_user_error(cli("train", "gmm", "--data", name, "--out", "r"), name, needle)
