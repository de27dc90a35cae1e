"""What is checked and built before a run folder is touched: the data and the options with
their data-dependent defaults, and the model, once its size is known to fit. A command that
fails here leaves nothing behind.

May import, of this package: config, data, errors, limits, models, recipes, training/parts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from ..config import TrainConfig
from ..data import (
    Dataset,
    binarize,
    check_data_dir,
    load_dataset,
    resolve_binarize,
    validation_split,
)
from ..errors import PushforwardError
from ..limits import check_model_fits
from ..models import ExactDensity, FitsByEM, LikelihoodBound, Model
from ..recipes import recipe
from .parts import Budget


@dataclass(frozen=True)
class Prepared:
    """What a run trains on, checked: the data as loaded (samples are compared with it), as
    training sees it (binarized, the --validation examples taken out), those examples, and the
    options with their data-dependent defaults filled."""

    raw: Dataset
    data: Dataset
    val: torch.Tensor | None  # [n, *shape], or None without --validation
    val_labels: torch.Tensor | None  # [n], where the data has labels
    tcfg: TrainConfig
    mcfg: Any


def prepare_data(cls: type[Model], model_name: str, tcfg: TrainConfig, mcfg: Any) -> Prepared:
    """The data and options of a run; every option is checked here, before the run folder is
    touched."""
    check_data_dir(tcfg.data_dir)
    raw = load_dataset(tcfg.data, tcfg.data_dir, tcfg.test_data, tcfg.data_memory)
    if tcfg.recipe is not None:
        recipe(model_name, tcfg.recipe).check_shape(raw.shape, tcfg.data)
    mcfg = cls.resolve_config(mcfg, raw, tcfg.seed)
    mode = resolve_binarize(tcfg.binarize, cls.bernoulli_pixels(mcfg), raw.kind)
    tcfg = replace(tcfg, binarize=mode)
    if tcfg.steps is None and tcfg.epochs is None and tcfg.minutes is None:
        tcfg = replace(tcfg, steps=cls.default_steps(raw))  # recorded in config.json
    if tcfg.patience is not None and (tcfg.validation == 0 or tcfg.patience < 1):
        raise PushforwardError(
            f"--patience {tcfg.patience}: needs --validation N and a patience of at least 1"
        )
    scored = issubclass(cls, (LikelihoodBound, ExactDensity)) and not issubclass(cls, FitsByEM)
    if tcfg.validation and not scored:
        raise PushforwardError(
            "--validation scores held-out examples by their likelihood at every checkpoint; "
            f"{model_name} has none to score between checkpoints: use it with vae or flow"
        )
    data, val, val_labels = validation_split(binarize(raw, mode), tcfg.validation, mode)
    if issubclass(cls, FitsByEM):
        _check_em_options(tcfg)
    else:
        Budget.check(tcfg)
    return Prepared(raw, data, val, val_labels, tcfg, mcfg)


def build_model(
    cls: type[Model], name: str, mcfg: Any, data: Dataset, device: torch.device
) -> Model:
    """The model on ``device``, fitted to the data (``prepare``), once its size is known to fit
    in memory: weights, gradients and two Adam moments, counted before anything is allocated."""
    check_model_fits(lambda: cls(mcfg, data.shape), f"the {name} with these options", device)
    model = cls(mcfg, data.shape).to(device)
    model.prepare(data)
    return model


def _check_em_options(tcfg: TrainConfig) -> None:
    if tcfg.epochs is not None:
        raise PushforwardError(
            "--epochs does not apply to gmm (EM uses all data each step); use --steps"
        )
    if tcfg.precision != "fp32":
        raise PushforwardError(
            "--precision applies to network models; gmm's EM arithmetic is set by --dtype"
        )
