"""Hostile and absurd inputs: each gets exit status 2 and one `error:` line naming what to fix,
with no traceback, nothing partly written, and nothing written earlier damaged
(docs/reliability.md lists the guarantees)."""

from __future__ import annotations

import io
import math
import os
import tarfile
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import torch

from .conftest import assert_user_error
from .data.builders import write_cifar_folder


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

    from pushforward.files import load_tensors_and_metadata, save_tensors

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


@pytest.mark.parametrize("text", ["null", "[]", '{"train": "x"}', "{"])
def test_a_damaged_config_json_is_refused_by_resume(cli, finished: Path, text: str) -> None:
    (finished / "config.json").write_text(text)
    before = _tree(finished)
    assert_user_error(cli("train", *GAN, "--out", "r", "--resume"), "config.json")
    assert _tree(finished) == before


def test_a_start_refused_for_an_option_leaves_nothing_to_block_the_retry(
    cli, tmp_path: Path
) -> None:
    """`--batch-size 0` used to leave a half-made folder that refused the corrected command."""
    assert_user_error(cli("train", *GAN, "--batch-size", "0", "--out", "b"), "--batch-size")
    assert not (tmp_path / "b").exists()
    code, _, err = cli("train", *GAN, "--out", "b")
    assert code == 0, err


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
    from pushforward.run_folder import lock, unlock

    lock(tmp_path / "r")
    unlock(tmp_path / "r")


# ---------------------------------------------------------------- non-finite updates

LR_HUGE = ["gan", "--data", "ring8", "--lr", "1e6", "--steps", "100", "--hidden", "16",
           "--log-every", "10", "--checkpoint-every", "1"]  # fmt: skip


def _all_finite(path: Path) -> bool:
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    return all(bool(t.isfinite().all()) for t in tensors.values() if t.is_floating_point())


def test_overflowing_gradients_never_reach_the_weights(cli, tmp_path: Path) -> None:
    """--lr 1e6: the loss stays finite while the discriminator's gradients overflow. Under skip
    those updates are skipped (they used to write NaN into the saved weights and exit 0), the
    run ends with a warning, and a window of skipped updates logs null, not 0.0."""
    import json

    code, _, err = cli("train", *LR_HUGE, "--nan-policy", "skip", "--out", "s")
    assert code == 0, err
    run = tmp_path / "s"
    assert _all_finite(run / "model.safetensors")
    assert _all_finite(run / "checkpoints" / "last.safetensors")  # optimizer moments too
    assert "updates were skipped" in err
    assert "updates were skipped" in " ".join(
        json.loads((run / "model.json").read_text())["info"]["warnings"]
    )
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    skipped = [r for r in rows if r["nonfinite"] >= 1]
    assert skipped and all(r["D_loss"] is None for r in skipped)  # the D phase never ran
    # under stop: one line at the first bad update, and the checkpoint kept holds no NaN
    result = cli("train", *LR_HUGE, "--out", "t")
    assert_user_error(result, "non-finite loss or gradients at step")
    last = tmp_path / "t" / "checkpoints" / "last.safetensors"
    assert not last.exists() or _all_finite(last)


def test_a_validation_run_without_a_finite_best_score_resumes(cli, tmp_path: Path) -> None:
    """JSON holds a best score of -inf (no finite score yet) as null; resume reads it back."""
    args = ["vae", "--data", "ring8", "--steps", "10", "--hidden", "16", "--validation", "100",
            "--checkpoint-every", "5", "--out", "v"]  # fmt: skip
    assert cli("train", *args)[0] == 0
    _rewrite_checkpoint(
        tmp_path / "v",
        meta={"best": {"score": None, "step": 0, "since": 0}, "finished": False, "step": 5,
              "batches": 5},
    )  # fmt: skip
    code, _, err = cli("train", *args, "--resume")
    assert code == 0, err


def test_a_finite_loss_with_non_finite_gradients_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loss plus sqrt|w - w| is the same finite number, but its gradient is NaN: the
    update is skipped (skip) or stops the run (stop), and never reaches the weights."""
    import pushforward
    from pushforward.errors import PushforwardError
    from pushforward.models.gan import GAN

    loss = GAN.loss

    def poisoned(self, x, phase):  # type: ignore[no-untyped-def]
        out = loss(self, x, phase)
        trap = sum(
            (q - q.detach()).abs().sqrt().sum() for q in self.parameters() if q.requires_grad
        )
        return out | {"loss": out["loss"] + trap}

    monkeypatch.setattr(GAN, "loss", poisoned)
    opts = {"data": "ring8", "steps": 20, "hidden": 16, "progress": False, "log_every": 10}
    run = pushforward.train("gan", out="s", nan_policy="skip", **opts)
    assert _all_finite(tmp_path / "s" / "model.safetensors")
    assert all(r["nonfinite"] == 2 for r in run.history())  # both phases, every step
    with pytest.raises(PushforwardError, match="non-finite loss or gradients at step 1, phase D"):
        pushforward.train("gan", out="t", **opts)


def test_non_finite_weights_are_never_checkpointed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Losses and gradients stay finite while the EMA generator (no gradients of its own) turns
    NaN after step 15: the checkpoint of step 10 is kept and the run stops at step 20 with one
    line, before writing NaN (it used to write it into last.safetensors and model.safetensors)."""
    import pushforward
    from pushforward.errors import PushforwardError
    from pushforward.models.gan import GAN

    after_step = GAN.after_step
    steps = {"n": 0}

    def poisoned(self, phase, step):  # type: ignore[no-untyped-def]
        after_step(self, phase, step)
        steps["n"] += phase == "G"
        if steps["n"] > 15:
            next(self.generator_ema.parameters()).data.fill_(float("nan"))

    monkeypatch.setattr(GAN, "after_step", poisoned)
    opts = {"data": "ring8", "steps": 30, "hidden": 16, "progress": False}
    with pytest.raises(
        PushforwardError, match="weights became non-finite by step 20 \\(checkpoint of step 10 kept"
    ):
        pushforward.train("gan", out="s", checkpoint_every=10, **opts)
    assert _all_finite(tmp_path / "s" / "checkpoints" / "last.safetensors")
    assert not (tmp_path / "s" / "model.safetensors").exists()


def test_non_finite_option_values_are_refused(cli) -> None:
    for flag in ("--lr", "--beta", "--dist-timeout"):
        for value in ("inf", "nan", "-inf"):
            result = cli("train", "vae", "--data", "ring8", f"{flag}={value}", "--out", "x")
            assert_user_error(result, flag, "finite")


def test_temporary_files_left_by_a_kill_are_removed(cli, finished: Path) -> None:
    """A kill mid-write leaves .NAME.XXXX.tmp beside the file; the next writer removes them."""
    stale = [finished / ".model.safetensors.abc.tmp", finished / "checkpoints" / ".last.json.x.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    code, _, err = cli("train", *GAN, "--out", "r", "--resume")
    assert code == 0, err
    assert not any(path.exists() for path in stale)


def test_eval_on_an_unfinished_run_says_how_to_finish_it(cli, finished: Path) -> None:
    """It used to ask "is this a pushforward run folder?"."""
    for name in ("model.safetensors", "model.json"):
        (finished / name).unlink()
    for command in (("eval", "r"), ("sample", "r", "--out", "s.npy")):
        assert_user_error(cli(*command), "unfinished run", "step 10", "--resume")


def test_random_bytes_named_npy_are_not_called_pickles(cli, tmp_path: Path) -> None:
    (tmp_path / "rand.npy").write_bytes(bytes(range(256)) * 4)
    err = assert_user_error(
        cli("train", "gan", "--data", "npy:rand.npy", "--out", "q"), "NPY header"
    )
    assert "pickled" not in err and not (tmp_path / "q").exists()


def test_sample_reports_what_it_wrote(cli, tmp_path: Path) -> None:
    """--recon -n 16 used to say "32 reconstructions" (originals and reconstructions counted)."""
    assert cli("train", "vae", "--data", "digits", "--steps", "5", "--out", "v")[0] == 0
    code, out, err = cli("sample", "v", "--recon", "-n", "16", "--out", "rec.png")
    assert code == 0 and "(16 reconstructions)" in out, (out, err)


# ---------------------------------------------------------------- decompression bombs


def test_a_gzip_bomb_is_not_inflated(tmp_path: Path) -> None:
    """An IDX .gz whose header claims 40 bytes but which inflates to 256 MB: read no further
    than the header's size plus one byte, then refused for trailing bytes."""
    import struct
    import tracemalloc
    import zlib

    from pushforward.data.idx import read_idx_images
    from pushforward.errors import PushforwardError

    pack = zlib.compressobj(1, zlib.DEFLATED, 31)  # 31: a gzip stream
    parts = [pack.compress(bytes([0, 0, 8, 3]) + struct.pack(">3I", 10, 2, 2) + bytes(40))]
    parts += [pack.compress(bytes(1 << 20)) for _ in range(256)]
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    bomb.write_bytes(b"".join([*parts, pack.flush()]))
    assert bomb.stat().st_size < 2 << 20
    tracemalloc.start()
    with pytest.raises(PushforwardError, match="trailing bytes"):
        read_idx_images(bomb, "fix it")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 16 << 20, peak  # inflated in full: 256 MB


def test_a_png_bomb_is_one_line(cli, tmp_path: Path) -> None:
    """A PNG header claiming 100,000 x 100,000 pixels (Pillow refuses over 179 M)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">2I5B", 100_000, 100_000, 8, 0, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "bomb.png").write_bytes(png)
    assert_user_error(
        cli("train", "gan", "--data", "images:pics", "--out", "p"), "bomb.png", "too large"
    )
    assert not (tmp_path / "p").exists()


def test_a_data_dir_that_does_not_exist_is_refused(cli) -> None:
    assert_user_error(
        cli("data", "list", "--data-dir", "/nonexistent"), "--data-dir", "/nonexistent"
    )
    assert_user_error(
        cli("train", "gan", "--data", "digits", "--data-dir", "/nonexistent"), "--data-dir"
    )


def test_an_interrupted_demo_does_not_offer_a_resume_it_lacks(
    cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal

    from pushforward import cli as cli_module
    from pushforward.errors import Interrupted

    def interrupted(args: object) -> None:
        raise Interrupted(signal.SIGINT, 7)

    monkeypatch.setitem(cli_module.COMMANDS, "demo", interrupted)
    code, _, err = cli("demo")
    assert code == 130 and "--resume" not in err and "starts over when you run it again" in err, err
    monkeypatch.setitem(cli_module.COMMANDS, "train", interrupted)
    code, _, err = cli("train", "gan", "--data", "ring8")
    assert code == 130 and "at step 7" in err and "--resume" in err, err


def _tar_with(path: Path, entries: list[tuple[str, int]]) -> Path:
    """A .tar.gz whose entries hold that many zero bytes (they compress to almost nothing)."""
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, size in entries:
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = size
            tar.addfile(info, _Zeros(size))
    return path


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readinto(self, b: Any) -> int:
        n = min(len(b), self.left)
        b[:n] = bytes(n)
        self.left -= n
        return n

    def readable(self) -> bool:
        return True


@pytest.mark.parametrize("shape", ["huge member", "many entries", "huge file"])
def test_a_cifar_bomb_is_refused_before_it_is_read(cli, tmp_path: Path, shape: str) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path / "d"
    d.mkdir()
    if shape == "huge member":  # 64 MB of zeros in a 64 KB archive, named as a real batch
        _tar_with(d / "cifar-10-binary.tar.gz", [("data_batch_1.bin", 64 << 20)])
        needle = "more than a CIFAR-10 batch's 30,730,000"
    elif shape == "many entries":
        _tar_with(d / "cifar-10-binary.tar.gz", [(f"x{i}", 0) for i in range(100)])
        needle = "more than 64 entries"
    else:  # a sparse 8 GB file where a batch belongs: refused by its size, never read
        folder = write_cifar_folder(d / "cifar-10-batches-bin")
        with open(folder / "data_batch_3.bin", "r+b") as f:
            f.truncate(8 << 30)
        needle = "data_batch_3.bin: 8,589,934,592 bytes"
    tracemalloc.start()
    result = cli("train", "gmm", "--data", "cifar10", "--data-dir", str(d), "--out", "c")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert_user_error(result, needle)
    assert peak < 16 << 20, peak  # nothing near the claimed size was allocated
    assert not (tmp_path / "c").exists()


def _option_cases() -> list[tuple[str, str, str, str]]:
    """(model, flag, value, needle) for every numeric option of train and of each model: not a
    number, not finite, a fraction for a count, a count past int32 either way, past its bounds."""
    import dataclasses

    from pushforward.config import TrainConfig, _field_type
    from pushforward.models import MODELS

    cases = []
    for model, cls in [("vae", TrainConfig)] + [(m, MODELS[m].Config) for m in sorted(MODELS)]:
        for f in dataclasses.fields(cls):
            base, _ = _field_type(cls, f)
            if base not in (int, float):
                continue
            flag = "--" + f.name.replace("_", "-")
            values = {"abc": "is not valid"}
            if base is float:
                values |= {"nan": "finite", "inf": "finite", "-inf": "finite"}
            else:
                values |= {"1.5": "valid", str(10**30): "between", str(-(10**30)): "between"}
            m = f.metadata
            if m.get("at_least") is not None:
                values[f"{m['at_least'] - 1:g}"] = "at least"
            if m.get("above") is not None:
                values[f"{m['above']:g}"] = "above"
            if m.get("at_most") is not None:
                values[f"{m['at_most'] + 1:g}"] = "at most"
            cases += [(model, flag, v, needle) for v, needle in values.items()]
    return cases


@pytest.mark.parametrize(("model", "flag", "value", "needle"), _option_cases())
def test_every_numeric_option_refuses_nonsense(
    cli, tmp_path: Path, model, flag, value, needle
) -> None:  # type: ignore[no-untyped-def]
    """--lr -1, --lr nan, --beta -1, --kl-warmup -5, --seed 10**30 (an OverflowError deep in
    torch), --depth 10**30 (a model built layer by layer forever): each one line naming it."""
    args = ["train", model, "--data", "ring8", "--steps", "2", f"{flag}={value}", "--out", "x"]
    if flag == "--steps":
        args[4:6] = ["--epochs", "1"]
    assert_user_error(cli(*args), flag, needle)
    assert not (tmp_path / "x").exists()


def test_running_out_of_memory_is_one_line_and_leaves_no_debris(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CPU allocator's refusal mid-step (measured: --iw-samples 5000 --batch-size 40000 on
    ring8 asks for 381.5 GiB) is one line, and the run that never checkpointed leaves nothing
    that blocks the corrected command."""
    from pushforward.models.vae import VAE

    loss = VAE.loss

    def refused(self, x, phase):  # type: ignore[no-untyped-def]
        if len(x) > 64:
            raise RuntimeError(
                "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate "
                "memory: you tried to allocate 409600000000 bytes. Error code 12"
            )
        return loss(self, x, phase)

    monkeypatch.setattr(VAE, "loss", refused)
    args = ["train", "vae", "--data", "ring8", "--steps", "3", "--out", "o"]
    assert_user_error(
        cli(*args, "--batch-size", "128"), "out of memory", "381.5 GiB", "--batch-size"
    )
    assert not any(p.is_file() and p.name != ".lock" for p in (tmp_path / "o").rglob("*"))
    code, _, err = cli(*args, "--batch-size", "64")  # the corrected command, same --out
    assert code == 0, err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["sample", "RUN", "--seed", str(10**23), "--out", "s.npy"], "--seed"),  # was OverflowError
        (["sample", "RUN", "-n", "0"], "-n"),
        (["sample", "RUN", "--interpolate", "--steps", "1"], "--steps"),
        (["sample", "RUN", "--steps", "x"], "--steps"),
        (["sample", "RUN", "--components", "0"], "--components"),
        (["eval", "RUN", "--seed", str(-(10**23))], "--seed"),  # was OverflowError
        (["eval", "RUN", "-k", str(10**8)], "-k"),  # was hours of decoder passes
        (["eval", "RUN", "-k", "0"], "-k"),
        (["eval", "RUN", "--n-fake", "1"], "--n-fake"),
        (["eval", "RUN", "--n-real", "-3"], "--n-real"),
        (["eval", "RUN", "--metrics", ","], "--metrics"),  # was all metrics, silently
        (["bench", "--data", "ring8", "--budget-minutes", "nan"], "--budget-minutes"),
        (["bench", "--data", "ring8", "--budget-minutes", "0"], "--budget-minutes"),
        (["experiment", "mode-collapse", "--jobs", "100000"], "--jobs"),
        (["experiment", "mode-collapse", "--scale", "inf"], "--scale"),
        (["demo", "--out", "/proc/no/such/folder"], "--out"),  # no progress bar on its line
    ],
)
def test_every_command_refuses_nonsense_numbers(
    cli, gan_run: Path, args: list[str], needle: str
) -> None:  # type: ignore[no-untyped-def]
    args = [str(gan_run) if a == "RUN" else a for a in args]
    before = _tree(gan_run)
    assert_user_error(cli(*args), needle)
    assert _tree(gan_run) == before


def _fifo(path: Path) -> None:
    path.unlink(missing_ok=True)
    os.mkfifo(path)


def _deep(path: Path) -> None:
    path.write_text("[" * 100_000 + "]" * 100_000)


@pytest.mark.parametrize(
    ("damage", "command", "needle"),
    [
        (lambda r: _fifo(r / "model.json"), "eval", "not a regular file"),  # read forever before
        (lambda r: (r / "model.json").unlink() or (r / "model.json").symlink_to("/dev/zero"), "eval", "not a regular file"),
        (lambda r: (r / "model.safetensors").unlink() or (r / "model.safetensors").mkdir(), "sample", "not a regular file"),  # IsADirectoryError
        (lambda r: _deep(r / "model.json"), "eval", "nested too deeply"),  # RecursionError
        (lambda r: _fifo(r / "checkpoints" / "last.safetensors"), "resume", "not a regular file"),
        (lambda r: (r / ".lock").unlink() or (r / ".lock").symlink_to(r / "victim"), "resume", "symbolic link"),
        (lambda r: _fifo(r / ".lock"), "resume", "not a regular file"),
    ],
)  # fmt: skip
def test_a_run_file_that_is_no_regular_file_is_refused(
    cli, finished: Path, damage, command: str, needle: str
) -> None:  # type: ignore[no-untyped-def]
    (finished / "victim").write_text("keep")
    damage(finished)
    args = {
        "eval": ["eval", "r"],
        "sample": ["sample", "r"],
        "resume": ["train", *GAN, "--out", "r", "--resume"],
    }
    assert_user_error(cli(*args[command]), needle)
    assert (finished / "victim").read_text() == "keep"  # a planted link was never written through


def test_garbled_metrics_lines_are_dropped_on_resume(cli, tmp_path: Path) -> None:
    """Invalid UTF-8, non-objects and a string step in metrics.jsonl (a UnicodeDecodeError, then
    a TypeError, before): a resume drops them and logs its steps again."""
    import json

    args = ["train", "gan", "--data", "ring8", "--steps", "20", "--hidden", "16", "--log-every", "5",
            "--checkpoint-every", "10", "--out", "m"]  # fmt: skip
    assert cli(*args)[0] == 0
    run = tmp_path / "m"
    _rewrite_checkpoint(run, meta={"finished": False, "step": 10, "batches": 20})
    with open(run / "metrics.jsonl", "ab") as f:
        f.write(b'\xff\xfe garbage\n[1, 2]\n{"step": "x"}\n')
    code, _, err = cli(*args, "--resume")
    assert code == 0, err
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [5, 10, 15, 20]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--data", "npy:/dev/zero"], "not a regular file"),  # "file not found" before
        (["--data", "npy:FIFO"], "not a regular file"),
        (["--data", "ring8", "--config", "/dev/zero"], "not a regular file"),  # read forever before
        (["--data", "ring8", "--config", "FIFO"], "not a regular file"),
    ],
)
def test_a_data_or_config_file_that_is_no_regular_file_is_refused(
    cli, tmp_path: Path, args: list[str], needle: str
) -> None:  # type: ignore[no-untyped-def]
    os.mkfifo(tmp_path / "fifo")
    args = [a.replace("FIFO", str(tmp_path / "fifo")) for a in args]
    assert_user_error(cli("train", "gan", *args, "--steps", "2", "--out", "x"), needle)
    assert not (tmp_path / "x").exists()
