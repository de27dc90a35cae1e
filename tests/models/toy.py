"""A model that exists only in the tests: one diagonal Gaussian fitted by gradient descent, the
smallest thing the model contract (models/base.py) accepts. It declares no frames of its own, so
the explorer shows its samples and its loss curve.

``TEST_MODELS`` is the test-only registry: the ``registered`` fixture adds it to ``MODELS`` for a
test, and nothing in the package names it. That a new model works through train, sample, eval,
explore and bench from this one file and that one line is what tests/test_new_model.py checks.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn

from pushforward.config import Options, option
from pushforward.data import Dataset
from pushforward.models import MODELS, ExactDensity, Model


@dataclass(frozen=True)
class ToyConfig(Options):
    lr: float = option(0.05, "Adam learning rate", above=0)
    init_scale: float = option(1.0, "the Gaussian's standard deviation at the start", above=0)


class Toy(Model, ExactDensity):
    """x ~ N(mean, diag(std^2)) over flattened examples; both vectors learned by Adam."""

    Config = ToyConfig
    phases = ("main",)
    explain = "explicit density: one diagonal Gaussian, fitted by gradient descent"
    failure_hint = "a longer run (--steps)"

    @classmethod
    def bench_options(cls, data: Dataset) -> dict[str, Any]:
        return {"lr": 0.1}

    def __init__(self, config: ToyConfig, data_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.config, self.data_shape = config, tuple(data_shape)
        d = math.prod(data_shape)
        self.mean = nn.Parameter(0.1 * torch.randn(d))  # [d]
        self.log_std = nn.Parameter(torch.full((d,), math.log(config.init_scale)))  # [d]

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"main": torch.optim.Adam(self.parameters(), lr=self.config.lr)}

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1).to(self.mean)  # [N, d]
        z = (flat - self.mean) / self.log_std.exp()
        return (-0.5 * z.pow(2) - self.log_std - 0.5 * math.log(2 * math.pi)).sum(1)  # [N]

    def loss(self, x: torch.Tensor, phase: str) -> dict[str, torch.Tensor]:
        nll = -self.log_prob(x).mean() / self.mean.numel()
        return {"loss": nll}

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        labels: torch.Tensor | int | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        self.draw_labels(n, labels, generator)  # refuses labels: it is not conditional
        eps = torch.randn(n, self.mean.numel(), generator=generator).to(self.mean)
        x = self.mean + temperature * self.log_std.exp() * eps  # [n, d]
        return x.reshape(n, *self.data_shape).float()

    def sampler_parameters(self) -> int:
        return 2 * self.mean.numel()


TEST_MODELS: dict[str, type[Model]] = {"toy": Toy}


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``TEST_MODELS`` in ``MODELS`` for one test, as a line in the registry would put it."""
    for name, cls in TEST_MODELS.items():
        monkeypatch.setitem(MODELS, name, cls)
    yield
