"""The one training loop: seeded runs repeat exactly, logging and checkpoints are complete, and
every option of the loop (epochs, bf16, d_steps, tensorboard) does what it says."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import pushforward
from pushforward.errors import PushforwardError

from .conftest import assert_user_error


@pytest.mark.parametrize("model", ["vae", "gan", "flow"])
def test_same_seed_gives_the_same_weights(model: str, tmp_path: Path) -> None:
    for out in ("a", "b"):
        pushforward.train(model, data="moons", steps=30, out=out, progress=False, seed=5, hidden=32)
    a, b = (
        (tmp_path / "a" / "model.safetensors").read_bytes(),
        (tmp_path / "b" / "model.safetensors").read_bytes(),
    )
    assert a == b
    pushforward.train(model, data="moons", steps=30, out="c", progress=False, seed=6, hidden=32)
    assert (tmp_path / "c" / "model.safetensors").read_bytes() != a


def test_log_rows_and_checkpoint_contents(tmp_path: Path) -> None:
    pushforward.train(
        "gan",
        data="ring8",
        steps=25,
        out="r",
        progress=False,
        log_every=10,
        checkpoint_every=10,
        d_steps=2,
        hidden=16,
    )
    rows = [
        json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in rows] == [10, 20, 25]
    for r in rows:
        assert {
            "step",
            "epoch",
            "loss",
            "D_loss",
            "G_loss",
            "D_d_real",
            "D_d_fake",
            "images_per_sec",
            "seconds",
        } <= set(r)
        assert r["loss"] == r["G_loss"]
    # 25 steps x (2 D batches + 1 G batch) x 128 examples of 50,000
    assert rows[-1]["epoch"] == pytest.approx(25 * 3 * 128 / 50_000, abs=0.01)
    meta = json.loads((tmp_path / "r" / "checkpoints" / "last.json").read_text())
    assert (
        meta["step"] == 25
        and meta["finished"]
        and set(meta["optimizer_param_groups"]) == {"D", "G"}
    )
    ckpt = load_file(str(tmp_path / "r" / "checkpoints" / "last.safetensors"))
    assert any(k.startswith("opt.D.") and k.endswith("exp_avg") for k in ckpt)
    assert any(k.startswith("opt.G.") for k in ckpt) and "rng.torch" in ckpt
    final = load_file(str(tmp_path / "r" / "model.safetensors"))
    assert all(torch.equal(final[k], ckpt[f"model.{k}"]) for k in final)


def test_epochs_set_the_budget(tmp_path: Path) -> None:
    run = pushforward.train("vae", data="digits", epochs=3, batch_size=100, out="e", progress=False)
    rows = run.history()
    assert rows[-1]["step"] == 3 * (1437 // 100) and rows[-1]["epoch"] == pytest.approx(3.0)
    with pytest.raises(PushforwardError, match="not both"):
        pushforward.train("vae", data="digits", epochs=1, steps=1, out="x", progress=False)


def _record_step_precision(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bool, torch.dtype]]:
    """Inside every VAE step: (autocast on?, the dtype a decoder layer computes in)."""
    from pushforward.models.vae import VAE

    seen: list[tuple[bool, torch.dtype]] = []
    loss = VAE.loss

    def recording(self: VAE, x: torch.Tensor, phase: str) -> dict[str, torch.Tensor]:
        probe = self.decoder(torch.zeros(1, self.config.latent_dim))
        seen.append((torch.is_autocast_enabled("cpu"), probe.dtype))
        return loss(self, x, phase)

    monkeypatch.setattr(VAE, "loss", recording)
    return seen


def test_bf16_trains_and_stays_finite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        seen = _record_step_precision(patch)
        fp32 = pushforward.train("vae", data="digits", steps=200, out="f", progress=False)
        assert set(seen) == {(False, torch.float32)} and len(seen) == 200
        seen.clear()
        bf16 = pushforward.train(
            "vae", data="digits", steps=200, out="b", progress=False, precision="bf16"
        )
        assert set(seen) == {(True, torch.bfloat16)} and len(seen) == 200  # bf16 really ran
    e32, e16 = fp32.evaluate(["elbo"])["elbo"], bf16.evaluate(["elbo"])["elbo"]
    assert e16 > -40 and abs(e32 - e16) < 3.0, (e32, e16)


def test_compile_trains_as_well_as_eager(tmp_path: Path) -> None:
    # inductor draws its own random numbers, so the runs are not bit-equal: compare the result
    # (measured: eager -25.63, compiled -25.49, untrained -42.40 nats)
    from torch._dynamo.utils import counters

    opts = {"data": "digits", "steps": 200, "progress": False}
    eager = pushforward.train("vae", out="e", **opts)
    torch._dynamo.reset()
    counters.clear()
    compiled = pushforward.train("vae", out="c", compile=True, **opts)
    assert counters["stats"]["unique_graphs"] >= 1  # a graph was really captured and compiled
    untrained = pushforward.train("vae", out="u", **{**opts, "steps": 1})
    e, c, u = (r.evaluate(["elbo"], write=False)["elbo"] for r in (eager, compiled, untrained))
    assert c > u + 10 and abs(e - c) < 1.5, (e, c, u)


def test_binarization_defaults_follow_the_likelihood(tmp_path: Path) -> None:
    vae = pushforward.train("vae", data="digits", steps=2, out="v", progress=False)
    gauss = pushforward.train(
        "vae", data="digits", steps=2, out="g", progress=False, likelihood="gaussian"
    )
    gan = pushforward.train("gan", data="digits", steps=2, out="n", progress=False)
    assert vae.train_config.binarize == "dynamic" and set(vae.data.test.unique().tolist()) == {
        0.0,
        1.0,
    }
    assert gauss.train_config.binarize == "none" and gan.train_config.binarize == "none"
    assert (
        json.loads((tmp_path / "v" / "config.json").read_text())["model_config"]["likelihood"]
        == "bernoulli"
    )


def test_tensorboard_flag(tmp_path: Path) -> None:
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(PushforwardError, match="pip install tensorboard"):
            pushforward.train(
                "vae", data="moons", steps=2, out="t", progress=False, tensorboard=True
            )
    else:
        pushforward.train(
            "vae", data="moons", steps=2, out="t", progress=False, tensorboard=True, log_every=1
        )
        assert list((tmp_path / "t" / "tensorboard").iterdir())


def _nan_at(monkeypatch: pytest.MonkeyPatch, call: int, phase: str = "D") -> None:
    """Make the ``call``-th loss of ``phase`` NaN (the GAN's own loss, as the loop sees it)."""
    from pushforward.models.gan import GAN

    orig, calls = GAN.loss, {"n": 0}

    def loss(self: GAN, x: torch.Tensor, p: str) -> dict[str, torch.Tensor]:
        out = orig(self, x, p)
        if p == phase:
            calls["n"] += 1
            if calls["n"] == call:
                out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(GAN, "loss", loss)


def test_nan_policy_stop_names_the_step_and_keeps_the_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _nan_at(monkeypatch, 7)
    opts = {"data": "ring8", "steps": 20, "hidden": 16, "depth": 2, "progress": False}
    with pytest.raises(PushforwardError, match=r"step 7, phase D \(checkpoint of step 5 kept\)"):
        pushforward.train("gan", out="r", checkpoint_every=5, log_every=100, **opts)
    ckpt = load_file(str(tmp_path / "r" / "checkpoints" / "last.safetensors"))
    assert all(torch.isfinite(v).all() for k, v in ckpt.items() if k.startswith("model."))
    assert not (tmp_path / "r" / "model.safetensors").exists()


def test_nan_policy_skip_leaves_the_weights_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opts = {"data": "ring8", "hidden": 16, "depth": 2, "progress": False, "nan_policy": "skip"}
    before = pushforward.train("gan", out="a", steps=6, **opts)
    _nan_at(monkeypatch, 7)
    after = pushforward.train("gan", out="b", steps=7, **opts)
    # step 7's D update was skipped: D is exactly as after 6 steps; G still stepped
    d6, d7 = before.model.discriminator.state_dict(), after.model.discriminator.state_dict()
    assert all(torch.equal(d6[k], d7[k]) for k in d6)
    g6, g7 = before.model.generator.state_dict(), after.model.generator.state_dict()
    assert not all(torch.equal(g6[k], g7[k]) for k in g6)
    last = after.history()[-1]
    assert last["nonfinite"] > 0 and math.isfinite(last["D_loss"])


def test_validation_keeps_the_best_weights_and_stops_early(tmp_path: Path) -> None:
    """--validation holds examples out and keeps the weights that score them best; --patience
    ends the run once the score stops improving. Made to overfit (137 statically binarized
    digits, a 512-wide VAE, lr 3e-3): measured, the kept weights score -26.0 nats of test ELBO
    against -33.3 for the last ones, and the run stops at step 400 of a 2,000-epoch budget."""
    run = pushforward.train(
        "vae", data="digits", out="r", progress=False, validation=1300, patience=5,
        binarize="static", checkpoint_every=50, log_every=50, epochs=2000, hidden=512, lr=3e-3,
    )  # fmt: skip
    info = json.loads((tmp_path / "r" / "model.json").read_text())["info"]
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["data"]["n_train"] == 1437 - 1300 and info["validation_n"] == 1300
    rows = [
        json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    ]
    scored = {r["step"]: r["val_elbo"] for r in rows if "val_elbo" in r}
    assert list(scored) == list(range(50, info["steps"] + 1, 50))  # every checkpoint, once
    assert info["best_step"] == max(scored, key=scored.__getitem__)
    assert info["best_val_elbo"] == pytest.approx(scored[info["best_step"]])
    # stopped after 5 checkpoints without a better score, long before the budget
    assert info["steps"] == info["best_step"] + 5 * 50 and info["epochs"] < 2000
    kept = load_file(str(tmp_path / "r" / "model.safetensors"))
    best = load_file(str(tmp_path / "r" / "checkpoints" / "best.safetensors"))
    assert all(torch.equal(kept[k], best[k]) for k in kept)
    best_elbo = run.evaluate(["elbo"], write=False)["elbo"]
    last = load_file(str(tmp_path / "r" / "checkpoints" / "last.safetensors"))
    run.model.load_state_dict({k[6:]: v for k, v in last.items() if k.startswith("model.")})
    assert best_elbo > run.evaluate(["elbo"], write=False)["elbo"] + 3.0


def test_a_flow_validates_by_its_exact_likelihood() -> None:
    """The flow's --validation score is its exact held-out log-likelihood on the discrete
    scale. Made to overfit (137 digits): measured, the score peaks at step 100 (-112.4 nats,
    -118.9 at 50, -120.8 at 250, where patience ends the run), and the kept weights score 2.53
    bits/dim on the test split against 2.71 for the last ones."""
    run = pushforward.train(
        "flow", data="digits", out="f", progress=False, validation=1300, patience=3,
        checkpoint_every=50, log_every=50, steps=3000, hidden=32,
    )  # fmt: skip
    info = json.loads(Path("f/model.json").read_text())["info"]
    rows = [json.loads(line) for line in Path("f/metrics.jsonl").read_text().splitlines()]
    scored = {r["step"]: r["val_log_likelihood"] for r in rows if "val_log_likelihood" in r}
    assert info["best_step"] == max(scored, key=scored.__getitem__) < info["steps"] < 3000
    assert info["best_val_log_likelihood"] == pytest.approx(scored[info["best_step"]])
    best = run.evaluate(["nll"], write=False)["bits_per_dim"]
    last = load_file("f/checkpoints/last.safetensors")
    run.model.load_state_dict({k[6:]: v for k, v in last.items() if k.startswith("model.")})
    assert best < run.evaluate(["nll"], write=False)["bits_per_dim"] - 0.05


def test_validation_options_are_checked(cli) -> None:
    base = ("train", "vae", "--data", "digits", "--steps", "2")
    assert_user_error(cli(*base, "--validation", "1437"), "--validation 1437", "1436")
    assert_user_error(cli(*base, "--patience", "3"), "--patience", "--validation")
    assert_user_error(cli(*base, "--validation", "100", "--patience", "0"), "--patience")
    assert_user_error(
        cli("train", "gan", "--data", "ring8", "--steps", "2", "--validation", "100"),
        "--validation",
        "vae",
    )


def test_validation_resume_needs_the_same_checkpoints(tmp_path: Path) -> None:
    """Under --validation the checkpoints are when the score is taken: a resume may not move
    them (without it, --checkpoint-every may change)."""
    opts = dict(data="digits", steps=20, hidden=16, progress=False)
    pushforward.train("vae", out="v", checkpoint_every=5, validation=100, **opts)
    with pytest.raises(PushforwardError, match="checkpoint_every"):
        pushforward.train("vae", out="v", resume=True, checkpoint_every=10, validation=100, **opts)
    pushforward.train("vae", out="p", checkpoint_every=5, **opts)
    pushforward.train("vae", out="p", resume=True, checkpoint_every=10, **opts)


def test_cosine_schedule_sets_each_steps_rate(tmp_path: Path, cli) -> None:
    """--lr-schedule cosine: step t of T trains at lr * (1 + cos(pi (t - 1) / T)) / 2, for every
    optimizer (the GAN's two); the checkpoint records the rate of its step."""
    pushforward.train(
        "gan", data="ring8", steps=20, out="c", progress=False, hidden=16, lr=1e-3, lr_d=4e-3,
        lr_schedule="cosine", checkpoint_every=7,
    )  # fmt: skip
    last = json.loads((tmp_path / "c" / "checkpoints" / "last.json").read_text())
    factor = (1 + math.cos(math.pi * 19 / 20)) / 2
    groups = last["optimizer_param_groups"]
    assert groups["G"][0]["lr"] == pytest.approx(1e-3 * factor, rel=1e-9)
    assert groups["D"][0]["lr"] == pytest.approx(4e-3 * factor, rel=1e-9)
    assert_user_error(
        cli("train", "vae", "--data", "digits", "--minutes", "1", "--lr-schedule", "cosine"),
        "--lr-schedule cosine",
        "--epochs",
    )


def test_validation_scores_the_bound_the_model_trains_on() -> None:
    """Under --iw-samples K the held-out score is IWAE-K, not the ELBO: IWAE training trades ELBO
    for likelihood, so choosing its weights by the ELBO would pick against its objective."""
    from pushforward.metrics import likelihood
    from pushforward.models.vae import VAE, VAEConfig
    from pushforward.training.validation import validate

    torch.manual_seed(0)
    val = torch.bernoulli(torch.rand(50, 1, 8, 8))
    iw = VAE(VAEConfig(likelihood="bernoulli", latent_dim=16, hidden=16, iw_samples=6), (1, 8, 8))
    score = validate(iw, val)
    assert score == pytest.approx(-likelihood.iwae(iw, val, k=6, seed=0)["nll_nats"], rel=1e-6)
    assert score > likelihood.elbo(iw, val, seed=0)["elbo"] + 0.1
    plain = VAE(VAEConfig(likelihood="bernoulli", latent_dim=16, hidden=16), (1, 8, 8))
    assert validate(plain, val) == pytest.approx(likelihood.elbo(plain, val, seed=0)["elbo"])
