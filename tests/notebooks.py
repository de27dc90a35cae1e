"""Execute a notebook in a fresh kernel of this interpreter (whatever kernels the machine has
installed) and hand back the executed notebook, for the tests of the course and of the
notebook display and for the site's build (docs/hooks.py); and the site's build hooks."""

from __future__ import annotations

import gc
import importlib.util
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient


def execute(nb: nbformat.NotebookNode, cwd: Path, timeout: int = 600) -> nbformat.NotebookNode:
    """Run every cell of ``nb`` top to bottom in ``cwd``; a failing cell raises with its
    traceback (nbclient's CellExecutionError)."""
    spec = cwd / ".kernels" / "this-python"
    spec.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "this python", "language": "python"})
    )
    specs = KernelSpecManager(kernel_dirs=[str(spec.parent)])
    km = KernelManager(kernel_name="this-python", kernel_spec_manager=specs)
    client = NotebookClient(nb, km=km, timeout=timeout, resources={"metadata": {"path": str(cwd)}})
    with warnings.catch_warnings():
        # the kernel's sockets are closed by the garbage collector: collected here, where
        # their ResourceWarning is expected, not later in another test
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            client.execute()
        finally:
            del client, km
            gc.collect()
    return nb


def outputs(nb: nbformat.NotebookNode, mime: str) -> list[str]:
    """Every output of ``mime`` type (image/png, text/html, ...) the executed notebook holds."""
    return [
        o["data"][mime]
        for cell in nb.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
        if mime in o.get("data", {})
    ]


def site_hooks() -> Any:
    """docs/hooks.py, the documentation site's build hooks (lesson execution, MathML, the CLI
    reference), as a module."""
    path = Path(__file__).resolve().parents[1] / "docs" / "hooks.py"
    spec = importlib.util.spec_from_file_location("pushforward_site_hooks", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
