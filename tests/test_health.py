"""After training, a model that has visibly failed is named in one warning line (and in
model.json, and beside it in demo and bench); a working one is not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pushforward.reports import run_demo


def _warnings(path: str) -> tuple[dict, list[str]]:
    info = json.loads((Path(path) / "model.json").read_text())["info"]
    return info["health"], info["warnings"]


@pytest.mark.parametrize(
    ("model", "options", "needle"),
    [
        # D trains 2,000 times faster than G: it wins, and G never leaves its start
        (
            "gan",
            {"data": "ring8", "steps": 300, "lr": 1e-6, "lr_d": 2e-3, "r1": 0, "ema": 0},
            "discriminator has won",
        ),
        # the earlier defaults: 55 steps of Adam (2e-4, 0.5, 0.999), 64 copies of one digit
        (
            "gan",
            {
                "data": "digits",
                "epochs": 10,
                "lr": 2e-4,
                "beta1": 0.5,
                "beta2": 0.999,
                "r1": 0,
                "ema": 0,
            },
            "nearly identical",
        ),
        # a KL weight of 50 leaves the codes empty
        ("vae", {"data": "digits", "steps": 300, "beta": 50.0}, "posterior collapse"),
        # one Gaussian over 25 tight modes: a cloud, almost none of it on the data
        ("gmm", {"data": "grid25", "components": 1}, "k-NN precision"),
    ],
    ids=["gan-d-wins", "gan-collapse", "vae-posterior-collapse", "gmm-cloud"],
)
def test_a_failed_model_is_named_in_one_line(model: str, options: dict, needle: str, cli) -> None:
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
    code, _, err = cli("train", model, *flags, "--out", "r")
    assert code == 0 and err.count("warning: ") == 1, err
    line = err[err.index("warning: ") :].splitlines()[0]
    assert needle in line and "has visibly failed" in line and "try" in line, line
    _, reasons = _warnings("r")
    assert any(needle in r for r in reasons), reasons


def test_working_models_pass_without_a_warning(cli) -> None:
    for model, extra in (("gmm", ["--components", "8"]), ("gan", ["--steps", "2000"])):
        code, _, err = cli("train", model, "--data", "ring8", *extra, "--out", model)
        health, reasons = _warnings(model)
        assert code == 0 and "warning: " not in err and reasons == [], (err, reasons)
        assert health["coverage"] > 0.3 and 0.5 < health["sample_spread"] < 2, health


def test_demo_and_bench_show_the_warning_beside_the_model(tmp_path: Path) -> None:
    failing = {"steps": 300, "lr": 1e-6, "lr_d": 2e-3, "r1": 0, "ema": 0}
    page = run_demo(tmp_path / "d", plan=[("ring8", "gan", failing)]).read_text()
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert "class=warn>warning: gan on ring8 has visibly failed" in page
    assert "discriminator has won" in summary["ring8"]["gan"]["warning"]
    fine = run_demo(tmp_path / "e", plan=[("ring8", "gmm", {"components": 8})]).read_text()
    assert "class=warn" not in fine
