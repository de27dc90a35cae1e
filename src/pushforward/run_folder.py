"""The run folder's life: its names, claiming a folder for a new run, checking that ``--resume``
continues the same run, clearing what a retrained run replaces, config.json, and saving and
loading the model files. The :class:`~.run.Run` handle reads a finished folder through
these; training/log.py appends to its metrics.jsonl.

Layout (docs/guides/run-folder.md): config.json, metrics.jsonl, model.safetensors + model.json,
checkpoints/last.*, samples.png, eval.json. Loading reads safetensors and JSON only.

May import, of this package: config, data, dist, errors, files, models, version.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import fnmatch
import json
import os
import stat
from pathlib import Path
from typing import Any

import torch

from . import dist
from .config import TrainConfig, as_dict, build
from .data import Dataset, chunks
from .errors import PushforwardError
from .files import (
    atomic_write_json,
    digest,
    read_json,
    safe_name,
    to_json,
)
from .models import Model
from .version import __version__

CONFIG, HISTORY, EVAL = "config.json", "metrics.jsonl", "eval.json"
WEIGHTS, WEIGHTS_META, SAMPLES = "model.safetensors", "model.json", "samples.png"
CHECKPOINTS = "checkpoints"
LAST, LAST_JSON = "last.safetensors", "last.json"  # in checkpoints/: the resume checkpoint
SNAPSHOTS, INPUTS = "snapshots", "inputs.safetensors"  # the frames explore replays
BEST = "best.safetensors"  # in checkpoints/: the weights of the best --validation score
EXPERIMENT_DONE = "experiment.json"  # written by an experiment once it has scored the run
EXPERIMENT_TRAINED = "experiment-trained.json"  # ... and once it has trained it
LOCK = ".lock"  # held by the process that writes the run
# options that say how to run and report, not what is trained: they may change on --resume
_HOW = {"resume", "device", "tensorboard", "log_every", "dist_timeout", "data_memory"}


def default_run_dir(model: str, data: str) -> Path:
    """runs/<model>-<data>, numbered when taken, so a new run never lands on an old one."""
    stem = f"{model}-" + safe_name(data.split("/")[-1], keep="-_")
    path, i = Path("runs") / stem, 2
    while path.exists():
        path, i = Path("runs") / f"{stem}-{i}", i + 1
    return path


# Every name a run writes, by folder ("" is the run folder itself): cleanup deletes these and
# nothing else, so a file a user keeps in a run folder is never touched.
TENSORBOARD, EXPLORER = "tensorboard", "explore.html"
OWN: dict[str, tuple[str, ...]] = {
    "": (
        CONFIG, HISTORY, EVAL, WEIGHTS, WEIGHTS_META, SAMPLES, EXPLORER, EXPERIMENT_DONE,
        EXPERIMENT_TRAINED, LOCK, "expost-gmm-*.safetensors", "expost-gmm-*.json", ".*.tmp",
    ),
    CHECKPOINTS: (LAST, LAST_JSON, BEST, ".*.tmp"),
    SNAPSHOTS: (INPUTS, "step-*.safetensors", ".*.tmp"),
    TENSORBOARD: ("events.out.tfevents.*",),
}  # fmt: skip


def _own(folder: str, name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in OWN[folder])


def _own_file(folder: str, entry: Path) -> bool:
    """A regular file, not a link, of one of a run's own names in ``folder``."""
    return not entry.is_symlink() and entry.is_file() and _own(folder, entry.name)


def _own_dir(entry: Path) -> bool:
    """One of a run's own subfolders, a real folder and not a link."""
    return entry.name in OWN and not entry.is_symlink() and entry.is_dir()


def _foreign(path: Path) -> list[str]:
    """The entries of ``path`` (and of a run's own subfolders) that pushforward does not write:
    other names, links (which could lead out of the folder) and anything not a regular file."""
    found = []
    for entry in sorted(path.iterdir()) if path.is_dir() else []:
        if _own_dir(entry):
            inside = sorted(entry.iterdir())
            found += [f"{entry.name}/{e.name}" for e in inside if not _own_file(entry.name, e)]
        elif not _own_file("", entry):
            found.append(entry.name)
    return found


def clear_run(path: Path) -> None:
    """Delete the files a run writes (and what is derived from it: eval.json, ex-post GMMs, an
    experiment's scores, its explorer), so that a run trained over an old one inherits nothing
    stale. Only pushforward's own names are deleted, links are never followed, and a subfolder
    is removed only once nothing else is left in it."""
    if not path.is_dir():
        return
    for entry in path.iterdir():
        if _own_dir(entry):
            for f in entry.iterdir():
                if _own_file(entry.name, f):
                    f.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # not empty: what is left is not ours
                entry.rmdir()
        elif entry.name != LOCK and _own_file("", entry):
            entry.unlink(missing_ok=True)


def _refuse_links(path: Path) -> None:
    """A run's own names must be real files and folders: a link among them would lead writes
    out of the run folder (a link of another name is the user's, and is left alone)."""
    for entry in sorted(path.iterdir()):
        links = (
            [entry] if entry.is_symlink() and (entry.name in OWN or _own("", entry.name)) else []
        )
        if _own_dir(entry):
            links += [e for e in entry.iterdir() if e.is_symlink() and _own(entry.name, e.name)]
        if links:
            raise PushforwardError(
                f"--out {path}: {links[0].relative_to(path)} is a symbolic link; a run writes "
                "only inside its folder: replace the link with what it points to, or choose "
                "another --out"
            )


def _refuse_orphans(path: Path) -> None:
    """A folder with a run's files but no config.json lost it: starting over would delete
    those files, so the user decides."""
    found = [n for n in (WEIGHTS, HISTORY, f"{CHECKPOINTS}/{LAST_JSON}") if (path / n).exists()]
    if found:
        raise PushforwardError(
            f"--out {path}: holds a run's files ({', '.join(found)}) but no {CONFIG}; restore "
            f"{CONFIG} to resume, or delete the folder to start again"
        )


def _refuse_foreign(path: Path) -> None:
    """A folder that is not a run (no config.json) is claimed only when everything in it is a
    run's own debris (a start that stopped early): anything else is the user's."""
    others = [] if (path / CONFIG).is_file() else _foreign(path)
    if others:
        more = f" and {len(others) - 1} more" if len(others) > 1 else ""
        raise PushforwardError(
            f"--out {path}: holds {others[0]!r}{more}, which pushforward did not write, and no "
            "run; choose a new or empty folder (a run never deletes files it did not write)"
        )


_LOCKS: dict[Path, int] = {}  # run folders this process writes, and their lock files' fds


def lock(path: Path) -> None:
    """Hold ``path``'s lock while this process writes the run (an flock on RUN/.lock, which the
    kernel releases when the process ends, however it ends): a second train process into the
    same folder is refused instead of interleaving its files with this one's."""
    if not dist.is_main() or path in _LOCKS:
        return
    try:
        path.mkdir(parents=True, exist_ok=True)
        # O_NOFOLLOW: a .lock planted as a link to another file is refused, never written
        fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise PushforwardError(f"--out {path}: {LOCK} is a symbolic link; delete it") from None
        raise PushforwardError(
            f"--out {path}: cannot create ({e.strerror}); choose a writable folder"
        ) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise PushforwardError(f"--out {path}: {LOCK} is not a regular file; delete it")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "another"
        os.close(fd)
        raise PushforwardError(
            f"--out {path}: process {holder} is training this run now; wait for it to end, "
            "or choose another --out"
        ) from None
    try:
        _refuse_links(path)
    except PushforwardError:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    _LOCKS[path] = fd
    # temporary files of writes a kill interrupted: no other process writes here now
    for tmp in [*path.glob(".*.tmp"), *(path / CHECKPOINTS).glob(".*.tmp")]:
        tmp.unlink(missing_ok=True)


def unlock(path: Path) -> None:
    fd = _LOCKS.pop(path, None)
    if fd is not None:
        os.close(fd)  # closing the last descriptor releases the flock


def claim(out: str | Path | None, model: str, data: str, overwrite: bool) -> Path:
    """The folder a new run writes into, emptied of any earlier run's files (``overwrite``) or
    refused when one is there. Rank 0 claims; every rank learns where, or the error."""

    def on_main() -> str:
        path = Path(out) if out else default_run_dir(model, data)
        if path.exists() and not path.is_dir():
            raise PushforwardError(f"--out {path}: is a file; choose a folder")
        _refuse_foreign(path)  # before the lock file is created in a folder that is not a run's
        lock(path)
        try:
            return checked(path)
        except BaseException:
            unlock(path)
            raise

    def checked(path: Path) -> str:
        if (path / CONFIG).exists() and not overwrite:
            raise PushforwardError(
                f"--out {path}: already holds a run; choose another --out or delete it"
            )
        if not overwrite:
            _refuse_orphans(path)
        _refuse_foreign(path)  # again under the lock: what is there now, not a moment ago
        if path.is_dir():
            clear_run(path)
        try:
            (path / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise PushforwardError(
                f"--out {path}: cannot create ({e.strerror}); choose a writable folder"
            ) from None
        return str(path)

    return Path(dist.on_main(on_main))


def data_digest(data: Dataset) -> str:
    """The checksum of the examples a run trains and is tested on, as it saw them: ``digest``'s
    of the splits as tensors, computed a chunk at a time (data read from disk too)."""
    splits = {"train": data.train} | ({} if data.test is None else {"test": data.test})
    return digest(splits, parts=chunks)


def resumable(
    out: str | Path | None, model_name: str, tcfg: TrainConfig, mcfg: Any, data: Dataset
) -> bool:
    """True when ``out`` holds a run this command can continue; False when it holds none yet
    (then --resume starts it). A run of other options is an error: resuming it with these would
    silently train something else."""
    if out is None:
        raise PushforwardError("--resume continues a run: name its folder with --out RUN")
    saved_path = Path(out) / CONFIG
    if not saved_path.exists():
        _refuse_orphans(Path(out))
        return False
    saved = read_json(saved_path)
    if not isinstance(saved, dict) or not all(
        isinstance(saved.get(part), dict) for part in ("train", "model_config")
    ):
        raise PushforwardError(
            f"{saved_path}: not a run's config (no 'train' and 'model_config' tables); restore "
            "it, or start a new run in another --out"
        )
    mine = json.loads(to_json({"train": as_dict(tcfg), "model_config": as_dict(mcfg)}))
    if saved.get("model") != model_name:
        raise PushforwardError(
            f"--resume: {out} holds a {saved.get('model')!r} run, not {model_name!r}; "
            f"run `pushforward train {saved.get('model')} ... --resume` or choose another --out"
        )
    # typed as the options are: a value of the wrong type is named as such, not as a change
    saved = {
        **saved,
        "train": as_dict(build(TrainConfig, saved["train"], str(saved_path))),
        "model_config": as_dict(build(type(mcfg), saved["model_config"], str(saved_path))),
    }
    # under --validation the checkpoints are when the held-out score is taken, which picks the
    # weights kept and when patience ends: then checkpoint_every is part of what is trained
    how = _HOW if tcfg.validation else _HOW | {"checkpoint_every"}
    for part in ("train", "model_config"):
        for key, value in mine[part].items():
            if key not in how and saved.get(part, {}).get(key) != value:
                raise PushforwardError(
                    f"--resume: {out} was started with {key}={saved.get(part, {}).get(key)!r}, "
                    f"not {value!r}; give the options it started with"
                )
    recorded = saved.get("data", {}).get("sha256") if isinstance(saved.get("data"), dict) else None
    if recorded is not None and recorded != data_digest(data):
        raise PushforwardError(
            f"--resume: the data of --data {tcfg.data} changed since {out} started (its checksum "
            "differs from config.json's); restore that data, or start a new run without --resume"
        )
    return True


def write_config(
    run_dir: Path, name: str, model: Model, tcfg: TrainConfig, data: Dataset, device: torch.device
) -> None:
    """config.json: every resolved option, the versions, the data and where it came from."""
    atomic_write_json(
        run_dir / CONFIG,
        {
            "model": name,
            "version": __version__,
            "torch": torch.__version__,
            "train": as_dict(tcfg),
            "model_config": as_dict(model.config),
            "data": {
                "name": data.name,
                "kind": data.kind,
                "shape": list(data.shape),
                "n_train": len(data.train),
                "n_test": None if data.test is None else len(data.test),
                "source": data.source,
                "sha256": data_digest(data),
            },
            "device": str(device),
            "world_size": dist.world_size(),
            "parameters": model.n_parameters(),
        },
    )


def read_train_config(path: Path) -> TrainConfig:
    """The TrainConfig a run folder was trained with, checked field by field."""
    cfg = read_json(path / CONFIG)
    train = cfg.get("train", {}) if isinstance(cfg, dict) else None
    if not isinstance(train, dict):
        raise PushforwardError(f"{path / CONFIG}: no 'train' options; restore it or retrain")
    return build(TrainConfig, train, str(path / CONFIG))


def run_finished(run_dir: Path) -> bool:
    """Whether the run in ``run_dir`` ran to its end (its model saved, its checkpoint final)."""
    last = run_dir / CHECKPOINTS / LAST_JSON
    if not (last.exists() and (run_dir / WEIGHTS).exists()):
        return False
    meta = read_json(last)
    return isinstance(meta, dict) and meta.get("finished") is True
