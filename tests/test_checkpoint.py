"""Run-folder files: atomic writes, safetensors only, and loading that refuses what does not fit."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

import pushforward
from pushforward.errors import PushforwardError
from pushforward.files import atomic_write_bytes, load_tensors, read_jsonl, save_tensors

from .conftest import PicklePayload


def test_failed_write_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "f.json"
    atomic_write_bytes(target, b"old")

    def boom(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(PushforwardError, match="No space left"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]  # no temporary left behind


def test_unwritable_folder_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(PushforwardError, match="cannot write"):
        atomic_write_bytes(tmp_path / "file" / "sub" / "a.bin", b"x")


def test_tensors_round_trip_and_tampering_is_caught(tmp_path: Path) -> None:
    t = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([1, 2])}
    save_tensors(tmp_path / "t.safetensors", t)
    back = load_tensors(tmp_path / "t.safetensors")
    assert all(torch.equal(t[k], back[k]) for k in t)
    raw = bytearray((tmp_path / "t.safetensors").read_bytes())
    raw[10:20] = b"\xff" * 10  # corrupt the JSON header
    (tmp_path / "t.safetensors").write_bytes(bytes(raw))
    with pytest.raises(PushforwardError, match="not a valid safetensors"):
        load_tensors(tmp_path / "t.safetensors")


def test_torn_jsonl_line_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "m.jsonl").write_text('{"step": 1}\n{"step": 2}\n{"ste')
    assert read_jsonl(tmp_path / "m.jsonl") == [{"step": 1}, {"step": 2}]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    pushforward.train(
        "gmm", data="ring8", components=8, out=tmp_path / "r", progress=False, steps=3
    )
    return tmp_path / "r"


def test_load_gives_the_trained_model(tmp_path: Path) -> None:
    trained = pushforward.train(
        "gmm", data="ring8", components=8, out=tmp_path / "t", progress=False, steps=3
    )
    loaded = pushforward.load(str(tmp_path / "t"), device="cpu")
    x = torch.randn(50, 2)
    assert torch.equal(trained.model.log_prob(x), loaded.model.log_prob(x))
    assert torch.equal(trained.sample(20, seed=4), loaded.sample(20, seed=4))
    # another model scores the same points differently: the comparison can fail
    other = pushforward.train(
        "gmm", data="ring8", components=7, out=tmp_path / "o", progress=False, steps=3
    )
    assert not torch.equal(other.model.log_prob(x), loaded.model.log_prob(x))


def test_load_refuses_mismatched_or_foreign_checkpoints(run_dir: Path) -> None:
    meta = json.loads((run_dir / "model.json").read_text())
    (run_dir / "model.json").write_text(
        json.dumps({**meta, "model_config": {**meta["model_config"], "components": 3}})
    )
    with pytest.raises(PushforwardError, match="not the tensors of this run's model"):
        pushforward.load(str(run_dir))
    (run_dir / "model.json").write_text(json.dumps({**meta, "model": "resnet"}))
    with pytest.raises(PushforwardError, match="unknown model"):
        pushforward.load(str(run_dir))
    (run_dir / "model.json").write_text(json.dumps({**meta, "format": 99}))
    with pytest.raises(PushforwardError, match="format"):
        pushforward.load(str(run_dir))
    (run_dir / "model.json").write_text(json.dumps({**meta, "model_config": {"bogus": 1}}))
    with pytest.raises(PushforwardError, match="bogus"):
        pushforward.load(str(run_dir))
    (run_dir / "model.json").write_text("{not json")
    with pytest.raises(PushforwardError, match="not valid JSON"):
        pushforward.load(str(run_dir))


def test_pickles_in_run_files_never_run(run_dir: Path, cli) -> None:
    import pickle

    marker = run_dir.parent / "PWNED"
    payload = pickle.dumps({"weights": PicklePayload(str(marker))})
    torch.save({"w": PicklePayload(str(marker))}, run_dir / "torch-save.pt")
    for name in ("model.safetensors", "checkpoints/last.safetensors"):
        (run_dir / name).write_bytes(payload)
    with pytest.raises(PushforwardError, match="not a valid safetensors"):
        pushforward.load(str(run_dir))
    (run_dir / "model.safetensors").write_bytes((run_dir / "torch-save.pt").read_bytes())
    with pytest.raises(PushforwardError, match="not a valid safetensors"):
        pushforward.load(str(run_dir))
    code, _, err = cli("sample", str(run_dir), "-n", "4", "--out", "s.npy")
    assert code == 2 and "model.safetensors" in err
    assert not marker.exists()


def test_resume_refuses_a_checkpoint_of_another_version_or_model(tmp_path: Path) -> None:
    from pushforward.files import load_tensors_and_metadata

    opts = {"data": "ring8", "steps": 10, "hidden": 16, "depth": 2, "progress": False}
    pushforward.train("gan", out="r", checkpoint_every=5, **opts)
    ckpt = tmp_path / "r" / "checkpoints" / "last.safetensors"
    tensors, meta = load_tensors_and_metadata(ckpt)
    full = json.loads(meta["checkpoint"])
    beside = json.loads((ckpt.parent / "last.json").read_text())
    for change, needle in (({"format": 99}, "format 99"), ({"finished": False}, None)):
        sha = save_tensors(ckpt, tensors, {"checkpoint": json.dumps({**full, **change})})
        (ckpt.parent / "last.json").write_text(json.dumps({**beside, "sha256": sha}))
        if needle is None:  # an unfinished checkpoint of this run resumes fine
            pushforward.train("gan", out="r", resume=True, **opts)
        else:
            with pytest.raises(PushforwardError, match=needle):
                pushforward.train("gan", out="r", resume=True, **opts)
    # a checkpoint holding another network's weights (a wider GAN) is refused by name
    pushforward.train("gan", out="w", checkpoint_every=5, **{**opts, "hidden": 32})
    wide, wide_meta = load_tensors_and_metadata(tmp_path / "w" / "checkpoints" / "last.safetensors")
    unfinished = json.dumps({**json.loads(wide_meta["checkpoint"]), "finished": False})
    sha = save_tensors(ckpt, wide, {"checkpoint": unfinished})
    with pytest.raises(PushforwardError, match="written by another run"):  # copied in
        pushforward.train("gan", out="r", resume=True, **opts)
    own = json.dumps({**json.loads(unfinished), "config_sha256": full["config_sha256"]})
    save_tensors(ckpt, wide, {"checkpoint": own})
    with pytest.raises(PushforwardError, match="not the tensors of this run's model"):
        pushforward.train("gan", out="r", resume=True, **opts)


def test_unwritable_metrics_log_is_a_user_error(tmp_path: Path) -> None:
    from pushforward.files import append_jsonl

    with pytest.raises(PushforwardError, match="cannot write"):
        append_jsonl(tmp_path / "missing" / "metrics.jsonl", {"step": 1})


def test_gmm_resume_of_a_fit_whose_model_file_is_lost(tmp_path: Path) -> None:
    """A GMM run killed after EM ended but before its model file was written resumes from its
    final checkpoint: the same parameters and history, no iteration run again (a run killed
    mid-EM: tests/test_resume.py; a finished one is left as it is: tests/test_hostile.py)."""
    opts = {"data": "ring8", "components": 8, "progress": False}
    first = pushforward.train("gmm", out="g", **opts)
    (tmp_path / "g" / "model.safetensors").unlink()
    again = pushforward.train("gmm", out="g", resume=True, **opts)
    assert again.history() == first.history()  # the rows, their clock times too: no rerun
    assert torch.equal(first.model.means, again.model.means)
    info = [json.loads((tmp_path / "g" / "model.json").read_text())["info"]]
    assert info[0]["iterations"] == len(first.history()) and info[0]["converged"] == 1.0
