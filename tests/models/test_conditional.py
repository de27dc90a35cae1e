"""Conditional models (--conditional): the label reaches the networks, a trained model draws the
class it is asked for (beating chance by a stated margin at a CI budget), shuffling the labels
at sampling shuffles the classes, and the refusals are one line each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import pushforward
from pushforward.data import load_dataset
from pushforward.errors import PushforwardError
from pushforward.explore import write_explorer
from pushforward.metrics.conditional import class_samples, mode_conditional
from pushforward.metrics.features import classifier_for, embed
from pushforward.models import GAN, VAE
from pushforward.models.conditional import (
    ClassFrequencies,
    ProjectionCritic,
    class_rows,
    one_hot,
)
from pushforward.training.frames import read_snapshots

from ..conftest import assert_user_error


def _build(cls: type[VAE] | type[GAN], data: str, **options: object) -> VAE | GAN:
    ds = load_dataset(data)
    cfg = cls.resolve_config(cls.Config(conditional=True, **options), ds)  # type: ignore[arg-type]
    model = cls(cfg, ds.shape)
    model.prepare(ds)
    return model


@pytest.mark.parametrize("cls", [VAE, GAN])
@pytest.mark.parametrize("data,arch", [("ring8", "mlp"), ("digits", "mlp"), ("digits", "conv")])
def test_the_label_reaches_the_networks(cls: type[VAE] | type[GAN], data: str, arch: str) -> None:
    torch.manual_seed(0)
    model = _build(cls, data, arch=arch)
    assert model.classes == (8 if data == "ring8" else 10)
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    a, b = model.sample(6, g(), 1), model.sample(6, g(), 2)
    assert a.shape == (6, *model.data_shape)
    assert torch.equal(a, model.sample(6, g(), 1))  # seeded
    assert not torch.allclose(a, b)  # the same noise under another class: other samples
    # per-sample labels, and the default: classes drawn by the data's frequencies
    mixed = model.sample(6, g(), torch.tensor([1, 1, 1, 2, 2, 2]))
    assert mixed.shape == a.shape
    freq = model._modules["label_frequencies"]
    assert isinstance(freq, ClassFrequencies)
    assert torch.allclose(freq.frequencies.sum(), torch.tensor(1.0))
    x = load_dataset(data).test[:8]
    y = torch.arange(8) % model.classes
    out = model.loss(x, model.phases[0], y)["loss"]
    assert torch.isfinite(out)
    if isinstance(model, VAE):  # the likelihood is of x given its label
        e1 = model.elbo(x, torch.Generator().manual_seed(0), y=y)["elbo"]
        e2 = model.elbo(x, torch.Generator().manual_seed(0), y=(y + 1) % model.classes)["elbo"]
        assert e1.shape == (8,) and not torch.allclose(e1, e2)
    else:
        assert not torch.allclose(model.discriminate(x, y), model.discriminate(x, (y + 1) % 8))


def test_projection_critic_is_psi_plus_the_class_embedding_inner_product() -> None:
    torch.manual_seed(0)
    critic = ProjectionCritic(torch.nn.Linear(3, 4), 4, classes=5, pack=2, act=torch.nn.Identity)
    x, y = torch.randn(6, 3), torch.randint(5, (6, 2))
    h = critic.features(x)
    embedded = critic.embed.weight.T[y[:, 0]] + critic.embed.weight.T[5 + y[:, 1]]  # [6, 4]
    want = critic.head(h) + (embedded * h).sum(1, keepdim=True)
    assert torch.allclose(critic(x, y), want, atol=1e-6)
    assert torch.equal(one_hot(torch.tensor([2]), 5, torch.float32), torch.eye(5)[2:3])


def test_unconditional_models_are_unchanged_and_refuse_labels() -> None:
    ds = load_dataset("ring8")
    for cls in (VAE, GAN):
        model = cls(cls.resolve_config(cls.Config(), ds), ds.shape)  # type: ignore[arg-type]
        assert model.classes == 0 and "label_frequencies" not in dict(model.named_modules())
        assert not any("label" in k or "embed" in k for k in model.state_dict())
        with pytest.raises(PushforwardError, match="not trained with --conditional"):
            model.sample(3, None, 1)


def test_classes_the_data_never_showed_are_not_scored_or_drawn() -> None:
    """--classes may name more classes than the data has; the metrics and the picture's rows
    take only those the model saw examples of."""
    model = _build(GAN, "digits", classes=12)
    assert model.classes == 12
    assert model.trained_classes() == list(range(10))
    labels, per, names = class_rows(model.trained_classes(), 64)
    assert per == 6 and names[-1] == "class 9" and int(labels.max()) == 9
    plain = GAN(GAN.resolve_config(GAN.Config(), load_dataset("ring8")), (2,))
    assert plain.trained_classes() == []


def test_refusals_are_one_line(cli: object) -> None:
    run = cli  # type: ignore[assignment]
    assert_user_error(run("train", "gan", "--data", "moons", "--conditional", "--steps", "2"),
                      "--conditional needs labelled data", "moons")  # fmt: skip
    assert_user_error(run("train", "vae", "--data", "digits", "--classes", "12", "--steps", "2"),
                      "--classes 12 needs --conditional")  # fmt: skip
    assert_user_error(
        run("train", "vae", "--data", "digits", "--conditional", "--classes", "5", "--steps", "2"),
        "--classes 5",
        "labels up to 9",
    )
    assert not list(Path().iterdir())  # nothing written by a refused command


def test_a_label_outside_the_trained_classes_is_refused(cli: object) -> None:
    run = cli  # type: ignore[assignment]
    code, _, err = run("train", "gan", "--data", "ring8", "--conditional", "--steps", "3",
                       "--out", "r")  # fmt: skip
    assert code == 0, err
    assert_user_error(run("sample", "r", "--label", "8"), "--label 8", "classes are 0 to 7")
    code, _, err = run("train", "gan", "--data", "ring8", "--steps", "3", "--out", "plain")
    assert code == 0, err
    assert_user_error(run("sample", "plain", "--label", "1"), "not trained with --conditional")


@pytest.mark.heavy
def test_conditional_gan_on_ring8_draws_each_asked_mode(tmp_path: Path) -> None:
    """At a CI budget each label's samples land at its own mode: 8/8 labels, and at least 40%
    of the samples within 3 sd of the asked mode (measured 53.5% at 1,500 steps; untrained,
    under 5%: its samples sit near the centre, away from every mode)."""
    torch.manual_seed(0)
    untrained = mode_conditional(_build(GAN, "ring8"), "ring8", 4000, seed=0)
    assert untrained["label_hq_fraction"] < 0.05, untrained
    run = pushforward.train(
        "gan", data="ring8", conditional=True, steps=1500, out=str(tmp_path / "r"), progress=False
    )
    got = mode_conditional(run.model, "ring8", 4000, seed=0)
    assert got["label_modes"] == 8
    assert got["label_hq_fraction"] >= 0.4, got
    assert min(got["label_hq_per_class"]) >= 0.25, got  # every label, not a few
    scores = run.evaluate(["conditional", "modes"], write=False)
    assert scores["modes"] == 8 and scores["label_modes"] == 8


@pytest.mark.heavy
@pytest.mark.parametrize("model", ["vae", "gan"])
def test_conditional_model_on_digits_draws_the_asked_class(model: str, tmp_path: Path) -> None:
    """The data's classifier reads a class's samples as that class far above chance (0.1), and
    shuffling the labels at sampling shuffles what it reads."""
    budget = {"vae": {"steps": 600}, "gan": {"steps": 800}}[model]  # 0.999 and 0.957 measured
    run = pushforward.train(
        model, data="digits", conditional=True, out=str(tmp_path / "r"), progress=False, **budget
    )
    net, _ = classifier_for(run.raw_data)
    fake, labels = class_samples(run.model, 10, 100, seed=0)
    read = embed(net, fake)[1].argmax(1)
    accuracy = float((read == labels).double().mean())
    assert accuracy >= 0.8, accuracy
    shuffled = torch.randperm(10, generator=torch.Generator().manual_seed(1))[labels]
    moved = run.sample(len(labels), seed=0, label=shuffled)
    read_moved = embed(net, moved)[1].argmax(1)
    assert float((read_moved == shuffled).double().mean()) >= 0.8
    assert float((read_moved == labels).double().mean()) <= 0.3  # not the old classes
    scores = run.evaluate(["conditional"], write=False)
    assert scores["cond_accuracy"] >= 0.8 and scores["cond_accuracy_floor"] >= 0.95
    assert scores["intra_fd"] > scores["intra_fd_floor"] * 0.5


def test_sample_draws_the_asked_class_and_a_grid_of_rows_by_default(cli: object) -> None:
    run = cli  # type: ignore[assignment]
    code, _, err = run("train", "vae", "--data", "digits", "--conditional", "--steps", "60",
                       "--out", "v")  # fmt: skip
    assert code == 0, err
    code, out, err = run("sample", "v")
    assert code == 0 and "a row of 6 for each class" in out, (out, err)
    assert Path("v/samples-n64-seed0.png").stat().st_size > 1000
    code, out, _ = run("sample", "v", "--label", "3", "-n", "5", "--out", "three.npy")
    assert code == 0 and "5 samples" in out
    loaded = pushforward.load("v")
    three = torch.from_numpy(__import__("numpy").load("three.npy"))
    assert torch.equal(three, loaded.sample(5, seed=0, label=3))
    assert not torch.equal(three, loaded.sample(5, seed=0, label=4))
    # conditioned reconstructions and interpolations: each example under its own label
    for flag in ("--recon", "--interpolate"):
        code, out, err = run("sample", "v", flag, "-n", "4")
        assert code == 0, err
    x, y = loaded.raw_data.test[:4], loaded.raw_data.test_labels[:4]
    own = loaded.model.reconstruct(x, y)
    other = loaded.model.reconstruct(x, (y + 5) % 10)
    assert (own - x).pow(2).mean() < (other - x).pow(2).mean()  # its own label fits it better
    assert_user_error(run("sample", "v", "--label", "3", "--recon"), "--label", "--recon")


def test_eval_writes_the_conditional_scores(cli: object) -> None:
    run = cli  # type: ignore[assignment]
    assert run("train", "gan", "--data", "ring8", "--conditional", "--steps", "40",
               "--out", "g")[0] == 0  # fmt: skip
    code, out, err = run("eval", "g", "--n-fake", "800")
    assert code == 0, err
    scores = json.loads(Path("g/eval.json").read_text())
    assert scores["label_modes"] <= 8 and 0 <= scores["label_hq_fraction"] <= 1
    assert len(scores["label_hq_per_class"]) == 8 and "modes" in scores
    assert "label_hq_fraction" in out


@pytest.mark.parametrize("model", ["gan", "vae"])
def test_the_explorer_colours_a_conditional_run_by_class(model: str) -> None:
    run = pushforward.train(
        model, data="ring8", conditional=True, steps=30, out="p", progress=False, snapshots=2
    )
    info, inputs, frames = read_snapshots(run.path)
    assert info["classes"] == 8
    labels = frames[-1].get("sample_labels", inputs.get("sample_labels"))
    assert labels is not None and set(labels.tolist()) == set(range(8))
    panels = type(run.model).panels(info)
    colours = [layer.get("colour") for p in panels for layer in p["layers"]]
    assert {"class": "sample_labels"} in colours
    assert write_explorer(run.path, Path("p.html"))


def test_the_explorer_shows_a_conditional_image_run_one_row_per_class() -> None:
    run = pushforward.train(
        "gan", data="digits", conditional=True, steps=4, out="d", progress=False, snapshots=2
    )
    info, inputs, frames = read_snapshots(run.path)
    assert info["columns"] == 6 and frames[-1]["samples"].shape == (60, 1, 8, 8)
    assert inputs["real"].shape == (60, 1, 8, 8)
    ds = load_dataset("digits")
    first_of_each = [ds.test[ds.test_labels == c][0] for c in range(10)]
    for c in range(10):  # each row holds held-out images of its class
        want = (first_of_each[c] * 255).round().to(torch.uint8)
        assert torch.equal(inputs["real"][6 * c], want)
    layers = [layer for p in type(run.model).panels(info) for layer in p["layers"]]
    assert all(layer.get("columns") == 6 for layer in layers if layer["draw"] == "images")


@pytest.mark.parametrize(
    ("model", "options"),
    [
        ("gan", {"data": "ring8", "spectral_norm": True, "loss": "hinge", "pack": 2}),
        ("gan", {"data": "ring8", "loss": "wgan-gp", "noise": "mixture", "precision": "bf16"}),
        ("gan", {"data": "digits", "arch": "conv", "hidden": 8, "blocks": 1, "batch_size": 16}),
        ("vae", {"data": "digits", "prior": "vamp", "prior_components": 7, "iw_samples": 3}),
        ("vae", {"data": "digits", "arch": "conv", "hidden": 8, "prior": "mog", "validation": 50}),
        ("vae", {"data": "grid25", "kl_warmup": 5, "free_bits": 0.1, "precision": "bf16"}),
        ("vae", {"data": "digits", "compile": True, "hidden": 16}),
    ],
)
def test_every_option_trains_conditionally(model: str, options: dict[str, object]) -> None:
    """Each remedy and option beside --conditional: a few steps train, the losses are finite,
    and the trained model still draws the asked class's samples, seeded."""
    run = pushforward.train(model, conditional=True, steps=6, out="o", progress=False, **options)
    assert all(r["loss"] is not None for r in run.history())
    x = run.sample(4, seed=1, label=1)
    assert torch.isfinite(x).all() and torch.equal(x, run.sample(4, seed=1, label=1))
    again = pushforward.load("o")  # the saved run rebuilds the conditional model
    assert again.model.classes == run.model.classes and torch.equal(again.sample(4, 1, label=1), x)


def test_the_conditional_scores_train_the_classifier_on_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no cached classifier, `eval --metrics conditional` trains it (its samples are
    scored without gradients; the classifier's training still needs them)."""
    monkeypatch.setenv("PUSHFORWARD_CACHE", str(tmp_path / "fresh-cache"))
    run = pushforward.train("vae", data="digits", conditional=True, steps=5, progress=False)
    scores = run.evaluate(["conditional"], n_fake=200, write=False)
    assert scores["cond_accuracy_floor"] > 0.9 and 0 <= scores["cond_accuracy"] <= 1
    assert list((tmp_path / "fresh-cache" / "classifiers").glob("digits-*.safetensors"))
