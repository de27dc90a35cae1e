"""pushforward: a simple Gaussian base distribution pushed through a network approximates complex
data (VAEs, GANs), with the explicit Gaussian mixture as the baseline. Follows arXiv 2503.01898.

May import, of this package: run, version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .version import __version__

if TYPE_CHECKING:
    from .data import Dataset, list_datasets, load_dataset
    from .errors import PushforwardError
    from .models import GMM, MODELS, GMMConfig
    from .run import Run
    from .training.loop import train

# the public names, imported on first use: the command starts, and can be interrupted, before
# torch is imported
_LAZY = {
    "Dataset": "data",
    "list_datasets": "data",
    "load_dataset": "data",
    "PushforwardError": "errors",
    "GMM": "models",
    "MODELS": "models",
    "GMMConfig": "models",
    "Run": "run",
    "train": "training.loop",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'pushforward' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)


def load(path: str, device: str = "auto") -> Run:
    """Open a finished run folder: ``pushforward.load("runs/gmm-ring8").sample(100)``."""
    from .run import Run

    return Run.load(path, device)


__all__ = [
    "GMM",
    "MODELS",
    "Dataset",
    "GMMConfig",
    "PushforwardError",
    "Run",
    "__version__",
    "list_datasets",
    "load",
    "load_dataset",
    "train",
]
