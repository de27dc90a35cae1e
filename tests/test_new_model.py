"""A new model is one file and one registry line: the test-only model of tests/models/toy.py,
registered in a test-only registry, trains, samples, scores, shows itself in the explorer and
the GIF, and is benchmarked through the CLI, with no file of the package naming it. (The
contract battery, tests/models/test_contract.py, runs over it too.)"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pushforward.data import load_dataset
from pushforward.training.frames import read_snapshots

from .conftest import assert_user_error
from .models.toy import registered  # noqa: F401  (the fixture)

pytestmark = pytest.mark.usefixtures("registered")


def _page_data(page: Path) -> dict:
    return json.loads(page.read_text().split('type="application/json">')[1].split("</script>")[0])


def test_a_registered_model_trains_samples_and_scores(cli, tmp_path: Path) -> None:
    for out, steps in (("few", 1), ("t", 300)):
        code, _, err = cli("train", "toy", "--data", "digits", "--steps", steps, "--out", out)
        assert code == 0, err
    assert json.loads((tmp_path / "t" / "config.json").read_text())["model"] == "toy"
    assert cli("sample", "t", "-n", "50", "--seed", "3", "--out", "s.npy")[0] == 0
    x = np.load(tmp_path / "s.npy")
    assert x.shape == (50, 1, 8, 8) and np.isfinite(x).all()
    # one Gaussian fitted to the digits: the pixel means and spreads of the data, roughly
    assert abs(float(x.mean()) - 0.3) < 0.1
    scores = {}
    for out in ("few", "t"):
        code, _, err = cli("eval", out, "--metrics", "nll")
        assert code == 0, err
        scores[out] = json.loads((tmp_path / out / "eval.json").read_text())["nll_nats"]
    # 300 steps of Adam fit the spreads: far fewer nats than after one step (about 65 there)
    assert scores["t"] < scores["few"] - 20, scores
    assert_user_error(cli("train", "toy", "--data", "digits", "--lr", "0", "--out", "z"), "--lr")


def test_a_registered_model_without_frames_shows_its_samples_and_curve(cli, tmp_path: Path) -> None:
    args = ("train", "toy", "--data", "ring8", "--steps", "200", "--snapshots", "5")
    assert cli(*args, "--init-scale", "3", "--out", "r")[0] == 0
    code, _, err = cli("explore", "r", "--gif", "r.gif")
    assert code == 0, err
    data = _page_data(tmp_path / "r" / "explore.html")
    assert data["model"] == "toy" and [p["title"] for p in data["panels"]] == [
        "Data space: samples"
    ]
    # the curve ends at the best one Gaussian can do: the entropy of the data's own Gaussian fit
    # per coordinate (about 1.07 nats), where std 3 at the start costs about 2.0
    var = load_dataset("ring8").train.var(0)
    best = float((0.5 * torch.log(2 * math.pi * math.e * var)).mean())
    loss = data["history"]["series"]["loss"]
    assert abs(loss[-1] - best) < 0.03 and loss[0] > loss[-1], (loss, best)
    _, _, frames = read_snapshots(tmp_path / "r")
    first, last = frames[0]["samples"], frames[-1]["samples"]
    assert first.shape == last.shape == (1000, 2)
    # std 3 at the start; ring8's, a ring of radius 1, is about 0.7 on each axis
    assert first.std(0).min() > 2.5 and last.std(0).max() < 0.5 * first.std(0).min()
    gif = (tmp_path / "r.gif").read_bytes()
    assert gif[:6] == b"GIF89a" and gif.count(b"\x21\xf9\x04") == len(frames)
    # on images: the data beside the samples, drawn as bytes
    args = ("train", "toy", "--data", "digits", "--steps", "50", "--snapshots", "3", "--out", "i")
    assert cli(*args)[0] == 0 and cli("explore", "i")[0] == 0
    data = _page_data(tmp_path / "i" / "explore.html")
    assert [p["title"] for p in data["panels"]] == ["Data", "Samples from fixed z"]
    assert data["frames"][-1]["samples"]["t"] == "u1"


def test_bench_takes_a_registered_model(cli, tmp_path: Path) -> None:
    args = ("bench", "--data", "ring8", "--models", "toy,gmm", "--budget-minutes", "0.02")
    code, _, err = cli(*args, "--out", "b")
    assert code == 0, err
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    toy, gmm = report["ring8"]["toy"], report["ring8"]["gmm"]
    # one Gaussian cannot place mass on eight modes; the mixture of eight does
    assert toy["modes"] < gmm["modes"] == 8 and toy["nll_nats"] > gmm["nll_nats"] + 1
    assert "toy" in (tmp_path / "b" / "report.html").read_text()
