"""Options resolve defaults < TOML < flags < --set, with typed values and named errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pushforward.config import TrainConfig, as_dict, build, resolve
from pushforward.errors import PushforwardError
from pushforward.models.gmm import GMMConfig


def test_precedence(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('data = "grid25"\nseed = 5\n[model]\ncomponents = 25\ntol = 1e-4\n')
    tcfg, mcfg = resolve(
        (TrainConfig, GMMConfig), {"seed": "7", "components": "12"}, str(toml), ["components=3"]
    )
    assert tcfg.data == "grid25" and tcfg.seed == 7  # flag beats TOML
    assert mcfg.components == 3 and mcfg.tol == 1e-4  # --set beats flag; TOML beats default
    assert tcfg.batch_size == TrainConfig().batch_size


def test_json_round_trip() -> None:
    tcfg = TrainConfig(data="ring8", steps=5, test_data=None)
    assert build(TrainConfig, as_dict(tcfg), "x") == tcfg


@pytest.mark.parametrize(
    ("given", "needle"),
    [
        ({"seed": "1.5"}, "integer"),
        ({"tol": "small"}, "number"),
        ({"seed": True}, "integer"),
        ({"covariance": "spherical"}, "full, diag"),
        ({"tol": None}, "cannot be empty"),
    ],
)
def test_bad_values_are_named(given: dict[str, object], needle: str) -> None:
    with pytest.raises(PushforwardError, match=needle) as e:
        resolve((TrainConfig, GMMConfig), given, None, [])
    assert next(iter(given)) in str(e.value)


def test_unknown_keys_list_the_valid_ones(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("componets = 3\n")
    with pytest.raises(PushforwardError, match="componets") as e:
        resolve((TrainConfig, GMMConfig), {}, str(toml), [])
    assert "components" in str(e.value) and str(toml) in str(e.value)
    toml.write_text("components = [")
    with pytest.raises(PushforwardError, match="not valid TOML"):
        resolve((TrainConfig, GMMConfig), {}, str(toml), [])
