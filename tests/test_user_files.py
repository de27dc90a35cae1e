"""What a user owns is never deleted or written through: a run claims only a new, empty or
pushforward-written folder, cleans up only its own names, and never follows a link out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from .conftest import assert_user_error

GAN = ["gan", "--data", "ring8", "--steps", "4", "--hidden", "16", "--snapshots", "2"]


def test_a_folder_of_someone_elses_files_is_refused_and_kept(cli, tmp_path: Path) -> None:
    u = tmp_path / "u"
    (u / "checkpoints").mkdir(parents=True)
    (u / "snapshots").mkdir()
    (u / "checkpoints" / "epoch=3.ckpt").write_text("x")
    (u / "snapshots" / "holiday.jpg").write_text("y")
    line = assert_user_error(cli("train", *GAN, "--out", "u"), "--out u", "epoch=3.ckpt")
    assert "did not write" in line
    assert (u / "checkpoints" / "epoch=3.ckpt").read_text() == "x"
    assert (u / "snapshots" / "holiday.jpg").read_text() == "y"
    assert sorted(p.name for p in u.rglob("*")) == [
        "checkpoints",
        "epoch=3.ckpt",
        "holiday.jpg",
        "snapshots",
    ]  # not even a lock file was left


def test_out_dot_in_a_project_folder_is_refused(cli, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    assert_user_error(cli("train", *GAN, "--out", "."), "notes.txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_linked_run_subfolder_is_refused_and_never_written(cli, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "snapshots").symlink_to(outside)
    assert_user_error(cli("train", *GAN, "--out", "s"), "snapshots")
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]
    # the same link planted in a run: resuming it and training over it refuse it
    import pushforward

    code, _, err = cli("train", *GAN, "--out", "r")
    assert code == 0, err
    (tmp_path / "r" / "metrics.jsonl").unlink()
    (tmp_path / "r" / "metrics.jsonl").symlink_to(outside / "keep.txt")
    assert_user_error(cli("train", *GAN, "--out", "r", "--resume"), "metrics.jsonl", "link")
    with pytest.raises(pushforward.PushforwardError, match=r"metrics\.jsonl is a symbolic link"):
        pushforward.train("gan", data="ring8", out="r", steps=2, overwrite=True)
    assert (outside / "keep.txt").read_text() == "keep"
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]


def test_an_empty_folder_and_a_runs_own_debris_are_claimed(cli, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = cli("train", *GAN, "--out", "empty")
    assert code == 0, err
    # what a start killed before its config was written leaves: the lock, folders, a frame
    d = tmp_path / "debris"
    (d / "checkpoints").mkdir(parents=True)
    (d / "snapshots").mkdir()
    (d / ".lock").write_text("123")
    (d / "snapshots" / "step-0000001.safetensors").write_bytes(b"junk")
    (d / "checkpoints" / ".last.json.tmp").write_bytes(b"junk")
    code, _, err = cli("train", *GAN, "--out", "debris")
    assert code == 0, err
    assert (d / "model.safetensors").is_file()
    assert all(p.read_bytes() != b"junk" for p in d.rglob("*") if p.is_file())


def test_a_retrained_run_keeps_the_users_files_in_it(cli, tmp_path: Path) -> None:
    import pushforward

    pushforward.train("gan", data="ring8", out="r", steps=4, hidden=16, progress=False)
    code, _, err = cli("eval", "r", "--metrics", "two_sample", "--n-fake", "200")
    assert code == 0, err
    (tmp_path / "r" / "notes.txt").write_text("mine")
    (tmp_path / "r" / "checkpoints" / "mine.ckpt").write_text("mine")
    run = pushforward.train(
        "gan", data="ring8", out="r", steps=2, hidden=16, overwrite=True, progress=False
    )
    assert run.history()[-1]["step"] == 2
    assert not (tmp_path / "r" / "eval.json").exists()  # the old run's score went with it
    assert (tmp_path / "r" / "notes.txt").read_text() == "mine"
    assert (tmp_path / "r" / "checkpoints" / "mine.ckpt").read_text() == "mine"
    # reached through a link the user made to it, the run folder is cleaned the same way
    (tmp_path / "r" / "eval.json").write_text("{}")
    (tmp_path / "via").symlink_to(tmp_path / "r")
    pushforward.train("gan", data="ring8", out="via", steps=2, hidden=16, overwrite=True)
    assert not (tmp_path / "r" / "eval.json").exists()
    assert (tmp_path / "r" / "notes.txt").read_text() == "mine"


def test_resume_leaves_a_finished_run_as_it_is(cli, tmp_path: Path) -> None:
    code, _, err = cli("train", *GAN, "--out", "r")
    assert code == 0, err
    before = {p: p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()}
    mtimes = {p: p.stat().st_mtime_ns for p in before}
    code, out, err = cli("train", *GAN, "--out", "r", "--resume")
    assert code == 0, err
    assert "finished already; nothing trained" in out and "wrote" not in out
    assert {p: p.read_bytes() for p in before} == before
    assert {p: p.stat().st_mtime_ns for p in before if p.name != ".lock"} == {
        p: t for p, t in mtimes.items() if p.name != ".lock"
    }
    # and a damaged model.json is named, not silently rewritten
    (tmp_path / "r" / "model.json").write_text("{")
    assert_user_error(cli("train", *GAN, "--out", "r", "--resume"), "model.json")


def test_bench_refuses_data_without_a_test_split_before_training(cli, tmp_path: Path) -> None:
    np.save(tmp_path / "pts.npy", np.random.default_rng(0).normal(size=(200, 2)))
    args = ["bench", "--data", "npy:pts.npy", "--models", "gmm", "--budget-minutes", "0.02"]
    assert_user_error(cli(*args, "--out", "b"), "--test-data")
    assert not (tmp_path / "b").exists()
    # a path in the data's name never leaves the report folder
    (tmp_path / "sub").mkdir()
    args[2] = "npy:../pts.npy"
    os.chdir(tmp_path / "sub")
    code, _, err = cli(*args, "--test-data", "npy:../pts.npy", "--out", "b")
    assert code == 0, err
    runs = [p.name for p in (tmp_path / "sub" / "b" / "runs").iterdir()]
    assert runs == ["gmm-npy____pts_npy"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pts.npy", "sub"]


def test_ctrl_c_while_importing_is_one_line(tmp_path: Path) -> None:
    """SIGINT lands while torch and numpy are still importing (a second or more): at any
    moment, never a half-initialised module's error, and never a run that goes on."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for delay in (0.3, 0.45, 0.7):
        out = tmp_path / f"r{delay}"
        cmd = [sys.executable, "-m", "pushforward", "train", *GAN, "--out", str(out)]
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "Traceback" not in err and err.strip() == "interrupted"
        assert not out.exists()


SWALLOWING_IMPORT = """
import importlib.abc, importlib.util, os, signal, sys

class Loader(importlib.abc.Loader):
    def create_module(self, spec):
        return None

    def exec_module(self, module):
        # a library whose import catches everything, as some do around optional parts
        try:
            os.kill(os.getpid(), signal.SIGINT)
            sum(range(3_000_000))
        except BaseException:
            pass
        module.main = lambda: 0

class Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "pushforward.cli":
            return importlib.util.spec_from_loader(name, Loader())
        return None

sys.meta_path.insert(0, Finder())
from pushforward.__main__ import main
sys.exit(main())
"""


def test_ctrl_c_is_not_lost_in_an_import_that_catches_everything() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SWALLOWING_IMPORT], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 130 and proc.stderr.strip() == "interrupted", proc.stderr


def test_a_damaged_classifier_cache_is_rebuilt(capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from pushforward.data import Dataset
    from pushforward.metrics import features

    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(60, 1, 8, 8, generator=g), torch.arange(60) % 3
    ds = Dataset("tiny", "images", x[:40], x[40:], "generated", y[:40], y[40:])
    features.classifier_for(ds)
    cached = sorted((Path(os.environ["PUSHFORWARD_CACHE"]) / "classifiers").glob("tiny-*.json"))
    assert len(cached) == 1
    for damage in ("{", json.dumps({"classes": 2_000_000_000}), json.dumps({"classes": [3]})):
        cached[0].write_text(damage)
        net, info = features.classifier_for(ds)
        assert info["classes"] == 3 and net(x[:2]).shape[0] == 2
        assert "training it again" in capsys.readouterr().err
    assert json.loads(cached[0].read_text())["classes"] == 3  # rebuilt and saved again
