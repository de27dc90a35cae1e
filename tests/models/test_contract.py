"""The contract every registered model meets (models/base.py), as one battery parametrised over
MODELS: a new model gets these tests by its line in the registry, with its default options. The
test-only models of tests/models/toy.py take them too, registered for each test.

Each model trains a few steps on 2-D points (moons) and, where it says so, on images (digits)."""

from __future__ import annotations

import dataclasses
import json
import signal
from pathlib import Path

import pytest
import torch

import pushforward
from pushforward.config import TrainConfig
from pushforward.data import load_dataset
from pushforward.errors import Interrupted, PushforwardError
from pushforward.models import MODELS, Encoder, ExactDensity, FitsByEM, LikelihoodBound, Model

from ..data.builders import shaped
from .toy import TEST_MODELS, registered  # noqa: F401  (the fixture, used by every test here)

pytestmark = pytest.mark.usefixtures("registered")
NAMES = list(MODELS) + list(TEST_MODELS)
STEPS = 12
KINDS = {"points": "moons", "images": "digits"}


def _train(name: str, out: str, data: str = "moons", **options: object) -> pushforward.Run:
    options = {"steps": STEPS, "checkpoint_every": 4, "log_every": 4, "seed": 1, **options}
    return pushforward.train(name, data=data, out=out, progress=False, **options)


def _build(name: str, kind: str) -> Model:
    cls = MODELS[name]
    data = load_dataset(KINDS[kind])
    return cls(cls.resolve_config(cls.Config(), data), data.shape)


@pytest.mark.parametrize("name", NAMES)
def test_declares_what_it_is(name: str) -> None:
    cls = MODELS[name]
    assert issubclass(cls, Model) and dataclasses.is_dataclass(cls.Config)
    assert isinstance(cls.explain, str) and len(cls.explain) > 20
    # EM models have no gradient phases; gradient models one optimizer per phase
    assert issubclass(cls, FitsByEM) == (cls.phases == ())
    model = _build(name, "points")
    assert set(model.schedule) == set(cls.phases)
    assert set(model.optimizers()) == set(cls.phases)
    assert 0 < model.sampler_parameters() <= model.n_parameters()
    # the options bench trains it with are options it has
    known = {f.name for f in dataclasses.fields(cls.Config)} | {
        f.name for f in dataclasses.fields(TrainConfig)
    }
    for data in KINDS.values():
        assert set(cls.bench_options(load_dataset(data))) <= known
    # what the metrics ask of a capability answers: a density or a bound per example
    x = load_dataset("moons").test[:7]
    if isinstance(model, ExactDensity):
        assert model.log_prob(x).shape == (7,)
    if isinstance(model, LikelihoodBound):
        assert model.iwae_bound(x, 3).shape == (7,) and model.elbo(x)["elbo"].shape == (7,)
    if isinstance(model, Encoder):
        mu, logvar = model.encode(x)
        assert mu.shape == logvar.shape == (7, mu.shape[1])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", list(KINDS))
def test_sample_shape_dtype_device_and_seed(name: str, kind: str) -> None:
    torch.manual_seed(0)
    model = _build(name, kind)
    x = model.sample(5, torch.Generator().manual_seed(3))
    assert x.shape == (5, *model.data_shape) and x.dtype == torch.float32
    assert x.device == model.device == torch.device("cpu")
    assert torch.equal(x, model.sample(5, torch.Generator().manual_seed(3)))
    assert not torch.equal(x, model.sample(5, torch.Generator().manual_seed(4)))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", list(KINDS))
def test_temperature_scales_the_spread_about_the_centres(name: str, kind: str) -> None:
    """With one seed, samples at temperature 0.5 lie half as far from those at temperature ~0
    (the base distribution's centres pushed through the model) as samples at 1 do; exactly half
    for a mixture, about half through a network at its start (measured 0.46-0.52). 1 is the
    default."""
    torch.manual_seed(0)
    model = _build(name, kind)

    def draw(t: float) -> torch.Tensor:  # [200, D]
        return model.sample(200, torch.Generator().manual_seed(3), temperature=t).flatten(1)

    centre, half, one = draw(1e-6), draw(0.5), draw(1.0)
    assert torch.equal(one, model.sample(200, torch.Generator().manual_seed(3)).flatten(1))
    ratio = (half - centre).norm(dim=1).mean() / (one - centre).norm(dim=1).mean()
    assert 0.35 < float(ratio) < 0.65, float(ratio)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_weights(name: str, tmp_path: Path) -> None:
    for out, seed in (("a", 1), ("b", 1), ("c", 2)):
        _train(name, out, seed=seed)
    a, b, c = ((tmp_path / o / "model.safetensors").read_bytes() for o in "abc")
    assert a == b and a != c


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(name: str, tmp_path: Path) -> None:
    trained = _train(name, "r", data="digits")
    loaded = pushforward.load("r", device="cpu")
    assert loaded.model_name == name and type(loaded.model) is type(trained.model)
    want, got = trained.model.state_dict(), loaded.model.state_dict()
    assert set(want) == set(got) and all(torch.equal(want[k], got[k]) for k in want)
    assert torch.equal(trained.sample(20, seed=5), loaded.sample(20, seed=5))
    # an untrained model of the same options is another model: the comparison can fail
    fresh = _build(name, "images")
    assert any(not torch.equal(fresh.state_dict()[k], got[k]) for k in got)


@pytest.mark.parametrize("name", NAMES)
def test_resume_after_a_stop_ends_bit_identical(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped by SIGINT after step 6 (a checkpoint is written), resumed with the same command:
    the weights equal an uninterrupted run's. EM models refit from the start."""
    _train(name, "whole")
    cls = MODELS[name]
    if not issubclass(cls, FitsByEM):
        calls, after_step = [0], cls.after_step
        per_step = len(_build(name, "points").schedule)

        def stop_at_six(self: Model, phase: str, step: int) -> None:
            after_step(self, phase, step)
            calls[0] += 1
            if calls[0] == 6 * per_step:
                signal.raise_signal(signal.SIGINT)

        with monkeypatch.context() as patch, pytest.raises(Interrupted):
            patch.setattr(cls, "after_step", stop_at_six)
            _train(name, "cut")
        meta = json.loads((tmp_path / "cut" / "checkpoints" / "last.json").read_text())
        assert meta["step"] == 6 and not meta["finished"]
    else:
        _train(name, "cut")
    _train(name, "cut", resume=True)
    whole, cut = ((tmp_path / o / "model.safetensors").read_bytes() for o in ("whole", "cut"))
    assert whole == cut
    steps = [r["step"] for r in pushforward.load("cut").history()]
    assert steps == [r["step"] for r in pushforward.load("whole").history()]


@pytest.mark.parametrize("name", NAMES)
def test_bad_options_are_user_errors(name: str) -> None:
    """Every choice refuses a value not in it, every number its declared bounds, and every
    numeric option of the model declares some: none reaches the networks unchecked."""
    cls = MODELS[name]
    with pytest.raises(PushforwardError, match="no_such_option"):
        _train(name, "x", no_such_option=1)
    for f in dataclasses.fields(cls.Config):
        m = f.metadata
        bounds = [m[k] for k in ("at_least", "above") if m.get(k) is not None]
        if m.get("choices"):
            with pytest.raises(PushforwardError, match=f.name):
                _train(name, "x", **{f.name: "no-such-choice"})
        elif f.type in ("int", "float", "int | None", "float | None"):
            assert bounds, f"{name}: --{f.name} declares no bounds"
            bad = bounds[0] - 1 if m.get("at_least") is not None else bounds[0]
            bad = int(bad) if f.type.startswith("int") else bad
            with pytest.raises(PushforwardError, match=f.name):
                _train(name, "x", **{f.name: bad})
            # built in Python: refused where the options are built, before resolve_config or
            # the model could see them
            flag = f.name.replace("_", "-")
            with pytest.raises(PushforwardError, match=f"--{flag} {bad}"):
                cls.Config(**{f.name: bad})
            with pytest.raises(PushforwardError, match=f"--{flag} {bad}"):
                dataclasses.replace(cls.resolve_config(cls.Config(), shaped((2,))), **{f.name: bad})
