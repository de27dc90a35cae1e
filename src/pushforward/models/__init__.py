"""The model registry: one literal dict, feeding the CLI's choices.

Every model derives from :class:`~.base.Model` and declares its capabilities (``ExactDensity``,
``LikelihoodBound``, ``Encoder``, ``FitsByEM``); see models/base.py. A new model is a new file
here and one line in ``MODELS``: the CLI, the run folder, ``bench`` and the contract tests
(tests/models/test_contract.py) pick it up from this dict.

May import, of this package: models/base, models/flow, models/gan, models/gmm, models/vae.
"""

from .base import Dequantized, Encoder, ExactDensity, FitsByEM, LikelihoodBound, Model
from .flow import Flow, FlowConfig
from .gan import GAN, GANConfig
from .gmm import GMM, GMMConfig
from .vae import VAE, VAEConfig

MODELS: dict[str, type[Model]] = {"gmm": GMM, "vae": VAE, "gan": GAN, "flow": Flow}

__all__ = [
    "GAN",
    "GMM",
    "MODELS",
    "VAE",
    "Dequantized",
    "Encoder",
    "ExactDensity",
    "FitsByEM",
    "Flow",
    "FlowConfig",
    "GANConfig",
    "GMMConfig",
    "LikelihoodBound",
    "Model",
    "VAEConfig",
]
