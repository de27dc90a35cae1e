"""Every command the docs show is one pushforward accepts as written: the flags exist, their
values pass the same checks as on the command line, and the data names are known. The docs'
long runs (minutes to hours, some on a GPU) are records of how a table was measured and are not
run here; their quick forms (`experiment NAME --quick`) are run, with checks on their results,
in tests/test_cli.py, and every quick form the docs show is one of those."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from pushforward.cli import build_parser
from pushforward.config import TrainConfig, resolve
from pushforward.data import BUILTIN
from pushforward.errors import PushforwardError
from pushforward.models import MODELS
from pushforward.recipes import resolve_options

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PREFIXES = ("npy:", "idx:", "images:", "cifar10:")


def doc_commands() -> list[tuple[str, list[str]]]:
    """(file, arguments after ``pushforward``) of every command in a bash block or inline code,
    continuation lines joined; templates with placeholders (MODEL, RUN) left out."""
    found = []
    for path in DOCS:
        text = path.read_text()
        lines = []
        for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
            lines += [raw.split(" #")[0] for raw in re.sub(r"\\\n\s*", " ", block).splitlines()]
        prose = re.sub(r"```.*?```", "", text, flags=re.S)
        lines += [" ".join(m.split()) for m in re.findall(r"`([^`]*pushforward [^`]+)`", prose)]
        for line in lines:
            match = re.search(r"(?:^|-m )pushforward (.*)", line.strip())
            if match is None:
                continue
            args = shlex.split(match.group(1))
            template = any((a.isupper() and not a.startswith("-")) or a == "..." for a in args)
            if len(args) > 1 and not template:
                found.append((str(path.relative_to(ROOT)), args))
    return found


COMMANDS = doc_commands()


def test_the_docs_show_commands() -> None:
    assert len(COMMANDS) >= 25
    assert {args[0] for _, args in COMMANDS} >= {"train", "eval", "bench", "experiment"}


@pytest.mark.parametrize(("path", "args"), COMMANDS, ids=[" ".join(a)[:60] for _, a in COMMANDS])
def test_every_docs_command_is_accepted(path: str, args: list[str]) -> None:
    try:
        ns = build_parser().parse_args(args)
    except (SystemExit, PushforwardError) as e:
        pytest.fail(f"{path}: `pushforward {' '.join(args)}` is refused: {e}")
    data = getattr(ns, "data", None)
    if data is not None:
        base = data.rpartition("@")[0] or data  # NAME@N: the set NAME, downsampled
        assert base in BUILTIN or base.startswith(PREFIXES), (path, args)
    if ns.command == "train":
        cls = MODELS[ns.model]
        skip = {"command", "model", "out", "config", "set"}
        given = {k: v for k, v in vars(ns).items() if k not in skip}
        resolve_options(ns.model, (TrainConfig, cls.Config), given, ns.config, ns.set)


def test_every_quick_form_in_the_docs_is_run_by_a_test() -> None:
    tested = (ROOT / "tests" / "test_cli.py").read_text()
    for path, args in COMMANDS:
        if "--quick" in args:
            assert f'"experiment", "{args[1]}", "--quick"' in tested, (path, args)


def test_an_invalid_command_is_caught() -> None:
    """The check can fail: a flag that does not exist, a value out of bounds."""
    for bad in (["train", "gan", "--data", "ring8", "--no-such-flag"],):
        with pytest.raises((SystemExit, PushforwardError)):
            build_parser().parse_args(bad)
    with pytest.raises(PushforwardError):
        resolve((TrainConfig, MODELS["gan"].Config), {"lr": "-1"}, None, [])


def test_the_docs_speak_to_users_not_about_their_history() -> None:
    """No issue numbers and no development history in what users read: the README, the docs
    and lessons, and the package's docstrings and comments."""
    history = re.compile(r"\bissues?[ -]#?\d+|\bsessions?\b|\bearlier notes\b", re.I)
    texts = [*DOCS, *(ROOT / "docs" / "course").glob("*.py")]
    texts += sorted((ROOT / "src" / "pushforward").rglob("*.py"))
    found = [
        f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
        for p in texts
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if history.search(line)
    ]
    assert not found, found


def test_the_experiments_page_python_runs(tmp_path: Path) -> None:
    """The experiments page's Python: ``run_experiment`` returns the numbers, shown in a
    notebook as the summary's tables above the figures."""
    page = (ROOT / "docs" / "experiments" / "index.md").read_text()
    (block,) = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    scope: dict[str, object] = {}
    exec(compile(block, "docs/experiments/index.md", "exec"), scope)
    results = scope["results"]
    assert results["experiment"] == "gmm-universality" and results["quick"]  # type: ignore[index]
    shown = results._repr_html_()  # type: ignore[attr-defined]
    assert "<table" in shown and shown.count("data:image/png;base64,") >= 2
    assert (tmp_path / "experiments" / "gmm-universality" / "results.json").is_file()
