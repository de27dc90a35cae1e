"""Shared test set-up: one thread, no network, a private cache, and a CLI runner."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Heavy tests first: started last, one of them would keep one worker busy for minutes
    after the other has finished."""
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the session, so the feature classifiers are trained once, not per test."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, session_cache: Path) -> None:
    """Each test runs in its own folder, downloads switched off, never the user's own cache."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PUSHFORWARD_CACHE", str(session_cache))
    monkeypatch.setenv("PUSHFORWARD_OFFLINE", "1")
    monkeypatch.delenv("PUSHFORWARD_DATA", raising=False)


CliResult = tuple[int, str, str]


@pytest.fixture
def cli() -> Callable[..., CliResult]:
    """Run ``pushforward ARGS`` in-process; returns (exit status, stdout, stderr)."""
    from pushforward.cli import main

    def run(*args: str) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as e:  # argparse exits for bad flags and --help
                code = int(e.code or 0)
        return code, out.getvalue(), err.getvalue()

    return run


def assert_user_error(result: CliResult, *needles: str) -> str:
    """Exit status 2, exactly one stderr line starting ``error:``, mentioning every needle."""
    code, _, err = result
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, err)
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


class PicklePayload:
    """Unpickling this creates a marker file: proof, when the file is absent, that no user file
    was ever unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (self.marker, "w"))
