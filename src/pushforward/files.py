"""Files as pushforward writes and reads them: tensors in safetensors, everything else in JSON,
always written atomically, read with their size bounded and never unpickled.

A crash or a kill mid-write must never leave a half-written file where a good one stood, so every
write goes to a temporary file in the same folder, is flushed to disk, then renamed over the target.
Loading never unpickles: safetensors and JSON carry data only.

May import, of this package: errors, limits, version.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .errors import PushforwardError
from .limits import read_file
from .version import __version__

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


def atomic_write_npy(path: str | Path, array: np.ndarray) -> None:
    """An array as a .npy file (no pickled objects), written atomically."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


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


_IN_SCRIPT = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def script_json(obj: Any) -> str:
    """JSON to embed in a page's ``<script>`` element: non-finite numbers as null (else the page
    could not parse its own data) and ``<``, ``>``, ``&`` escaped, so no string the data holds
    (a path with ``<!--<script>`` or ``</script>`` in it) can end or change the element."""
    return json.dumps(_jsonable(obj), allow_nan=False).translate(_IN_SCRIPT)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, to_json(obj).encode())


JSON_LIMIT = 64 << 20  # a run's JSON files hold kilobytes; metrics.jsonl is bounded by memory


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(read_file(path, "restore it or retrain", JSON_LIMIT))
    except FileNotFoundError as e:
        raise PushforwardError(f"{path} not found; is this a pushforward run folder?") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PushforwardError(f"{path} is not valid JSON ({e}); restore it or retrain") from e
    except RecursionError:
        raise PushforwardError(
            f"{path} is not valid JSON (nested too deeply); restore it or retrain"
        ) from None


def digest(
    tensors: Mapping[str, Any],
    metadata: dict[str, str] | None = None,
    parts: Callable[[Any], Iterable[torch.Tensor]] = lambda t: (t,),
) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order, and the string
    metadata of the header: a flipped bit, a header retyped (F32 -> I32) or reshaped, a tensor
    renamed or a step count edited changes it. ``parts`` gives a value's bytes in pieces (rows
    of data read from disk, a chunk at a time): the same digest as of the whole tensor."""
    h = hashlib.sha256(json.dumps(metadata or {}, sort_keys=True).encode())
    for name in sorted(tensors):
        t = tensors[name]
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        for piece in parts(t):
            h.update(
                piece.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().data
            )
    return h.hexdigest()


def save_tensors(
    path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> str:
    """Save named tensors (contiguous CPU copies) as one safetensors file, atomically; the
    optional string ``metadata`` rides in its header, so the two can never disagree, with the
    tensors' checksum (returned, for the JSON beside the file)."""
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    sha = digest(cpu, metadata)
    atomic_write_bytes(path, st_save(cpu, metadata={**(metadata or {}), "sha256": sha}))
    return sha


def load_tensors(path: str | Path, sha256: Any = None) -> dict[str, torch.Tensor]:
    return load_tensors_and_metadata(path, sha256)[0]


def load_tensors_and_metadata(
    path: str | Path, sha256: Any = None
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors of a safetensors file and the string metadata of its header (JSON: data
    only, nothing executed), once they match the checksum in the header and ``sha256``, the
    one the JSON beside the file recorded (files written before checksums have neither)."""
    path = Path(path)
    try:
        data = read_file(path, "restore it or retrain")
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
    found = digest(tensors, {k: v for k, v in meta.items() if k != "sha256"})
    for expected, where in ((meta.get("sha256"), "its header"), (sha256, "the JSON beside it")):
        if expected is not None and expected != found:
            raise PushforwardError(
                f"{path}: its tensors do not match the checksum in {where} (the file was "
                "damaged, altered or swapped); restore it or retrain"
            )
    return tensors, meta


def check_tensors(path: Path, got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    """Refuse tensors that are not the expected names, shapes and dtypes, or that hold NaN or
    inf in floating point, before any of them reaches a model or an optimizer kernel."""
    wrong = [
        f"{k}: {tuple(got[k].shape)} {got[k].dtype}, expected {tuple(v.shape)} {v.dtype}"
        for k, v in want.items()
        if k in got and (got[k].shape != v.shape or got[k].dtype != v.dtype)
    ]
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    bad = [k for k, t in got.items() if t.is_floating_point() and not bool(t.isfinite().all())]
    problems = (
        [f"missing {missing[:3]}"] * bool(missing)
        + [f"unexpected {extra[:3]}"] * bool(extra)
        + wrong[:3]
        + [f"non-finite values in {bad[:3]}"] * bool(bad)
    )
    if problems:
        raise PushforwardError(
            f"{path}: not the tensors of this run's model and options ({'; '.join(problems)}); "
            "the file belongs to another run or was altered: restore it or retrain"
        )


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
    """The JSON-object lines of a file; a torn, garbled or non-object line is skipped."""
    rows = []
    text = read_file(Path(path), "delete it or restore it").decode(errors="replace")
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def safe_name(text: str, keep: str = "", fill: str = "_") -> str:
    """``text`` as a file name: letters, digits and the characters in ``keep`` stay, every
    other character becomes ``fill``."""
    return "".join(c if c.isalnum() or c in keep else fill for c in text)


def check_format(path: Path, meta: Any, expected: int, fix: str) -> None:
    """Refuse a file written in another format than this version reads, naming both."""
    found = meta.get("format") if isinstance(meta, dict) else None
    if found != expected:
        version = meta.get("version") if isinstance(meta, dict) else None
        raise PushforwardError(
            f"{path}: checkpoint format {found!r} (pushforward {version or 'unknown'}), but "
            f"pushforward {__version__} reads format {expected}; {fix}"
        )
