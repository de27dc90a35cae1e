"""Shared test set-up: one thread, no network, a private cache, and a CLI runner."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture(scope="session")
def lessons(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The executed lessons, shared by the course's tests and the site's build and by every
    worker of this session (docs/hooks.py runs each lesson once, under a lock)."""
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "lessons"


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


# the browser tests (of the explorer, the report and the documentation site): headless Chromium
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package (pip install -e '.[dev]')"
    if not CHROMIUM or not DRIVER:
        return "Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = _missing()
    if missing:
        message = f"no browser test: {missing} is not installed"
        if os.environ.get("PUSHFORWARD_BROWSER") == "required":
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # type: ignore[assignment]
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def open_page(driver: Any, page: Path | str) -> None:
    """Open a file (or a URL) and fail on any error in the browser's console."""
    driver.get(page if isinstance(page, str) else page.resolve().as_uri())
    time.sleep(0.3)
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
