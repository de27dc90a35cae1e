"""--validation: the held-out examples' likelihood (a bound, or exact), scored at every
checkpoint; the best weights kept, and --patience to stop when they stop improving.

May import, of this package: data, dist, files, metrics/likelihood, models.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from .. import dist
from ..data import Batch
from ..files import check_tensors, load_tensors, save_tensors
from ..metrics import likelihood
from ..models import ExactDensity, LikelihoodBound, Model


@torch.no_grad()
def validate(
    model: LikelihoodBound | ExactDensity, val: torch.Tensor, labels: torch.Tensor | None = None
) -> float:
    """Mean log-likelihood of the validation examples under the current weights: exact for a
    density written down (on the discrete scale for pixels, with fixed dequantization noise),
    else the ELBO, or IWAE-K for a model trained on that bound (``trains_on_k`` K > 1), whose
    ELBO may fall as its likelihood rises. A conditional model scores log p(x | its label). Eval mode and fixed noise (the test metrics' own), so the score changes
    only with the weights and the training RNG is left alone."""
    assert isinstance(model, torch.nn.Module)
    was = model.training
    model.eval()
    if isinstance(model, ExactDensity):
        score = -likelihood.nll(model, val, seed=0)["nll_nats"]
    elif (k := model.trains_on_k) > 1:
        score = -likelihood.iwae(model, val, k=k, seed=0, labels=labels)["nll_nats"]
    else:
        score = likelihood.elbo(model, val, seed=0, labels=labels)["elbo"]
    model.train(was)
    return float(dist.mean_across(torch.tensor(score, device=val.device)))


def score_name(model: Model) -> str:
    """What the validation score is called in metrics.jsonl and model.json."""
    return "val_log_likelihood" if isinstance(model, ExactDensity) else "val_elbo"


class Validation:
    """--validation: scores the held-out examples at every checkpoint, keeps the best weights
    so far in ``path`` (written before the checkpoint that names them), and tells when
    --patience checkpoints have passed without a better score."""

    def __init__(
        self,
        val: Batch | None,
        patience: int | None,
        path: Path,
        device: torch.device,
        conditional: bool = False,
    ) -> None:
        x, y = val if val is not None else (None, None)
        self.val = None if x is None else x.to(device)  # [n, *shape], moved once
        # [n]: a conditional model's likelihood is given the label
        self.labels = y.to(device) if y is not None and conditional else None
        self.patience, self.path = patience, path
        # the best score, its step, and the validations since it (for --patience)
        self.best: dict[str, Any] = {"score": -math.inf, "step": 0, "since": 0}

    def __call__(self, model: Model, step: int) -> float:
        assert self.val is not None and isinstance(model, (LikelihoodBound, ExactDensity))
        score = validate(model, self.val, self.labels)
        if score > self.best["score"]:
            self.best = {"score": score, "step": step, "since": 0}
            if dist.is_main():
                save_tensors(self.path, model.state_dict())
        else:
            self.best["since"] += 1
        return score

    @property
    def exhausted(self) -> bool:
        return self.patience is not None and self.best["since"] >= self.patience

    def restore_best(self, model: Model) -> dict[str, Any]:
        """The run's model is the best validated one, not the last; returns what model.json
        records of it."""
        if self.val is None:
            return {}
        if self.path.exists():
            best = load_tensors(self.path)
            check_tensors(self.path, best, model.state_dict())
            model.load_state_dict(best)
        return {
            "best_step": self.best["step"],
            f"best_{score_name(model)}": self.best["score"],
            "validation_n": len(self.val),
        }
