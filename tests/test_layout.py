"""The shape of the package, kept: no file over 400 lines, no function over 60, no import cycle
among its modules (lazy imports included), and the parts that draw and report any model (the
explorer, its GIF, the training's frames, the reports) name none."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pushforward
from pushforward.models import MODELS

SRC = Path(pushforward.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(SRC.rglob("*.py")):
        parts = list(p.relative_to(SRC.parent).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def test_no_file_over_400_lines_and_no_function_over_60() -> None:
    long_files = [
        (p.name, n)
        for p in [*SRC.rglob("*.py"), *SRC.rglob("*.js")]
        if (n := len(p.read_text().splitlines())) > 400
    ]
    assert not long_files
    long_functions = []
    for p in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if n > 60:
                    long_functions.append((p.name, node.name, n))
    assert not long_functions


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules ``name`` imports, when it is imported or later inside its
    functions (all but the imports for type checking only), each with the packages above it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for n in ast.walk(node):
            if not isinstance(n, ast.ImportFrom) or not n.level:
                continue
            base = package.split(".")[: len(package.split(".")) - (n.level - 1)]
            target = ".".join(base + ([n.module] if n.module else []))
            for alias in n.names:
                full = f"{target}.{alias.name}"
                found.add(full if full in modules else target)
    out = set()
    for f in found:  # importing a.b.c imports a.b first
        parts = f.split(".")
        out |= {".".join(parts[:i]) for i in range(2, len(parts) + 1)}
    return {m for m in out if m in modules and m != name and not name.startswith(m + ".")}


def test_no_import_cycle() -> None:
    modules = _modules()
    graph = {m: _imports(m, p, modules) for m, p in modules.items()}
    seen: dict[str, int] = {}  # 1: on the path being walked, 2: done

    def walk(m: str, path: list[str]) -> None:
        seen[m] = 1
        for d in sorted(graph[m]):
            assert seen.get(d) != 1, " -> ".join([*path, m, d])
            if d not in seen:
                walk(d, [*path, m])
        seen[m] = 2

    for m in modules:
        if m not in seen:
            walk(m, [])
    assert "pushforward.models.drawing" in graph["pushforward.models.base"]  # the walk saw edges


def test_what_draws_and_reports_any_model_names_none() -> None:
    files = [
        *(SRC / "explore").iterdir(),
        *(SRC / "reports").glob("*.py"),
        SRC / "training" / "frames.py",
        SRC / "training" / "loop.py",
    ]
    for p in files:
        if p.suffix not in (".py", ".js"):
            continue
        text = p.read_text()
        if p.suffix == ".py":  # a string the code holds, equal to a model's name
            named = {
                n.value
                for n in ast.walk(ast.parse(text))
                if isinstance(n, ast.Constant) and n.value in MODELS
            }
        else:
            named = {m for m in MODELS if re.search(rf"[\"']{m}[\"']", text)}
        assert not named, f"{p.name} names {named}"
