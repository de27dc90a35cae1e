"""pushforward: a simple Gaussian base distribution pushed through a network approximates complex
data (VAEs, GANs), with the explicit Gaussian mixture as the baseline. Follows arXiv 2503.01898."""

from .data import Dataset, list_datasets, load_dataset
from .errors import PushforwardError
from .models import GMM, MODELS, GMMConfig
from .run import Run
from .train import train
from .version import __version__


def load(path: str, device: str = "auto") -> Run:
    """Open a finished run folder: ``pushforward.load("runs/gmm-ring8").sample(100)``."""
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
