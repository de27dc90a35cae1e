"""Hostile and absurd inputs: each gets exit status 2 and one `error:` line naming what to fix,
with no traceback, nothing partly written, and nothing written earlier damaged
(docs/reliability.md lists the guarantees)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from .conftest import assert_user_error


@pytest.fixture
def gan_run(cli, tmp_path: Path) -> Path:
    code, _, err = cli("train", "gan", "--data", "ring8", "--steps", "20", "--out", "g")
    assert code == 0, err
    return tmp_path / "g"


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file of a run folder and its bytes (the lock file, which names its holder, aside)."""
    files = [p for p in folder.rglob("*") if p.is_file() and p.name != ".lock"]
    return {str(p.relative_to(folder)): p.read_bytes() for p in files}


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["vae", "--data", "ring8", "--latent-dim", "100000000"], ["parameters", "--latent-dim"]),
        (["gan", "--data", "ring8", "--hidden", "10000000", "--depth", "3"], ["--hidden"]),
        (["gmm", "--data", "digits", "--components", "10000000"], ["--components", "GiB"]),
    ],
)
def test_a_model_too_big_for_memory_is_refused_before_the_folder(
    cli, tmp_path: Path, args: list[str], needles: list[str]
) -> None:
    """Counted before anything is allocated: no failed allocation's traceback, no OOM kill,
    and no half-made run folder to block the corrected command."""
    assert_user_error(cli("train", *args, "--out", "big", "--steps", "2"), *needles)
    assert not (tmp_path / "big").exists()


def test_sample_sizes_are_bounded(cli, gan_run: Path, tmp_path: Path) -> None:
    before = _tree(gan_run)
    assert_user_error(cli("sample", str(gan_run), "-n", "1000000000000", "--out", "x.npy"), "-n")
    assert not (tmp_path / "x.npy").exists()
    assert_user_error(cli("sample", str(gan_run), "--out", "x.txt"), "x.txt", "FILE.npy")
    assert _tree(gan_run) == before
    # a picture draws no more than it shows, and says so
    code, out, err = cli("sample", str(gan_run), "-n", "300000", "--out", "p.png")
    assert code == 0 and "100,000 of the 300,000 samples" in out, (out, err)
    # more samples than one chunk are drawn in chunks: all of them, finite
    code, _, err = cli("sample", str(gan_run), "-n", "70000", "--out", "many.npy")
    assert code == 0, err
    import numpy as np

    many = np.load(tmp_path / "many.npy", allow_pickle=False)
    assert many.shape == (70000, 2) and np.isfinite(many).all()
    assert len(np.unique(many[:, 0])) > 69000  # no chunk repeats another


def test_expost_components_are_bounded(cli, tmp_path: Path) -> None:
    code, _, err = cli("train", "vae", "--data", "ring8", "--steps", "20", "--out", "v")
    assert code == 0, err
    assert_user_error(
        cli("sample", "v", "--sampler", "gmm", "--components", "100000"), "--components", "20,000"
    )
    assert not list((tmp_path / "v").glob("expost-gmm-*"))


def test_iwae_memory_does_not_grow_with_k() -> None:
    """The running log-sum-exp gives the bound of one log-sum-exp over all k weights."""
    from pushforward.models.vae import VAE, VAEConfig

    torch.manual_seed(0)
    vae = VAE(VAEConfig(latent_dim=2, likelihood="gaussian", hidden=16), (2,))
    x = torch.randn(5, 2)
    bound = vae.iwae_bound(x, 300, torch.Generator().manual_seed(1), max_rows=50)  # 30 chunks
    # the same 300 draws of z, all weights kept, one log-sum-exp
    g, (mu, logvar) = torch.Generator().manual_seed(1), vae.encode(x)
    with torch.no_grad():
        terms = [
            vae._log_terms(x, mu, logvar, torch.randn((10, 5, 2), generator=g)) for _ in range(30)
        ]
    log_w = torch.cat([(px + pz - q).double() for px, pz, q in terms])  # [300, 5]
    whole = torch.logsumexp(log_w, 0) - math.log(300)
    assert torch.allclose(bound, whole, atol=1e-9, rtol=0) and torch.isfinite(bound).all()


# ---------------------------------------------------------------- damaged run folders

GAN = ["gan", "--data", "ring8", "--steps", "10", "--hidden", "16", "--checkpoint-every", "5"]


@pytest.fixture
def finished(cli, tmp_path: Path) -> Path:
    """A finished GAN run: --resume on it loads and checks its checkpoint, then stops."""
    code, _, err = cli("train", *GAN, "--out", "r")
    assert code == 0, err
    return tmp_path / "r"


def _rewrite_checkpoint(run: Path, tensors=None, meta=None) -> None:  # type: ignore[no-untyped-def]
    """Re-save checkpoints/last.* with other tensors or JSON but valid checksums: the damage
    must be caught by what the checkpoint holds, not by the checksum alone."""
    import json

    from pushforward.checkpoint import load_tensors_and_metadata, save_tensors

    ckpt = run / "checkpoints"
    old, header = load_tensors_and_metadata(ckpt / "last.safetensors")
    new_meta = json.loads(header["checkpoint"]) | (meta or {})
    sha = save_tensors(ckpt / "last.safetensors", (tensors or (lambda t: t))(old),
                       {"checkpoint": json.dumps(new_meta)})  # fmt: skip
    beside = json.loads((ckpt / "last.json").read_text())
    (ckpt / "last.json").write_text(json.dumps(beside | {"sha256": sha}))


def _flip_first(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert old in data
    path.write_bytes(data.replace(old, new, 1))


def _moment_reshaped(t: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    key = next(k for k in t if k.endswith(".exp_avg") and t[k].dim() == 2)
    return t | {key: t[key].reshape(-1)[: t[key].numel() // 2].clone()}


def _weight_nan(t: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    key = next(k for k in t if k.startswith("model.") and t[k].is_floating_point())
    return t | {key: torch.full_like(t[key], float("nan"))}


DAMAGE = {
    # the fused Adam kernel read out of bounds on this: SIGSEGV, exit 139
    "optimizer moment of the wrong shape": (lambda r: _rewrite_checkpoint(r, _moment_reshaped), "exp_avg"),
    "NaN in the weights": (lambda r: _rewrite_checkpoint(r, _weight_nan), "non-finite"),
    "total_steps below step": (lambda r: _rewrite_checkpoint(r, meta={"total_steps": 3}), "total_steps"),
    "step as a string": (lambda r: _rewrite_checkpoint(r, meta={"step": "10"}), "step"),
    "header retyped F32 -> I32": (
        lambda r: _flip_first(r / "checkpoints" / "last.safetensors", b'"F32"', b'"I32"'), "checksum"),
    "one flipped bit": (lambda r: _flip_last_byte(r / "checkpoints" / "last.safetensors"), "checksum"),
    "tensors lost, last.json kept": (
        lambda r: (r / "checkpoints" / "last.safetensors").unlink(), "missing"),
}  # fmt: skip


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_checkpoint_is_refused_on_resume(cli, finished: Path, damage: str) -> None:
    do, needle = DAMAGE[damage]
    do(finished)
    before = _tree(finished)
    assert_user_error(cli("train", *GAN, "--out", "r", "--resume"), needle)
    assert _tree(finished) == before  # nothing written, nothing cleared


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda r: _flip_first(r / "model.safetensors", b'"F32"', b'"I32"'), "checksum"),
        (lambda r: _flip_last_byte(r / "model.safetensors"), "checksum"),
        (lambda r: _edit_json(r / "model.json", lambda m: m.pop("data_shape")), "data_shape"),
        (lambda r: (r / "model.json").write_text("null"), "model.json"),
        (lambda r: _edit_json(r / "model.json", lambda m: m.update(model_config=[1])), "table"),
        (lambda r: _edit_json(r / "model.json", lambda m: m.update(data_shape=[2, "x"])), "data_shape"),
        (lambda r: (r / "config.json").write_text("[]"), "config.json"),
    ],
)  # fmt: skip
def test_a_damaged_model_is_refused_by_eval_and_sample(cli, finished: Path, damage, needle) -> None:  # type: ignore[no-untyped-def]
    damage(finished)
    assert_user_error(cli("eval", "r"), needle)
    assert_user_error(cli("sample", "r", "--out", "s.npy"), needle)
    assert not (finished.parent / "s.npy").exists() and not (finished / "eval.json").exists()


def _edit_json(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    import json

    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))


def test_resume_refuses_changed_data(cli, tmp_path: Path) -> None:
    import numpy as np

    np.save(tmp_path / "pts.npy", np.random.default_rng(0).normal(size=(500, 2)).astype("float32"))
    args = (
        "train",
        "gan",
        "--data",
        "npy:pts.npy",
        "--steps",
        "10",
        "--hidden",
        "16",
        "--out",
        "u",
    )
    code, _, err = cli(*args)
    assert code == 0, err
    before = _tree(tmp_path / "u")
    np.save(tmp_path / "pts.npy", np.random.default_rng(1).normal(size=(500, 2)).astype("float32"))
    assert_user_error(cli(*args, "--resume"), "changed", "npy:pts.npy")
    assert _tree(tmp_path / "u") == before


def test_resume_without_config_json_keeps_the_checkpoints(cli, finished: Path) -> None:
    (finished / "config.json").unlink()
    before = _tree(finished)
    assert_user_error(cli("train", *GAN, "--out", "r", "--resume"), "config.json")
    assert_user_error(cli("train", *GAN, "--out", "r"), "config.json")  # nor a fresh start
    assert _tree(finished) == before


def test_a_finished_gmm_run_is_left_as_it_is_by_resume(cli, tmp_path: Path) -> None:
    args = ("train", "gmm", "--data", "ring8", "--components", "8", "--out", "g")
    assert cli(*args)[0] == 0 and cli("eval", "g")[0] == 0
    before = _tree(tmp_path / "g")
    code, _, err = cli(*args, "--resume")
    assert code == 0, err
    assert _tree(tmp_path / "g") == before  # eval.json kept, nothing refitted


def test_a_second_writer_is_refused_while_a_run_trains(cli, tmp_path: Path) -> None:
    """Two train processes into one --out used to both exit 0, with config.json from one run,
    weights from the other and metrics.jsonl interleaved."""
    import os
    import signal
    import subprocess
    import sys
    import time

    args = ["gan", "--data", "ring8", "--steps", "100000", "--hidden", "16", "--out", "r"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(
        [sys.executable, "-m", "pushforward", "train", *args], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.time() + 120
        while not (tmp_path / "r" / "metrics.jsonl").exists():  # training, lock held
            assert time.time() < deadline and first.poll() is None
            time.sleep(0.2)
        config = (tmp_path / "r" / "config.json").read_bytes()
        assert_user_error(cli("train", *args), "is training this run now", str(first.pid))
        assert_user_error(cli("train", *args, "--resume"), "is training this run now")
        assert (tmp_path / "r" / "config.json").read_bytes() == config
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    # a killed holder releases the lock with its process: the next writer gets it
    from pushforward.runs import lock, unlock

    lock(tmp_path / "r")
    unlock(tmp_path / "r")
