"""Resume: a run killed with SIGKILL at random moments and resumed each time ends with weights
bit-identical to an uninterrupted run, and its metrics.jsonl has each logged step once."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import pushforward
from pushforward.errors import PushforwardError
from pushforward.training.frames import read_snapshots

from .conftest import assert_user_error

RUNS = {
    # the GAN: two optimizers, R1's double backward, the EMA generator, uniform point data, a
    # learning rate set by the step (cosine)
    "gan": ["--data", "ring8", "--steps", "1500", "--hidden", "32", "--depth", "2", "--r1", "1",
            "--ema", "0.99", "--batch-size", "64", "--lr-schedule", "cosine"],
    # the VAE: dynamic binarization (mid-epoch resumes redraw the same pixels), a learned
    # mixture prior and KL warm-up (a step-counting buffer), an epoch budget, and the best
    # weights by validation score (kept across resumes in the checkpoint)
    "vae": ["--data", "digits", "--epochs", "60", "--hidden", "64", "--prior", "mog",
            "--prior-components", "5", "--kl-warmup", "300", "--batch-size", "32",
            "--validation", "300"],
    # the conditional GAN: each batch's labels (their order replayed on resume), packs of two
    # with their labels, the projection discriminator with R1 and the EMA generator
    "gan-conditional": ["--data", "ring8", "--conditional", "--steps", "600", "--hidden", "32",
                        "--depth", "2", "--pack", "2", "--batch-size", "64"],
    # the flow: a fresh draw of dequantization noise for every batch (replayed on resume),
    # ActNorm started from the data before the first step, LU-parametrised 1x1 mixing
    "flow": ["--data", "digits", "--steps", "400", "--couplings", "2", "--hidden", "16",
             "--batch-size", "32"],
    # EM: its parameters after the k-means start and every 25 iterations, its previous
    # log-likelihood (the convergence test's), the snapshots of the components
    "gmm": ["--data", "grid25", "--components", "32", "--steps", "200", "--tol", "0"],
}  # fmt: skip


def _command(name: str, out: Path, *extra: str) -> list[str]:
    model = name.split("-")[0]
    return [sys.executable, "-m", "pushforward", "train", model, *RUNS[name], "--out", str(out),
            "--checkpoint-every", "25", "--log-every", "25", *extra]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


def _checkpoint_step(last: Path) -> int | None:
    """The step of the run's last checkpoint, None before its first (or mid-write)."""
    try:
        return int(json.loads(last.read_text())["step"])
    except (OSError, ValueError, KeyError):
        return None


@pytest.mark.heavy
@pytest.mark.parametrize("model", sorted(RUNS))
def test_killed_and_resumed_runs_end_bit_identical(model: str, tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    subprocess.run(_command(model, ref), env=_env(), check=True, capture_output=True, timeout=600)
    run, rng, kills, resumed_at = tmp_path / "run", random.Random(0), 0, []
    while True:
        last = run / "checkpoints" / "last.json"
        if last.exists():
            resumed_at.append(json.loads(last.read_text())["step"])
        proc = subprocess.Popen(
            _command(model, run, "--resume"), env=_env(),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        if kills < 5:
            if kills % 2 == 0:  # just after the run's next checkpoint: between two of them
                before, deadline = _checkpoint_step(last), time.monotonic() + 120
                while proc.poll() is None and _checkpoint_step(last) == before:
                    assert time.monotonic() < deadline, "no checkpoint in 120 s"
                    time.sleep(0.02)
                time.sleep(rng.uniform(0.0, 0.3))
            else:  # anywhere from interpreter start-up on
                time.sleep(rng.uniform(1.0, 4.0))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
        _, err = proc.communicate(timeout=600)
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    assert kills >= 3  # the run really was interrupted, several times
    assert any(step > 0 for step in resumed_at), resumed_at  # and resumed from its middle
    a, b = load_file(str(ref / "model.safetensors")), load_file(str(run / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows, ref_rows = (
        [json.loads(line) for line in (r / "metrics.jsonl").read_text().splitlines()]
        for r in (run, ref)
    )
    assert [r["step"] for r in rows] == [r["step"] for r in ref_rows]  # each step once, in order
    # validation scores, and so the weights kept as best, are the uninterrupted run's (and
    # EM's log-likelihoods its own)
    for key in ("val_elbo", "log_likelihood"):
        assert [r.get(key) for r in rows] == [r.get(key) for r in ref_rows], key
    info, ref_info = (json.loads((r / "model.json").read_text())["info"] for r in (run, ref))
    assert info.get("best_step") == ref_info.get("best_step")
    # the explorer's frames too: the same steps, the same tensors
    (_, _, frames), (_, _, ref_frames) = (read_snapshots(r) for r in (run, ref))
    assert [f["step"] for f in frames] == [f["step"] for f in ref_frames] and len(frames) > 3
    for f, g in zip(frames, ref_frames, strict=True):
        assert all(torch.equal(f[k], g[k]) for k in f if torch.is_tensor(f[k])), f["step"]


def test_resume_refuses_other_options_and_finishes_once(tmp_path: Path) -> None:
    opts = {"data": "ring8", "steps": 30, "hidden": 16, "depth": 2, "progress": False}
    first = pushforward.train("gan", out="r", **opts)
    with pytest.raises(PushforwardError, match="lr"):
        pushforward.train("gan", out="r", resume=True, **{**opts, "lr": 1e-3})
    with pytest.raises(PushforwardError, match="'gan' run"):
        pushforward.train("vae", data="ring8", out="r", resume=True, progress=False)
    with pytest.raises(PushforwardError, match="--out"):
        pushforward.train("gan", resume=True, **opts)
    # a finished run resumed is the same run: nothing trains again
    again = pushforward.train("gan", out="r", resume=True, **opts)
    for k, v in first.model.state_dict().items():
        assert torch.equal(v, again.model.state_dict()[k])
    assert [r["step"] for r in again.history()] == [r["step"] for r in first.history()]


def test_resume_rejects_a_tampered_checkpoint(cli, tmp_path: Path) -> None:
    code, _, err = cli("train", "gan", "--data", "ring8", "--steps", "10", "--hidden", "16",
                       "--out", "r", "--checkpoint-every", "5")  # fmt: skip
    assert code == 0, err
    ckpt = tmp_path / "r" / "checkpoints" / "last.safetensors"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])  # torn: only half of it
    args = ("train", "gan", "--data", "ring8", "--steps", "10", "--hidden", "16", "--out", "r")
    assert_user_error(cli(*args, "--resume"), "last.safetensors")


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_sigint_checkpoint_then_exit(sig: int, code: int, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = _command("gan", out, "--checkpoint-every", "100000")  # only the signal checkpoints
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    history = out / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (history.exists() and history.read_text().count("\n") >= 2):  # training is on
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err.decode()
    lines = err.decode().strip().splitlines()
    assert lines[-1].startswith("interrupted by SIG") and "--resume" in lines[-1]
    meta = json.loads((out / "checkpoints" / "last.json").read_text())
    assert not meta["finished"] and 50 <= meta["step"] < 1500
    assert f"at step {meta['step']}:" in lines[-1]
    done = subprocess.run(
        _command("gan", out, "--resume"), env=_env(), capture_output=True, timeout=600
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert json.loads((out / "checkpoints" / "last.json").read_text())["finished"]


def test_full_disk_mid_run_keeps_the_last_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opts = {"data": "ring8", "steps": 40, "hidden": 16, "depth": 2, "progress": False}
    real, calls = os.replace, {"n": 0}

    def replace_until_full(src: object, dst: object) -> None:
        calls["n"] += "last.safetensors" in str(dst)
        if "last.safetensors" in str(dst) and calls["n"] > 2:  # the disk fills up mid-run
            raise OSError(28, "No space left on device")
        real(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", replace_until_full)
    with pytest.raises(PushforwardError, match="No space left on device"):
        pushforward.train("gan", out="r", checkpoint_every=10, **opts)
    monkeypatch.setattr(os, "replace", real)
    kept = json.loads((tmp_path / "r" / "checkpoints" / "last.json").read_text())
    assert 0 < kept["step"] < 40 and not kept["finished"]
    assert not list((tmp_path / "r" / "checkpoints").glob(".*tmp"))  # no half-written file
    done = pushforward.train("gan", out="r", resume=True, checkpoint_every=10, **opts)
    assert done.history()[-1]["step"] == 40  # the kept checkpoint resumes
