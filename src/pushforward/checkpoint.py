"""Run-folder files: tensors in safetensors, everything else in JSON, always written atomically.

A crash or a kill mid-write must never leave a half-written file where a good one stood, so every
write goes to a temporary file in the same folder, is flushed to disk, then renamed over the target.
Loading never unpickles: safetensors and JSON carry data only.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .errors import PushforwardError

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never a mix."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise PushforwardError(
            f"cannot write {path}: {e.strerror}; choose a writable folder"
        ) from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise PushforwardError(
            f"cannot write {path}: {e.strerror}; free some space or choose another folder"
        ) from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonable(obj: Any) -> Any:
    """Floats that JSON cannot hold (nan, inf) become null rather than invalid JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def to_json(obj: Any) -> str:
    return json.dumps(_jsonable(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, to_json(obj).encode())


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as e:
        raise PushforwardError(f"{path} not found; is this a pushforward run folder?") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PushforwardError(f"{path} is not valid JSON ({e}); restore it or retrain") from e


def save_tensors(
    path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    """Save named tensors (contiguous CPU copies) as one safetensors file, atomically; the
    optional string ``metadata`` rides in its header, so the two can never disagree."""
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, st_save(cpu, metadata=metadata))


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    return load_tensors_and_metadata(path)[0]


def load_tensors_and_metadata(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors of a safetensors file and the string metadata of its header (JSON: data
    only, nothing executed)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as e:
        raise PushforwardError(f"{path} not found; is this a pushforward run folder?") from e
    try:
        tensors = st_load(data)
        n = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8 : 8 + n]).get("__metadata__") or {}
    except (SafetensorError, ValueError, RuntimeError, UnicodeDecodeError) as e:
        raise PushforwardError(
            f"{path} is not a valid safetensors file ({e}); restore it or retrain"
        ) from e
    if not isinstance(meta, dict):
        raise PushforwardError(f"{path} has a malformed header; restore it or retrain")
    return tensors, meta


def append_jsonl(path: str | Path, row: dict[str, Any]) -> None:
    """Append one JSON line; a torn last line from a kill is skipped by :func:`read_jsonl`."""
    try:
        with open(path, "a") as f:
            f.write(json.dumps(_jsonable(row), allow_nan=False) + "\n")
    except OSError as e:
        raise PushforwardError(
            f"cannot write {path}: {e.strerror}; free some space or choose another folder"
        ) from e


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows
