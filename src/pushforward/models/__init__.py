"""The model registry: one literal dict, feeding the CLI's choices.

Every model class has a ``Config`` dataclass, ``phases`` (empty for closed-form fits), a
constructor ``(config, data_shape)`` and ``sample(n, generator)``. Gradient models add
``loss(batch, phase)``, ``optimizers()`` and ``phase_modules(phase)``; the GMM adds ``fit``.
"""

from typing import Any

from .gan import GAN, GANConfig
from .gmm import GMM, GMMConfig
from .vae import VAE, VAEConfig

MODELS: dict[str, Any] = {"gmm": GMM, "vae": VAE, "gan": GAN}

__all__ = ["GAN", "GMM", "MODELS", "VAE", "GANConfig", "GMMConfig", "VAEConfig"]
