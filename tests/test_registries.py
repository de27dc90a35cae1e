"""A new metric and a new experiment are each one function (or file) plus one registry line:
`eval`, the reports' key numbers and glossary, and `pushforward experiment` take them from the
registry. (A new model: tests/test_new_model.py; a new data set: tests/data/test_registry.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from pushforward import metrics
from pushforward.experiments import EXPERIMENTS, Experiment, Settings
from pushforward.metrics import EvalInput, Metric


def _spread(e: EvalInput) -> dict[str, Any]:
    """The samples' standard deviation over the test points': 1 for a model that matches."""
    return {"spread": float(e.fake.std(0).mean() / e.real.std(0).mean()), "spread_floor": 1.0}


SPREAD = Metric(
    _spread,
    lambda e: None if e.real.dim() == 2 else "spread is for points",
    (("spread", "sample spread against the data's", "spread_floor"),),
    "<code>spread</code>: the samples' standard deviation over the test points'.",
)


def test_a_new_metric_is_one_registry_line(
    cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(metrics.METRICS, "spread", SPREAD)
    assert cli("train", "gmm", "--data", "ring8", "--components", "8", "--out", "m")[0] == 0
    code, _, err = cli("eval", "m", "--metrics", "spread")
    assert code == 0, err
    spread = json.loads((tmp_path / "m" / "eval.json").read_text())["spread"]
    assert abs(spread - 1) < 0.05  # eight components on eight modes: the data's spread
    # by default it runs wherever it applies, beside the others
    assert cli("eval", "m")[0] == 0
    assert {"spread", "nll_nats"} <= set(json.loads((tmp_path / "m" / "eval.json").read_text()))
    # the reports show it as a key number, with its floor, and explain it
    from pushforward.reports import run_demo

    page = run_demo(tmp_path / "d", plan=[("ring8", "gmm", {"components": 8})]).read_text()
    assert "sample spread against the data&#x27;s" in page and "(floor 1)" in page
    assert "the samples' standard deviation over the test points'" in page


def _toy_run(out: Path, quick: bool, settings: Settings) -> dict[str, Any]:
    """A Gaussian's sample mean against its true mean, over seeds."""
    n = 100 if quick else 10_000
    errors = [
        float(torch.randn(n, generator=torch.Generator().manual_seed(s)).mean()) for s in range(3)
    ]
    return {"errors": errors, "n": n}


def test_a_new_experiment_is_one_registry_line(
    cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    toy = Experiment("sample-mean", _toy_run, [], lambda r: f"| n | {r['n']} |\n", scalable=False)
    monkeypatch.setitem(EXPERIMENTS, toy.name, toy)
    code, _, err = cli("experiment", "sample-mean", "--quick", "--out", "e")
    assert code == 0, err
    results = json.loads((tmp_path / "e" / "results.json").read_text())
    assert results["experiment"] == "sample-mean" and results["quick"] is True
    assert all(abs(e) < 0.35 for e in results["errors"])  # 3 sd of a mean of 100 is 0.3
    assert (tmp_path / "e" / "summary.md").read_text() == "| n | 100 |\n"
