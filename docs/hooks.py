"""Build hooks of the documentation site (mkdocs.yml names this file).

- The lessons (course/NN_*.py, jupytext text notebooks) become executed notebooks: each is run
  top to bottom in a kernel of the interpreter building the site, from a scratch copy of
  docs/course/ (its runs land there, not in docs/). An executed notebook is kept in
  ``$PUSHFORWARD_LESSONS`` (default build/lessons/) with the SHA-256 of its lesson and of the
  package's source, so a build after the tests, or a second build, runs no lesson twice; a
  lock per lesson lets processes sharing the folder (the tests' workers) run each lesson once.
- Their math is written as MathML at build time and their progress widgets are dropped, so a
  lesson page needs no script from a network: the site opens from disk.
- reference/cli.md is the parser's own ``--help`` for every command, so it cannot drift.
"""

from __future__ import annotations

import argparse
import fcntl
import functools
import hashlib
import importlib.util
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import jupytext
import nbformat
from latex2mathml.converter import convert
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
WIDGET = "application/vnd.jupyter.widget-view+json"


def lesson_sources() -> list[Path]:
    return sorted((DOCS / "course").glob("[0-9][0-9]_*.py"))


TIMEOUT = 300  # seconds a cell may take: a lesson runs in under 5 minutes on 2 cores


@functools.cache
def _package_digest() -> bytes:
    """The package's source, read once per process."""
    h = hashlib.sha256()
    for path in sorted((ROOT / "src" / "pushforward").rglob("*")):
        if path.suffix in (".py", ".js", ".toml"):
            h.update(path.relative_to(ROOT).as_posix().encode() + path.read_bytes())
    return h.digest()


def _digest(lesson: Path) -> str:
    """The lesson's source and the package's: what its outputs depend on."""
    return hashlib.sha256(lesson.read_bytes() + _package_digest()).hexdigest()


def _executor() -> Any:
    """tests/notebooks.py's ``execute``: a fresh kernel of this interpreter."""
    spec = importlib.util.spec_from_file_location("notebooks", ROOT / "tests" / "notebooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.execute


def run_lesson(lesson: Path, scratch: Path) -> nbformat.NotebookNode:
    """Execute one lesson where a reader opens it (docs/course/, the docs' figures beside it),
    in a scratch copy of that folder; the notebook records the digest of its sources."""
    here = scratch / "docs" / "course"
    here.mkdir(parents=True, exist_ok=True)
    figures = scratch / "docs" / "experiments"
    if not figures.exists():
        figures.symlink_to(DOCS / "experiments")
    done = _executor()(jupytext.read(lesson), here, timeout=TIMEOUT)
    done.metadata["pushforward_lesson_sha256"] = _digest(lesson)
    return done


def executed(lesson: Path, store: Path) -> Path:
    """The executed notebook of ``lesson`` in ``store``, run now unless one from the same
    sources is there (a failing cell raises, naming the cell)."""
    path = store / "course" / f"{lesson.stem}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process running this lesson: wait for it
        if path.exists():
            nb = nbformat.read(path, as_version=4)
            if nb.metadata.get("pushforward_lesson_sha256") == _digest(lesson):
                return path
        with tempfile.TemporaryDirectory() as scratch:
            nb = run_lesson(lesson, Path(scratch))
        partial = path.with_suffix(".partial")
        nbformat.write(nb, partial)
        partial.replace(path)  # whole, or not there
    return path


_MATH = re.compile(r"\$\$(.+?)\$\$|(?<![\\$])\$([^$\n]+?)\$", re.S)


def mathml(markdown: str) -> str:
    """$...$ and $$...$$ as MathML; code spans and blocks are left as they are."""
    parts = re.split(r"(```.*?```|`[^`\n]*`)", markdown, flags=re.S)
    for i in range(0, len(parts), 2):  # the even parts are outside code
        parts[i] = _MATH.sub(
            lambda m: (
                convert(m.group(1), display="block")
                if m.group(1) is not None
                else convert(m.group(2))
            ),
            parts[i],
        )
    return "".join(parts)


def for_the_site(path: Path, out: Path) -> None:
    """The executed notebook as the site shows it: math as MathML, no widget outputs."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = mathml(cell.source)
        elif cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if WIDGET not in o.get("data", {})]
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)


def _commands(parser: argparse.ArgumentParser, prog: str) -> list[tuple[str, str]]:
    """(``pushforward train gmm``, its --help) for the parser and every subcommand under it."""
    found = [(prog, parser.format_help())]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, f"{prog} {name}")
    return found


def cli_reference() -> str:
    from pushforward.cli import build_parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "88"  # argparse wraps at the terminal's width: a fixed one here
    try:
        commands = _commands(build_parser(), "pushforward")
    finally:
        if old is None:
            os.environ.pop("COLUMNS")
        else:
            os.environ["COLUMNS"] = old
    pages = [
        "# Command line\n\n"
        "Every command's `--help`, as the installed parser prints it. "
        "`python -m pushforward ...` works the same as `pushforward ...`.\n\n"
        "Exit status: 0 success; 2 an error you can fix (a bad option, missing or corrupt data, "
        "a bad run folder), after one line starting `error:` that names the file or option and "
        "the fix; 130 or 143 when SIGINT or SIGTERM stopped training after writing a "
        "checkpoint; 1 anything unexpected.\n"
    ]
    for name, text in commands:
        pages.append(f"\n## `{name}`\n\n```text\n{text.rstrip()}\n```\n")
    return "".join(pages)


_SCRATCH: list[Path] = []  # folders this build writes and removes when it ends


@event_priority(100)  # before mkdocs-jupyter claims the notebooks
def on_files(files: Files, config: Any) -> Files:
    store = Path(os.environ.get("PUSHFORWARD_LESSONS", ROOT / "build" / "lessons"))
    shown = Path(tempfile.mkdtemp(prefix="pushforward-site-"))  # this build's pages' notebooks
    _SCRATCH.append(shown)
    for lesson in lesson_sources():
        for_the_site(executed(lesson, store), shown / "course" / f"{lesson.stem}.ipynb")
        files.append(
            File(
                f"course/{lesson.stem}.ipynb",
                src_dir=str(shown),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    files.append(File.generated(config, "reference/cli.md", content=cli_reference()))
    return files


def on_post_page(output: str, page: Any, config: Any) -> str:
    """A notebook page without the MathJax loader nbconvert adds: its math is MathML already."""
    if page.file.src_uri.endswith(".ipynb"):
        output = re.sub(
            r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->",
            "",
            output,
            flags=re.S | re.I,
        )
    return output


def on_post_build(config: Any) -> None:
    while _SCRATCH:
        shutil.rmtree(_SCRATCH.pop(), ignore_errors=True)


def on_build_error(error: Exception) -> None:
    on_post_build(None)
