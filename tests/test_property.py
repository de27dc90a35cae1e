"""Property tests: any damage to any file of a run folder, and any value of any option, ends in
exit 0 with sound output or exit 2 with one ``error:`` line; never a traceback or exit 1, and
never a byte changed outside the run folder."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pushforward.config import TrainConfig, field_names
from pushforward.models import MODELS

from .conftest import CliResult

# values that have broken readers of JSON: wrong types, markup, non-finite and huge numbers
HOSTILE = st.sampled_from(
    [
        None,
        True,
        -1,
        0,
        2**31,
        2_000_000_000_000,
        -(10**30),
        1.5,
        math.nan,
        math.inf,
        "",
        "x",
        "<!--<script>",
        "</script><b>",
        "../../outside",
        [],
        [16, 32],
        {},
        {"a": {"b": 1}},
        "2024-01-01",
    ]
)
# string values for a safetensors header, signed again so that its checksum holds: what a
# reader then finds is the value itself
HEADER = st.sampled_from(["NaN", "-inf", "-1", "1e400", "", "<!--<script>", "[]", '{"x": 1}', "x"])
DAMAGE = (
    "json value",
    "signed header",
    "truncate",
    "random bytes",
    "empty",
    "delete",
    "link out",
    "folder",
)
COMMANDS = ("sample", "eval", "explore", "resume", "retrain")


def _files(run: Path) -> list[str]:
    return sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file())


def _json_paths(obj: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document a value sits, the document itself included."""
    out = [at]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _json_paths(v, (*at, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:4]):
            out += _json_paths(v, (*at, i))
    return out


def _set(obj: Any, at: tuple[Any, ...], value: Any) -> Any:
    if not at:
        return value
    obj[at[0]] = _set(obj[at[0]], at[1:], value)
    return obj


def _damage(draw: Callable[..., Any], run: Path, name: str, outside: Path) -> str:
    """Damage the file ``name`` of ``run`` as ``draw`` chooses; returns what was done."""
    path = run / name
    how = draw(st.sampled_from(DAMAGE))
    raw = path.read_bytes()
    if how == "json value":
        if name.endswith(".safetensors"):  # the JSON header of a safetensors file
            n = int.from_bytes(raw[:8], "little")
            doc, body = json.loads(raw[8 : 8 + n]), raw[8 + n :]
        elif name.endswith((".json", ".jsonl")):
            doc, body = json.loads(raw.splitlines()[0] if name.endswith(".jsonl") else raw), b""
        else:
            how = "truncate"
    if how == "signed header":
        from pushforward.files import load_tensors_and_metadata, save_tensors

        if not name.endswith(".safetensors"):
            how = "random bytes"
        else:
            tensors, meta = load_tensors_and_metadata(path)
            meta.pop("sha256", None)
            key = draw(st.sampled_from(sorted(meta))) if meta else "extra"
            save_tensors(path, tensors, {**meta, key: draw(HEADER)})
            return f"{name}: header {key} signed"
    if how == "json value":
        at = draw(st.sampled_from(_json_paths(doc)))
        doc = _set(doc, at, draw(HOSTILE))
        text = json.dumps(doc).encode()  # NaN and Infinity as Python writes them
        if name.endswith(".safetensors"):
            text += b" " * (-len(text) % 8)
            path.write_bytes(len(text).to_bytes(8, "little") + text + body)
        else:
            path.write_bytes(text + b"\n")
        return f"{name}: {at} = {doc if not at else 'hostile'}"
    if how == "truncate":
        path.write_bytes(raw[: draw(st.integers(0, max(0, len(raw) - 1)))])
    elif how == "random bytes":
        path.write_bytes(draw(st.binary(min_size=1, max_size=64)))
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "delete":
        path.unlink()
    elif how == "link out":
        path.unlink()
        path.symlink_to(outside / "target.json")
    elif how == "folder":
        path.unlink()
        path.mkdir()
    return f"{name}: {how}"


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _assert_clean(result: CliResult, what: str) -> None:
    code, _, err = result
    assert "Traceback" not in err, (what, err)
    assert code in (0, 2), (what, code, err)
    if code == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), (what, err)


def _assert_sound(command: str, work: Path, run: Path) -> None:
    """Exit 0: what the command wrote is what it promises."""
    if command == "sample":
        x = np.load(work / "x.npy", allow_pickle=False)
        assert x.shape == (10, 2) and np.isfinite(x).all()
    elif command == "eval":
        doc = json.loads((run / "eval.json").read_text(), parse_constant=_no_constant)
        assert doc["n_fake"] == 200 and math.isfinite(doc["mmd"])
    elif command == "explore":
        page = (run / "explore.html").read_text()
        blob = page.split('<script id="data" type="application/json">')[1].split("</script>")[0]
        assert "<" not in blob and ">" not in blob
        data = json.loads(blob, parse_constant=_no_constant)
        assert data["frames"] and all(
            isinstance(f["step"], int) and math.isfinite(f["seconds"]) for f in data["frames"]
        )
    else:
        for name in ("model.safetensors", "model.json", "config.json"):
            assert (run / name).is_file(), name


def _no_constant(name: str) -> Any:
    raise AssertionError(f"{name} in JSON a page or a run folder holds")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished GAN run on ring8 with its frames and eval.json, copied for each example."""
    from pushforward.cli import main

    folder = tmp_path_factory.mktemp("pristine")
    run = folder / "g"
    args = ["train", "gan", "--data", "ring8", "--steps", "4", "--hidden", "16", "--out", str(run)]
    assert main([*args, "--snapshots", "3"]) == 0
    assert main(["eval", str(run), "--metrics", "two_sample", "--n-fake", "200"]) == 0
    return run


ARGS = {
    "sample": ["sample", "RUN", "-n", "10", "--out", "x.npy"],
    "eval": ["eval", "RUN", "--metrics", "two_sample", "--n-fake", "200"],
    "explore": ["explore", "RUN"],
    "resume": [
        "train",
        "gan",
        "--data",
        "ring8",
        "--steps",
        "4",
        "--hidden",
        "16",
        "--snapshots",
        "3",
        "--out",
        "RUN",
        "--resume",
    ],
    "retrain": ["train", "gan", "--data", "ring8", "--steps", "2", "--out", "RUN"],
}


# every kind of file a finished run holds (a frame stands for all frames)
RUN_FILES = [
    ".lock",
    "checkpoints/last.json",
    "checkpoints/last.safetensors",
    "config.json",
    "eval.json",
    "metrics.jsonl",
    "model.json",
    "model.safetensors",
    "samples.png",
    "snapshots/inputs.safetensors",
    "snapshots/step-0000004.safetensors",
]


def test_the_damaged_files_are_every_file_of_a_run(pristine: Path) -> None:
    """A file a run starts writing is added above, so the property below damages it too."""
    frames = {f for f in _files(pristine) if f.startswith("snapshots/step-")}
    assert set(_files(pristine)) - frames == set(RUN_FILES) - frames and len(frames) >= 2


@pytest.mark.parametrize("name", RUN_FILES)
@settings(
    max_examples=14,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_a_damaged_run_folder_is_one_line_or_sound_output(
    cli, pristine: Path, tmp_path: Path, name: str, data: st.DataObject
) -> None:
    work = Path(tempfile.mkdtemp(dir=tmp_path))  # one per example: hypothesis replays some
    outside = work / "outside"
    outside.mkdir()
    (outside / "target.json").write_text('{"model": "gan"}\n')
    run = work / "g"
    shutil.copytree(pristine, run, symlinks=True)
    what = _damage(data.draw, run, name, outside)
    command = data.draw(st.sampled_from(COMMANDS))
    before = {k: v for k, v in _snapshot(work).items() if not k.startswith("g/")}
    args = [str(run) if a == "RUN" else str(work / a) if a == "x.npy" else a for a in ARGS[command]]
    result = cli(*args)
    _assert_clean(result, f"{command} after {what}")
    after = {k: v for k, v in _snapshot(work).items() if not k.startswith("g/")}
    after.pop("x.npy", None)
    assert after == before, f"{command} after {what} changed files outside the run"
    if result[0] == 0:
        _assert_sound(command, work, run)


# every option of train: flags (strings), a TOML file (typed values) and the Python API, over a
# base of small, fast options that the option drawn replaces (--compile, which compiles for a
# minute on the CPU, has its own tests)
BASE: dict[str, dict[str, Any]] = {
    "gan": {"steps": 2, "minutes": 0.05, "hidden": 8, "snapshots": 0},
    "vae": {"steps": 2, "minutes": 0.05, "hidden": 8, "snapshots": 0},
    "gmm": {"steps": 2, "components": 3, "snapshots": 0},
}
_OPTIONS = st.sampled_from(list(BASE)).flatmap(
    lambda m: st.tuples(
        st.just(m),
        st.sampled_from(
            sorted(set(field_names(TrainConfig, MODELS[m].Config)) - {"data", "resume", "compile"})
        ),
    )
)
_TEXT = st.sampled_from(["-1", "0", "1e400", "nan", "<b>", "[1]", "", "2147483648", "true", "x"])
_TOML = st.sampled_from(
    ["[16, 32]", "2024-01-01", "{ a = 1 }", "true", "-5", "1e400", "nan", '"x"', "0.5", "3"]
)


@settings(
    max_examples=45,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    option=_OPTIONS,
    how=st.sampled_from(["flag", "toml", "python"]),
    text=_TEXT,
    toml=_TOML,
)
def test_any_option_value_is_one_line_or_a_run(
    cli, tmp_path: Path, option: tuple[str, str], how: str, text: str, toml: str
) -> None:
    import pushforward
    from pushforward.errors import PushforwardError

    model, name = option
    out = Path(tempfile.mkdtemp(dir=tmp_path)) / "o"
    base = {k: v for k, v in BASE[model].items() if k != name}
    command = ["train", model, "--data", "ring8", "--out", str(out)]
    if how == "flag":
        flags = [f"--{k.replace('_', '-')}={v}" for k, v in base.items()]
        result = cli(*command, *flags, f"--{name.replace('_', '-')}={text}")
    elif how == "toml":
        cfg = tmp_path / "c.toml"
        cfg.write_text("".join(f"{k} = {v}\n" for k, v in base.items()) + f"{name} = {toml}\n")
        result = cli(*command, "--config", str(cfg))
    else:
        try:
            value = json.loads(toml.replace("{ a = 1 }", '{"a": 1}'))
        except json.JSONDecodeError:
            value = toml
        try:
            pushforward.train(model, data="ring8", out=out, progress=False, **{**base, name: value})
            result = (0, "", "")
        except PushforwardError as e:
            result = (2, "", f"error: {e}")
    _assert_clean(result, f"{how} {model} {name}: {text if how == 'flag' else toml}")
    if result[0] == 0:
        assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
