"""Run folders written by an earlier version of pushforward (tests/data/earlier_runs/, trained
before the package was reorganised into training/, reports/ and models that draw themselves)
still load, sample the same points for a seed, score the same and open in the explorer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import pushforward
from pushforward.explore import write_explorer

EARLIER = Path(__file__).parent / "data" / "earlier_runs"
EXPECTED = json.loads((EARLIER / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_an_earlier_run_samples_scores_and_explores_the_same(name: str, tmp_path: Path) -> None:
    run_dir = tmp_path / name
    shutil.copytree(EARLIER / name, run_dir)  # the fixture itself is never written
    want = EXPECTED[name]
    run = pushforward.load(str(run_dir), "cpu")
    x = run.sample(6, seed=4).flatten(1)
    assert torch.equal(x, torch.tensor(want["samples"], dtype=torch.float32))
    scores = run.evaluate(want["metrics"], n_fake=500, k=20, write=False)
    assert scores.keys() == want["eval"].keys()
    for key, value in want["eval"].items():
        assert scores[key] == (
            pytest.approx(value, rel=1e-6, nan_ok=True) if isinstance(value, float) else value
        ), key
    (page,) = write_explorer(run_dir, tmp_path / "page.html")
    data = json.loads(page.read_text().split('type="application/json">')[1].split("</script>")[0])
    assert data["model"] == name.split("-")[0] and len(data["frames"]) == 2 and data["panels"]
