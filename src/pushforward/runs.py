"""The run folder's life: its names, claiming a folder for a new run, checking that ``--resume``
continues the same run, clearing what a retrained run replaces, config.json, and saving and
loading the model files. The :class:`~.run.Run` handle reads a finished folder through these; :class:`Logger` appends
to its metrics.jsonl.

Layout (README, "The run folder"): config.json, metrics.jsonl, model.safetensors + model.json,
checkpoints/last.*, samples.png, eval.json. Loading reads safetensors and JSON only.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from . import dist
from .checkpoint import (
    append_jsonl,
    atomic_write_json,
    check_format,
    load_tensors,
    read_json,
    safe_name,
    save_tensors,
    to_json,
)
from .config import TrainConfig, as_dict, build
from .data import Dataset
from .errors import PushforwardError
from .models import MODELS, Model
from .version import __version__

FORMAT = 1  # bump when the meaning of saved tensors changes
CONFIG, HISTORY, EVAL = "config.json", "metrics.jsonl", "eval.json"
WEIGHTS, WEIGHTS_META, SAMPLES = "model.safetensors", "model.json", "samples.png"
CHECKPOINTS = "checkpoints"
BEST = "best.safetensors"  # in checkpoints/: the weights of the best --validation score
EXPERIMENT_DONE = "experiment.json"  # written by an experiment once it has scored the run
EXPERIMENT_TRAINED = "experiment-trained.json"  # ... and once it has trained it
# options that say how to run and report, not what is trained: they may change on --resume
_HOW = {"resume", "device", "tensorboard", "log_every"}


def default_run_dir(model: str, data: str) -> Path:
    """runs/<model>-<data>, numbered when taken, so a new run never lands on an old one."""
    stem = f"{model}-" + safe_name(data.split("/")[-1], keep="-_")
    path, i = Path("runs") / stem, 2
    while path.exists():
        path, i = Path("runs") / f"{stem}-{i}", i + 1
    return path


def clear_run(path: Path) -> None:
    """Delete every file a run writes (and what is derived from it: eval.json, ex-post GMMs,
    an experiment's scores), so that a run trained over an old one inherits nothing stale.
    Other files in the folder are left alone."""
    names = [
        EXPERIMENT_DONE,
        EXPERIMENT_TRAINED,
        EVAL,
        SAMPLES,
        WEIGHTS,
        WEIGHTS_META,
        HISTORY,
        CONFIG,
    ]
    derived = [*path.glob("expost-gmm-*.safetensors"), *path.glob("expost-gmm-*.json")]
    for f in [path / n for n in names] + derived:
        f.unlink(missing_ok=True)
    for folder in (path / CHECKPOINTS, path / "tensorboard"):
        if folder.is_dir():
            shutil.rmtree(folder)


def claim(out: str | Path | None, model: str, data: str, overwrite: bool) -> Path:
    """The folder a new run writes into, emptied of any earlier run's files (``overwrite``) or
    refused when one is there. Rank 0 claims; every rank learns where, or the error."""

    def on_main() -> str:
        path = Path(out) if out else default_run_dir(model, data)
        if (path / CONFIG).exists() and not overwrite:
            raise PushforwardError(
                f"--out {path}: already holds a run; choose another --out or delete it"
            )
        if path.exists() and not path.is_dir():
            raise PushforwardError(f"--out {path}: is a file; choose a folder")
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


def resumable(out: str | Path | None, model_name: str, tcfg: TrainConfig, mcfg: Any) -> bool:
    """True when ``out`` holds a run this command can continue; False when it holds none yet
    (then --resume starts it). A run of other options is an error: resuming it with these would
    silently train something else."""
    if out is None:
        raise PushforwardError("--resume continues a run: name its folder with --out RUN")
    saved_path = Path(out) / CONFIG
    if not saved_path.exists():
        return False
    saved = read_json(saved_path)
    mine = json.loads(to_json({"train": as_dict(tcfg), "model_config": as_dict(mcfg)}))
    if saved.get("model") != model_name:
        raise PushforwardError(
            f"--resume: {out} holds a {saved.get('model')!r} run, not {model_name!r}; "
            f"run `pushforward train {saved.get('model')} ... --resume` or choose another --out"
        )
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


def save_model(
    weights: Path, meta_path: Path, name: str, model: Model, info: dict[str, Any]
) -> None:
    """A model as two files: its tensors (safetensors) and what rebuilds it (JSON)."""
    save_tensors(weights, model.state_dict())
    atomic_write_json(
        meta_path,
        {
            "model": name,
            "format": FORMAT,
            "version": __version__,
            "data_shape": list(model.data_shape),
            "model_config": as_dict(model.config),
            "info": info,
        },
    )


def load_model(weights: Path, meta_path: Path, device: torch.device) -> tuple[str, Model]:
    """Rebuild a model from its safetensors + JSON pair, checking every name and shape."""
    meta = read_json(meta_path)
    name = meta.get("model") if isinstance(meta, dict) else None
    if name not in MODELS:
        raise PushforwardError(
            f"{meta_path}: unknown model {name!r}; expected one of {', '.join(MODELS)}"
        )
    check_format(meta_path, meta, FORMAT, "retrain or use that version")
    cls = MODELS[name]
    mcfg: Any = build(cls.Config, meta.get("model_config", {}), str(meta_path))
    model = cls(mcfg, tuple(meta["data_shape"]))
    state = load_tensors(weights)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if expected != got:
        diff = sorted(set(expected.items()) ^ set(got.items()))[:3]
        raise PushforwardError(
            f"{weights}: tensors do not match a {name} with this config (first differences: "
            f"{diff}); the file belongs to another run or was altered"
        )
    model.load_state_dict(state)
    return name, model.to(device)


class Logger:
    """metrics.jsonl rows (and TensorBoard scalars when asked), from rank 0 only."""

    def __init__(self, path: Path, tensorboard: Path | None) -> None:
        self.path, self.writer = path, None
        if tensorboard is not None and dist.is_main():
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise PushforwardError(
                    "--tensorboard needs the tensorboard package: pip install tensorboard"
                ) from None
            self.writer = SummaryWriter(str(tensorboard))

    def __call__(self, row: dict[str, Any]) -> None:
        if not dist.is_main():
            return
        append_jsonl(self.path, row)
        if self.writer is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.writer.add_scalar(k, v, row["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
