"""A trained model as two files: its tensors (safetensors, with their checksum) and what
rebuilds it (JSON: the registry name, the options, the shape of one example). Loading reads
both and checks every name and shape before a weight is used; nothing is unpickled.

May import the registry, the options and the file I/O; imported by the run folder
(run_folder.py), the Run handle and training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..config import as_dict, build
from ..errors import PushforwardError
from ..files import (
    atomic_write_json,
    check_format,
    check_tensors,
    load_tensors,
    read_json,
    save_tensors,
)
from ..limits import check_model_fits
from ..version import __version__
from . import MODELS
from .base import Model

FORMAT = 1  # bump when the meaning of saved tensors changes


def save_model(
    weights: Path, meta_path: Path, name: str, model: Model, info: dict[str, Any]
) -> None:
    """A model as two files: its tensors (safetensors) and what rebuilds it (JSON), which
    records the tensors' checksum."""
    sha = save_tensors(weights, model.state_dict())
    atomic_write_json(
        meta_path,
        {
            "sha256": sha,
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
    mcfg: Any = build(cls.Config, meta.get("model_config"), str(meta_path))
    shape = meta.get("data_shape")
    if not (
        isinstance(shape, list)
        and len(shape) in (1, 3)
        and all(type(s) is int and s > 0 for s in shape)
    ):
        raise PushforwardError(
            f"{meta_path}: data_shape {shape!r} is not the shape of one example; restore it or "
            "retrain"
        )
    try:
        check_model_fits(lambda: cls(mcfg, tuple(shape)), f"the {name} of {meta_path}", device)
        model = cls(mcfg, tuple(shape))
    except (ValueError, RuntimeError) as e:  # e.g. an option the data-dependent defaults fill
        raise PushforwardError(
            f"{meta_path}: its model_config cannot build a {name} ({e})"
        ) from None
    state = load_tensors(weights, meta.get("sha256"))
    check_tensors(weights, state, model.state_dict())
    model.load_state_dict(state)
    return name, model.to(device)
