"""A built-in data set is one Source and one line in DATASETS: loading, `data list`, training
and evaluation all find it there."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pushforward import data
from pushforward.data import Dataset, Source


def _blobs(data_dir: str | None) -> Dataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 2, generator=g) * 0.1 + torch.tensor([[2.0, 0.0]]) * (
        torch.arange(400) % 2
    ).unsqueeze(1)
    return Dataset("blobs", "points", x[:300], x[300:], "generated (two blobs)")


def test_a_new_data_set_is_one_registry_line(
    cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    row = lambda data_dir: dict(shape=(2,), train=300, test=100, source="generated (two blobs)")  # noqa: E731
    monkeypatch.setitem(data.DATASETS, "blobs", Source("points", _blobs, row))
    code, out, err = cli("data", "list")
    assert code == 0 and "blobs" in out and "two blobs" in out, err
    code, _, err = cli("train", "gmm", "--data", "blobs", "--components", "2", "--out", "r")
    assert code == 0, err
    code, out, err = cli("eval", "r", "--metrics", "nll")
    assert code == 0, err
    # two tight blobs (std 0.1): a 2-component mixture scores far below a broad Gaussian's NLL
    assert float(out.split("nll_nats")[1].split()[0]) < 0.0


def test_every_built_in_set_has_a_row_and_a_loader() -> None:
    rows = {r["name"]: r for r in data.list_datasets()}
    assert list(rows) == list(data.DATASETS) == list(data.BUILTIN)
    for name, source in data.DATASETS.items():
        assert source.kind in ("points", "images") and set(rows[name]) == {
            "name",
            "shape",
            "train",
            "test",
            "source",
        }
    assert set(data.USER) == {"npy", "idx", "images"}
