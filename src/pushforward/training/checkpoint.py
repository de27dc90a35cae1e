"""The training checkpoint, checkpoints/last.*: weights, optimizer state and every RNG in one
safetensors file (its JSON in the header), which makes resume exact; checked tensor by tensor
before anything is loaded into the model; ``resume_from`` puts a run back in that state.

May import, of this package: dist, errors, files, limits, models, run_folder, training/log,
training/parts, training/validation, version.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import dist
from ..errors import PushforwardError
from ..files import (
    JSON_LIMIT,
    atomic_write_json,
    check_format,
    check_tensors,
    load_tensors_and_metadata,
    save_tensors,
    to_json,
)
from ..limits import read_file
from ..models import Model
from ..run_folder import CONFIG, LAST, LAST_JSON
from ..version import __version__
from .log import trim_history
from .parts import Budget, Position
from .validation import Validation

CHECKPOINT_FORMAT = 1  # bump when checkpoints/last.* changes meaning


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Every random-number state a step may touch: torch (CPU and CUDA), numpy and Python."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    kind, keys, pos, has_gauss, gauss = np.random.get_state()  # type: ignore[misc]
    tensors["rng.numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    py_version, py_state, py_gauss = random.getstate()
    meta = {
        "numpy": [kind, int(pos), int(has_gauss), float(gauss)],
        "python": [py_version, list(py_state), py_gauss],
    }
    return tensors, meta


def _set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    kind, pos, has_gauss, gauss = meta["numpy"]
    keys = tensors["rng.numpy"].numpy().astype(np.uint32)
    np.random.set_state((kind, keys, pos, has_gauss, gauss))
    py_version, py_state, py_gauss = meta["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))


def save_checkpoint(
    folder: Path,
    model: torch.nn.Module,
    opts: dict[str, torch.optim.Optimizer],
    meta: dict[str, Any],
) -> None:
    """folder/last.*: every tensor (weights, optimizer moments, RNG) in safetensors, with the
    rest (``meta``: step, batches consumed, ...; optimizer hyper-parameters, numpy and Python
    RNG) as JSON in the same file's header, so one atomic write holds a consistent checkpoint;
    last.json repeats that JSON for people to read. Nothing is pickled."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    rng_tensors, rng_meta = _rng_state()
    tensors.update(rng_tensors)
    groups = {}
    for phase, opt in opts.items():
        sd = opt.state_dict()
        # a compiled step keeps its learning rate as a device tensor (parts.py): saved as a float
        groups[phase] = [
            {k: float(v) if torch.is_tensor(v) else v for k, v in g.items()}
            for g in sd["param_groups"]
        ]
        for pid, state in sd["state"].items():
            for k, v in state.items():
                tensors[f"opt.{phase}.{pid}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    full = {
        **meta,
        "config_sha256": _config_sha(folder),
        "optimizer_param_groups": groups,
        "rng": rng_meta,
        "version": __version__,
        "format": CHECKPOINT_FORMAT,
    }
    sha = save_tensors(folder / LAST, tensors, {"checkpoint": to_json(full)})
    atomic_write_json(folder / LAST_JSON, {**full, "rng": "in last.safetensors", "sha256": sha})


def _config_sha(folder: Path) -> str | None:
    """The checksum of the run's config.json (beside checkpoints/), which ties a checkpoint to
    its run: a checkpoint copied in from another run is refused."""
    config = folder.parent / CONFIG
    if not config.exists():
        return None
    return hashlib.sha256(read_file(config, "restore it or retrain", JSON_LIMIT)).hexdigest()


_ADAM_STATE = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")


def _check_checkpoint(
    path: Path,
    tensors: dict[str, torch.Tensor],
    model: torch.nn.Module,
    opts: dict[str, torch.optim.Optimizer],
) -> None:
    """Every tensor of a checkpoint is what this model and its optimizers hold: the weights by
    name, shape and dtype; each optimizer moment shaped like its parameter (a wrong shape made
    the fused Adam kernel read out of bounds); the RNG states; all finite."""
    want = {f"model.{k}": v for k, v in model.state_dict().items()}
    want["rng.torch"] = torch.get_rng_state()
    want["rng.numpy"] = torch.zeros(624, dtype=torch.int64)
    for phase, opt in opts.items():
        params = [p for group in opt.param_groups for p in group["params"]]
        prefix = f"opt.{phase}."
        for key, t in tensors.items():
            if not key.startswith(prefix):
                continue
            pid, _, name = key[len(prefix) :].partition(".")
            if not (pid.isdigit() and int(pid) < len(params) and name in _ADAM_STATE):
                raise PushforwardError(
                    f"{path}: unexpected optimizer tensor {key!r}; the file belongs to another "
                    "run or was altered: restore it or retrain"
                )
            p = params[int(pid)]
            want[key] = torch.zeros((), dtype=t.dtype) if name == "step" else p.detach()
    # an optimizer holds state only for parameters it has stepped: what is there is checked
    check_tensors(path, {k: v for k, v in tensors.items() if not k.startswith("rng.cuda.")}, want)


def _check_position(path: Path, meta: dict[str, Any]) -> None:
    """The checkpoint's counters are counts: a step past the planned total, or a string where a
    number belongs, is refused rather than trained on."""
    step, total = meta.get("step"), meta.get("total_steps")
    ok = (
        all(type(meta.get(k)) is int and meta[k] >= 0 for k in ("step", "batches"))
        and isinstance(meta.get("seconds"), (int, float))
        and type(meta.get("finished")) is bool
        and (total is None or (type(total) is int and total >= step))  # type: ignore[operator]
    )
    if not ok:
        raise PushforwardError(
            f"{path}: its step counters are not consistent (step {step!r}, total_steps "
            f"{total!r}); the file was altered: restore it or start a new run"
        )


def load_checkpoint(
    folder: Path, model: torch.nn.Module, opts: dict[str, torch.optim.Optimizer]
) -> dict[str, Any]:
    """Put a run back in the state of its checkpoint folder/last.*: weights, optimizer state,
    RNG; returns the checkpoint's JSON (step, batches consumed, ...)."""
    path = folder / LAST
    # checked against its own header's checksum only: last.json is written after it, so a kill
    # between the two leaves last.json one checkpoint behind
    tensors, header = load_tensors_and_metadata(path)
    try:
        meta = json.loads(header["checkpoint"])
    except (KeyError, json.JSONDecodeError):
        meta = {}
    check_format(
        path,
        meta,
        CHECKPOINT_FORMAT,
        "resume with the version that wrote it or start a new run",
    )
    _check_position(path, meta)
    config = meta.get("config_sha256")
    if config is not None and config != _config_sha(folder):
        raise PushforwardError(
            f"{path}: written by another run (its config.json checksum differs from this "
            "folder's); restore this run's checkpoint, or start a new run without --resume"
        )
    _check_checkpoint(path, tensors, model, opts)
    try:
        weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        model.load_state_dict(weights)
        for phase, opt in opts.items():
            prefix = f"opt.{phase}."
            state: dict[int, dict[str, torch.Tensor]] = {}
            for k, v in tensors.items():
                if k.startswith(prefix):
                    pid, name = k[len(prefix) :].split(".", 1)
                    state.setdefault(int(pid), {})[name] = v
            opt.load_state_dict(
                {"state": state, "param_groups": meta["optimizer_param_groups"][phase]}
            )
        _set_rng_state(tensors, meta["rng"])
    except (KeyError, ValueError, RuntimeError, TypeError, json.JSONDecodeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise PushforwardError(
            f"{path}: not a checkpoint of this run's model and options ({first}); "
            "start a new run without --resume"
        ) from None
    return meta  # type: ignore[no-any-return]


def resume_from(
    ckpt: Path,
    history: Path,
    model: Model,
    opts: dict[str, torch.optim.Optimizer],
    seed: int,
    at: Position,
    budget: Budget,
    validation: Validation,
) -> bool:
    """Put the run back in the state of its checkpoint in ``ckpt``, if it has one, and drop
    the rows of ``history`` (metrics.jsonl) logged after it (they are logged again); True when that run had finished (then nothing is
    left to train)."""
    if not (ckpt / LAST).exists():
        if (ckpt / LAST_JSON).exists():  # a checkpoint was written: its tensors are lost
            raise PushforwardError(
                f"{ckpt / LAST} is missing, but {ckpt / LAST_JSON} records a checkpoint; "
                "restore it, or start the run again without --resume"
            )
        trim_history(history, 0)
        return False
    meta = load_checkpoint(ckpt, model, opts)
    at.step, at.batches, at.elapsed = meta["step"], meta["batches"], meta["seconds"]
    best = meta.get("best")
    if isinstance(best, dict) and {"score", "step", "since"} <= set(best):
        # JSON holds a best score of -inf or NaN (no finite score yet) as null
        validation.best = {**best, "score": -math.inf if best["score"] is None else best["score"]}
    if dist.rank() > 0:  # the checkpoint holds rank 0's RNG: the other ranks draw their own
        torch.manual_seed(seed * 1_000_003 + dist.rank() * 7_919 + at.step)
    if meta["finished"]:
        return True
    budget.total = budget.planned = meta["total_steps"]
    trim_history(history, at.step)
    return False
