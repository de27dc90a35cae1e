"""The model registry: one literal dict, feeding the CLI's choices."""

from typing import Any

from .gmm import GMM, GMMConfig

# name -> model class; each class has ``Config``, ``phases``, ``sample`` and a (data_shape) ctor
MODELS: dict[str, Any] = {"gmm": GMM}

__all__ = ["GMM", "MODELS", "GMMConfig"]
