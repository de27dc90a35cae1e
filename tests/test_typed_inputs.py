"""Every value is typed where it enters: options from any source, the values of a data file,
and the strings and numbers a page embeds."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .conftest import assert_user_error
from .data.builders import write_idx

GAN = ["gan", "--data", "ring8", "--steps", "4", "--hidden", "16", "--snapshots", "2"]


@pytest.mark.parametrize(
    ("line", "needles"),
    [
        ("hidden = [16, 32]", ["hidden=[16, 32]", "an integer"]),
        ("lr = 2024-01-01", ["lr=datetime.date(2024, 1, 1)", "a number"]),
        ("seed = { a = 1 }", ["seed={'a': 1} (dict)", "an integer"]),
        ("arch = 3", ["arch=3", "a string"]),
        ("lr = true", ["lr=True", "a number"]),
    ],
)
def test_a_toml_value_of_the_wrong_type_is_named(
    cli, tmp_path: Path, line: str, needles: list[str]
) -> None:
    (tmp_path / "c.toml").write_text(line + "\n")
    args = ["train", "gan", "--data", "ring8", "--steps", "2", "--config", "c.toml", "--out", "r"]
    assert_user_error(cli(*args), "c.toml", *needles)
    assert not (tmp_path / "r").exists()


def test_the_python_api_types_its_keywords(tmp_path: Path) -> None:
    import pushforward

    with pytest.raises(pushforward.PushforwardError, match=r"hidden=\[16\] \(list\).*integer"):
        pushforward.train("gan", data="ring8", out="r", steps=2, hidden=[16])
    with pytest.raises(pushforward.PushforwardError, match=r"steps=True.*integer"):
        pushforward.train("gan", data="ring8", out="r", steps=True)


@pytest.mark.parametrize(
    ("file", "at", "value", "command", "needle"),
    [
        ("config.json", ("train", "seed"), {"x": 1}, "resume", "seed"),
        ("config.json", ("train", "steps"), [4], "resume", "steps"),
        ("model.json", ("model_config", "hidden"), [16], "sample", "hidden"),
        ("model.json", ("model_config", "arch"), 7, "eval", "arch"),
    ],
)
def test_a_run_file_value_of_the_wrong_type_is_named(
    cli, tmp_path: Path, file: str, at: tuple[str, str], value: object, command: str, needle: str
) -> None:
    code, _, err = cli("train", *GAN, "--out", "r")
    assert code == 0, err
    doc = json.loads((tmp_path / "r" / file).read_text())
    doc[at[0]][at[1]] = value
    (tmp_path / "r" / file).write_text(json.dumps(doc))
    args = {
        "resume": ["train", *GAN, "--out", "r", "--resume"],
        "sample": ["sample", "r", "-n", "5", "--out", "x.npy"],
        "eval": ["eval", "r"],
    }[command]
    assert_user_error(cli(*args), file, needle)


def _mnist(folder: Path, labels: np.ndarray, images: np.ndarray | None = None) -> str:
    folder.mkdir()
    n = len(labels)
    x = images if images is not None else np.zeros((n, 8, 8), np.uint8)
    for prefix in ("train", "t10k"):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", x)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels)
    return f"idx:{folder}"


@pytest.mark.parametrize(
    ("labels", "images", "needle"),
    [
        (np.full(20, -3, np.int32), None, "labels from -3"),
        (np.full(20, 2_000_000_000, np.int32), None, "2000000000"),
        (np.zeros(20, np.uint8), np.zeros((20, 0, 8), np.uint8), "(1, 0, 8)"),
        (np.zeros(0, np.uint8), np.zeros((0, 8, 8), np.uint8), "0 examples"),
        (np.zeros(5, np.uint8), np.zeros((5, 8, 8), np.uint8), "at least 10"),
    ],
)
def test_data_values_no_model_or_metric_can_use_are_refused_first(
    cli, tmp_path: Path, labels: np.ndarray, images: np.ndarray | None, needle: str
) -> None:
    data = _mnist(tmp_path / "d", labels, images)
    train = ["train", "gan", "--data", data, "--batch-size", "2", "--steps", "2", "--out", "r"]
    assert_user_error(cli(*train), needle)
    assert not (tmp_path / "r").exists()
    code, _, err = cli("train", "gan", "--data", "digits", "--steps", "2", "--out", "g")
    assert code == 0, err
    assert_user_error(cli("eval", "g", "--metrics", "features", "--data", data), needle)
    assert not (tmp_path / "g" / "eval.json").exists()


def test_16_bit_pngs_keep_their_values(tmp_path: Path) -> None:
    from pushforward.data import load_dataset

    (tmp_path / "p").mkdir()
    rng = np.random.default_rng(0)
    values = rng.integers(0, 65536, (10, 6, 5))
    values[:, 0, 0] = 1000  # far below 255/65535 of white: clipping would make it 1.0
    for i, a in enumerate(values):
        Image.fromarray(a.astype(np.uint16)).save(tmp_path / "p" / f"{i}.png")
    with Image.open(tmp_path / "p" / "0.png") as pic:
        assert pic.mode == "I;16"
    ds = load_dataset(f"images:{tmp_path / 'p'}")
    assert ds.train.shape == (10, 1, 6, 5)
    assert np.abs(ds.train[:, 0].numpy() - values / 65535).max() < 1e-6
    assert float(ds.train[0, 0, 0, 0]) == pytest.approx(1000 / 65535)
    # beside 8-bit colour images the 16-bit ones are repeated to three equal channels
    Image.fromarray(np.full((6, 5, 3), 255, np.uint8)).save(tmp_path / "p" / "rgb.png")
    both = load_dataset(f"images:{tmp_path / 'p'}")
    assert both.train.shape == (11, 3, 6, 5) and float(both.train[10].min()) == 1.0
    assert np.abs(both.train[0].numpy() - values[0] / 65535).max() < 1e-6


def test_pages_embed_any_string_and_number_safely() -> None:
    from pushforward.files import script_json

    text = script_json({"p": "a<!--<script></script>&b", "x": [math.nan, math.inf, 1.5]})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"p": "a<!--<script></script>&b", "x": [None, None, 1.5]}


def test_the_explorer_of_a_run_on_a_path_with_markup_holds_its_data(cli, tmp_path: Path) -> None:
    folder = tmp_path / "a<!--<script>"
    folder.mkdir()
    np.save(folder / "x.npy", np.random.default_rng(0).normal(size=(300, 2)).astype(np.float32))
    data = f"npy:{folder / 'x.npy'}"
    code, _, err = cli(
        "train", "gan", "--data", data, "--steps", "4", "--batch-size", "32", "--out", "r"
    )
    assert code == 0, err
    code, _, err = cli("explore", "r")
    assert code == 0, err
    page = (tmp_path / "r" / "explore.html").read_text()
    blob = page.split('<script id="data" type="application/json">')[1].split("</script>")[0]
    assert "<" not in blob
    assert json.loads(blob)["info"]["data"] == data
    assert page.count("<script") == 2  # the data and the code: nothing the path opened


def test_a_frame_header_with_nan_is_refused(cli, tmp_path: Path) -> None:
    """Signed again, so the checksum holds and the value itself is what is checked."""
    from pushforward.files import load_tensors_and_metadata, save_tensors

    code, _, err = cli("train", *GAN, "--out", "r")
    assert code == 0, err
    frame = sorted((tmp_path / "r" / "snapshots").glob("step-*.safetensors"))[-1]
    tensors, meta = load_tensors_and_metadata(frame)
    meta.pop("sha256")
    save_tensors(frame, tensors, {**meta, "seconds": "NaN"})
    assert_user_error(cli("explore", "r"), frame.name, "finite seconds")
