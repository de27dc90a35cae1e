"""Fuzzed parsers: any bytes give either data or a PushforwardError, never another exception."""

from __future__ import annotations

import gzip
import io
import tempfile
from pathlib import Path

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pushforward.data import idx
from pushforward.data.images import load_npy
from pushforward.errors import PushforwardError

from .builders import idx_bytes

FUZZ = settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)  # seeded: CI never flakes


def _mutations() -> st.SearchStrategy[bytes]:
    """Valid IDX files with bytes flipped, cut or appended, plus plain noise."""
    valid = idx_bytes(np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4))

    def mutate(data: tuple[int, int, bytes]) -> bytes:
        pos, cut, extra = data
        b = bytearray(valid)
        b[pos % len(b)] ^= 0xFF
        return bytes(b[: max(0, len(b) - cut)]) + extra

    return st.one_of(
        st.binary(max_size=64),
        st.tuples(st.integers(0, 100), st.integers(0, 30), st.binary(max_size=8)).map(mutate),
    )


@FUZZ
@given(_mutations(), st.booleans())
def test_idx_parser_never_crashes(raw: bytes, gz: bool) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f-idx3-ubyte"
        path.write_bytes(gzip.compress(raw) if gz else raw)
        try:
            arr = idx.read_idx_images(path, "fix")
        except PushforwardError as e:
            assert str(path) in str(e)
        else:
            assert arr.dtype == torch.float32 and arr.ndim == 4
            assert float(arr.min()) >= 0 and float(arr.max()) <= 1


@FUZZ
@given(st.binary(max_size=4000))
def test_cifar_parser_never_crashes(raw: bytes) -> None:
    try:
        x, y = idx.parse_cifar_batch(raw, "batch.bin", "fix")
    except PushforwardError as e:
        assert "batch.bin" in str(e)
    else:
        assert x.shape[1:] == (3, 32, 32) and len(x) == len(y)


def _npy_mutations() -> st.SearchStrategy[bytes]:
    buf = io.BytesIO()
    np.save(buf, np.arange(12.0).reshape(6, 2))
    valid = buf.getvalue()

    def mutate(data: tuple[int, int, int]) -> bytes:
        pos, val, cut = data
        b = bytearray(valid)
        b[pos % len(b)] = val
        return bytes(b[: len(b) - cut])

    return st.one_of(
        st.binary(max_size=200),
        st.tuples(st.integers(0, 200), st.integers(0, 255), st.integers(0, 40)).map(mutate),
    )


@FUZZ
@given(_npy_mutations())
def test_npy_loader_never_crashes(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.npy"
        path.write_bytes(raw)
        try:
            kind, x = load_npy(path)
        except PushforwardError as e:
            assert str(path) in str(e)
        else:
            assert kind in ("points", "images") and x.isfinite().all()


def _png_mutations() -> st.SearchStrategy[bytes]:
    """A valid 4x4 PNG with bytes flipped or cut, plus plain noise."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.arange(16, dtype=np.uint8).reshape(4, 4)).save(buf, format="PNG")
    valid = buf.getvalue()

    def mutate(data: tuple[int, int]) -> bytes:
        pos, cut = data
        b = bytearray(valid)
        b[pos % len(b)] ^= 0xFF
        return bytes(b[: max(0, len(b) - cut)])

    return st.one_of(
        st.binary(max_size=64), st.tuples(st.integers(0, 200), st.integers(0, 40)).map(mutate)
    )


@FUZZ
@given(st.lists(_png_mutations(), min_size=1, max_size=3))
def test_image_folder_loader_never_crashes(files: list[bytes]) -> None:
    from pushforward.data.images import load_image_folder

    with tempfile.TemporaryDirectory() as d:
        for i, raw in enumerate(files):
            (Path(d) / f"{i}.png").write_bytes(raw)
        try:
            x, _ = load_image_folder(Path(d))
        except PushforwardError as e:
            assert d in str(e)
        else:
            assert x.dim() == 4 and len(x) == len(files) and x.isfinite().all()


_KEYS = st.sampled_from(["seed", "lr", "epochs", "precision", "bogus", "data", "tensorboard"])
_VALUES = st.one_of(
    st.integers(-5, 5), st.floats(allow_nan=True), st.booleans(), st.text(max_size=8)
)


@FUZZ
@given(st.text(max_size=80), st.lists(st.tuples(_KEYS, st.text(max_size=8)), max_size=3))
def test_config_parsers_never_crash(toml_text: str, sets: list[tuple[str, str]]) -> None:
    """Any TOML file text and any --set strings resolve or give a PushforwardError."""
    from pushforward.config import TrainConfig, resolve
    from pushforward.models.vae import VAEConfig

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.toml"
        path.write_text(toml_text)
        try:
            tcfg, _ = resolve(
                (TrainConfig, VAEConfig), {}, str(path), [f"{k}={v}" for k, v in sets]
            )
        except PushforwardError as e:
            assert str(e)
        else:
            assert isinstance(tcfg, TrainConfig)


@FUZZ
@given(st.dictionaries(_KEYS, _VALUES, max_size=4))
def test_config_values_never_crash(values: dict[str, object]) -> None:
    """Ill-typed values in a TOML file or the Python API: resolved or one clear error."""
    from pushforward.config import TrainConfig, resolve
    from pushforward.models.vae import VAEConfig

    try:
        resolve((TrainConfig, VAEConfig), values, None, [])
    except PushforwardError as e:
        assert str(e)
