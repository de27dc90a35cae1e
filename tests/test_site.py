"""The documentation site: ``mkdocs build --strict`` builds it (a broken link, a missing reference
or a failing lesson fails the build), with the executed lessons, the command-line reference
generated from the parser and the Python API from the docstrings; it fetches nothing, so it
opens from disk; and in a browser the course page (with its inline explorer) and the API page
load without a console error, from disk and from ``python -m http.server``."""

from __future__ import annotations

import argparse
import html
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pushforward.cli import build_parser

from .conftest import open_page
from .notebooks import site_hooks

ROOT = Path(__file__).resolve().parents[1]
LESSONS = [p.stem for p in site_hooks().lesson_sources()]


def build(config: Path, out: Path, lessons: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PUSHFORWARD_LESSONS": str(lessons), "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, lessons: Path) -> Path:
    out = tmp_path_factory.mktemp("site")
    start = time.perf_counter()
    done = build(ROOT / "mkdocs.yml", out, lessons)
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"the site built in {time.perf_counter() - start:.0f} s")
    return out


def _text(page: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))


def test_the_site_has_every_page(site: Path) -> None:
    nav = ["index", "getting-started", "course/index", "reference/cli", "reference/api"]
    for name in nav + [f"course/{stem}" for stem in LESSONS]:
        assert (site / f"{name}.html").is_file(), name
    lesson = (site / f"course/{LESSONS[0]}.html").read_text()
    assert "Lesson 1" in lesson and lesson.count("data:image/png;base64,") >= 2  # its figures
    assert "<math" in lesson and "mathjax" not in lesson.lower()  # math drawn at build time


def _sections(page: Path) -> dict[str, str]:
    """A page's text under each second-level heading, by the heading's text."""
    found = {}
    for chunk in page.read_text().split("<h2 ")[1:]:
        heading, _, body = chunk.partition("</h2>")
        text = html.unescape(re.sub(r"<[^>]+>", "", "<" + heading)).strip(" ¶\n")
        found[text] = html.unescape(re.sub(r"<[^>]+>", "", body))
    return found


def test_the_command_line_reference_is_the_parsers_own(site: Path) -> None:
    sections = _sections(site / "reference/cli.html")

    def options(p: argparse.ArgumentParser, prog: str) -> Iterator[tuple[str, str]]:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from options(sub, f"{prog} {name}")
            for flag in action.option_strings:
                yield prog, flag

    found = list(options(build_parser(), "pushforward"))
    assert len(found) > 150  # every flag of every command and model
    for prog, flag in found:
        assert flag in sections.get(prog, ""), (prog, flag)
    assert "--r1" in sections["pushforward train gan"]
    assert "--r1" not in sections["pushforward train vae"]  # each model's own options


def test_the_api_reference_comes_from_the_docstrings(site: Path) -> None:
    from pushforward.run import Run

    text = " ".join(_text(site / "reference/api.html").split())
    for obj in (Run.evaluate, Run.sample, Run.explore):
        first = " ".join((obj.__doc__ or "").replace("`", "").split())[:60]
        assert first and first in text, obj
    assert "run_experiment" in text and "load_dataset" in text


def test_the_site_fetches_nothing(site: Path) -> None:
    pages = list(site.rglob("*.html"))
    assert len(pages) >= 25
    remote = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*(?:src|href)=["']?(?:https?:)?//""")
    for page in pages:
        assert not remote.search(page.read_text()), page


def test_a_broken_link_fails_the_build(tmp_path: Path, lessons: Path) -> None:
    docs = tmp_path / "docs"
    subprocess.run(["cp", "-r", str(ROOT / "docs"), str(docs)], check=True)
    (tmp_path / "src").symlink_to(ROOT / "src")
    (tmp_path / "tests").symlink_to(ROOT / "tests")
    (tmp_path / "mkdocs.yml").write_text((ROOT / "mkdocs.yml").read_text())
    page = docs / "guides" / "resume.md"
    page.write_text(page.read_text() + "\nSee [the missing page](no-such-page.md).\n")
    done = build(tmp_path / "mkdocs.yml", tmp_path / "site", lessons)
    assert done.returncode != 0 and "no-such-page.md" in done.stderr


@pytest.fixture(scope="module")
def served(site: Path) -> Iterator[str]:
    """The site behind ``python -m http.server`` on a free port."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "-b", "127.0.0.1", "-d", str(site)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait()


def _explorer_draws(browser: Any) -> None:
    """The lesson's inline explorer: its page loads in the cell's frame and draws its panels."""
    from selenium.webdriver.common.by import By

    frames = browser.find_elements(By.CSS_SELECTOR, "iframe[title='pushforward explorer']")
    assert frames
    browser.execute_script("arguments[0].scrollIntoView()", frames[0])
    browser.switch_to.frame(frames[0])
    try:
        assert browser.find_element(By.ID, "where").text.startswith("step ")
        blank = browser.execute_script(
            "const c = document.createElement('canvas'); const p = document.getElementById"
            "('panel-1'); c.width = p.width; c.height = p.height; return c.toDataURL()"
        )
        drawn = browser.execute_script("return document.getElementById('panel-1').toDataURL()")
        assert drawn != blank
    finally:
        browser.switch_to.default_content()


def test_the_course_and_the_api_pages_open_from_disk(browser: Any, site: Path) -> None:
    open_page(browser, site / f"course/{LESSONS[0]}.html")
    _explorer_draws(browser)
    open_page(browser, site / "reference/api.html")
    assert "Run" in browser.title or "API" in browser.title


def test_the_course_and_the_api_pages_open_served(browser: Any, served: str) -> None:
    open_page(browser, f"{served}/course/{LESSONS[0]}.html")
    _explorer_draws(browser)
    open_page(browser, f"{served}/reference/api.html")
    open_page(browser, f"{served}/index.html")
