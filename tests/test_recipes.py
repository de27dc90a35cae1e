"""The shipped recipes: each trains from the command line on data of its shape, its options land
in the run's config under the user's own, and a recipe for another shape is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pushforward.recipes import recipe, recipes
from pushforward.run import Run

from .conftest import assert_user_error
from .data.builders import write_cifar_folder, write_mnist_folder

ALL = [(model, name) for model in ("gan", "vae", "flow") for name in recipes(model)]


def _data_for(shape: tuple[int, ...], root: Path) -> list[str]:
    """--data options naming a small set of the recipe's shape, in its real file format."""
    if shape == (1, 8, 8):
        return ["--data", "digits"]
    if shape == (1, 28, 28):
        return ["--data", f"idx:{write_mnist_folder(root / 'mnist', n_train=40)}"]
    if shape == (3, 32, 32):
        write_cifar_folder(root / "cifar-10-batches-bin", n=10)
        return ["--data", "cifar10", "--data-dir", str(root)]
    raise AssertionError(f"no test data of shape {shape}")


def test_every_model_that_trains_on_images_ships_the_three_shapes() -> None:
    for model in ("gan", "vae"):
        shapes = {r.shape for r in recipes(model).values()}
        assert shapes == {(1, 8, 8), (1, 28, 28), (3, 32, 32)}, model


@pytest.mark.parametrize(("model", "name"), ALL)
def test_every_recipe_trains_from_the_command_line(cli, tmp_path: Path, model, name) -> None:  # type: ignore[no-untyped-def]
    r = recipe(model, name)
    data = _data_for(r.shape, tmp_path)
    out = tmp_path / "run"
    tiny = ["--steps", "2", "--batch-size", "8"]
    code, _, err = cli("train", model, *data, "--recipe", name, *tiny, "--out", out)
    assert code == 0, err
    saved = json.loads((out / "config.json").read_text())
    assert saved["train"]["recipe"] == name
    for key, value in r.options.items():
        if key not in ("steps", "batch_size", "epochs", "minutes"):
            assert saved["model_config"].get(key, saved["train"].get(key)) == value, key
    run = Run.load(out, "cpu")
    x = run.sample(4, seed=0)
    assert x.shape == (4, *r.shape) and torch.isfinite(x).all()
    assert any(isinstance(m, torch.nn.Conv2d) for m in run.model.modules())


def test_the_users_options_override_the_recipe_and_their_budget_replaces_its_own(cli) -> None:  # type: ignore[no-untyped-def]
    cfg = Path("mine.toml")
    cfg.write_text("[model]\nlatent_dim = 5\n")
    code, _, err = cli(
        "train", "vae", "--data", "digits", "--recipe", "digits-8", "--config", cfg,
        "--hidden", "8", "--set", "lr=0.002", "--steps", "3", "--out", "r",
    )  # fmt: skip
    assert code == 0, err
    saved = json.loads(Path("r/config.json").read_text())
    model, train = saved["model_config"], saved["train"]
    assert (model["hidden"], model["latent_dim"], model["lr"]) == (8, 5, 0.002)
    assert model["arch"] == "conv" and model["prior"] == recipe("vae", "digits-8").options["prior"]
    assert (train["steps"], train["epochs"]) == (3, None)  # the recipe's length is dropped


def test_a_recipe_named_in_a_config_file_or_from_python_is_used(cli) -> None:  # type: ignore[no-untyped-def]
    import pushforward

    Path("c.toml").write_text('[train]\nrecipe = "digits-8"\nsteps = 2\n')
    assert cli("train", "gan", "--data", "digits", "--config", "c.toml", "--out", "a")[0] == 0
    run = pushforward.train("gan", data="digits", recipe="digits-8", steps=2, out="b")
    for folder in ("a", "b"):
        saved = json.loads(Path(folder, "config.json").read_text())["model_config"]
        assert saved["arch"] == "conv", folder
    assert run.model.config.ema == recipe("gan", "digits-8").options["ema"]


def test_a_run_started_from_a_recipe_resumes(cli) -> None:  # type: ignore[no-untyped-def]
    args = ["train", "gan", "--data", "digits", "--recipe", "digits-8", "--out", "r"]
    assert cli(*args, "--steps", "4", "--checkpoint-every", "2")[0] == 0
    code, _, err = cli(*args, "--steps", "6", "--checkpoint-every", "2", "--resume")
    assert_user_error((code, "", err), "steps")  # a resume keeps the options it started with
    code, _, err = cli(*args, "--steps", "4", "--checkpoint-every", "2", "--resume")
    assert code == 0, err


@pytest.mark.parametrize(
    ("model", "args", "needles"),
    [
        ("gan", ["--recipe", "grey-28"], ["--recipe grey-28", "8x8", "--recipe digits-8"]),
        ("vae", ["--recipe", "colour-32"], ["32x32 colour", "--recipe digits-8"]),
        ("gan", ["--recipe", "nope"], ["'nope'", "digits-8, ", "grey-28"]),
        ("gmm", ["--recipe", "grey-28"], ["gmm ships no recipes", "drop --recipe"]),
    ],
)
def test_a_recipe_that_does_not_fit_is_one_line(cli, model, args, needles) -> None:  # type: ignore[no-untyped-def]
    result = cli("train", model, "--data", "digits", *args, "--steps", "2", "--out", "r")
    assert_user_error(result, *needles)
    assert not Path("r").exists()


def test_help_lists_each_models_recipes(cli) -> None:  # type: ignore[no-untyped-def]
    for model in ("gan", "vae"):
        code, out, _ = cli("train", model, "--help")
        assert code == 0
        listing = out[out.index("recipes (--recipe NAME") :]
        for name, r in recipes(model).items():
            assert f"{name}  " in listing and r.description in listing
    assert "recipes (" not in cli("train", "gmm", "--help")[1]
