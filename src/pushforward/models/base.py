"""The model contract: everything the training loop, the run folder, the metrics and the reports
may ask of a model, declared once.

A model is a :class:`Model` (``phases``, ``optimizers``, ``loss``, ``sample``, ...) plus the
capabilities it declares by deriving from them, so callers ask ``isinstance(model, Encoder)``
instead of probing for methods:

- :class:`ExactDensity`: ``log_prob`` is the exact density (the GMM, the flow);
- :class:`Dequantized`: the density is over pixels spread over their cells (the flow on
  images), so its NLL is scored on dequantized held-out images;
- :class:`LikelihoodBound`: ``elbo`` and ``iwae_bound`` bound log p(x) (the VAE);
- :class:`Encoder`: ``encode`` x to a posterior over z with a ``prior`` (the VAE);
- :class:`FitsByEM`: fitted in closed form by ``fit``, not by the gradient loop (the GMM).

A conditional model (``classes`` > 0) is given each batch's labels by the loop and takes the
class to draw in ``sample``; the label machinery is models/conditional.py.

What a model shows lives on the class too: in ``demo`` and ``bench`` (``explain``, ``demo``,
``bench_options``), in the explorer and its GIF (``frame_setup``, ``frame``, ``panels``, with the
vocabulary of models/drawing.py; a model that declares none shows its samples and loss curve)
and in the reports (``curves``, ``curve_label``, ``step_unit``). So a new model is one new file
and one line in ``MODELS``, and nothing outside it names a model.

May import torch, the data types, errors, models/conditional.py and models/drawing.py; imported
by every model and by all that uses one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn

from ..data import Dataset, Examples
from ..errors import PushforwardError
from .conditional import ClassFrequencies
from .drawing import POINTS, FrameView, sample_panels


class Model(nn.Module, ABC):
    """A generative model trained by the one loop: each phase in ``schedule`` takes a batch,
    computes ``loss(batch, phase)["loss"]`` and steps ``optimizers()[phase]``, with gradients
    flowing only into ``phase_modules(phase)``; ``after_step`` runs after every phase."""

    Config: ClassVar[type]  # the frozen dataclass of the model's options (flags, TOML, JSON)
    phases: ClassVar[tuple[str, ...]] = ()  # empty for models fitted by EM
    explain: ClassVar[str]  # one line for reports: what the model is, explicit or implicit
    failure_hint: ClassVar[str]  # what to try when a trained model has visibly failed
    # how it shows itself in the explorer and the reports
    lead: ClassVar[str] = "A generative model: its samples as training goes on"
    curves: ClassVar[tuple[str, ...]] = ("loss",)  # the metrics.jsonl series plotted
    curve_label: ClassVar[str] = "loss"  # the curves' axis
    step_unit: ClassVar[str] = "step"  # what a step of its training is called
    demo: ClassVar[dict[str, dict[str, Any]]] = {}  # data set -> options ``demo`` fits it with
    config: Any
    data_shape: tuple[int, ...]
    classes: int = 0  # a conditional model's class count: loss and sample take labels

    @classmethod
    def resolve_config(cls, cfg: Any, data: Dataset, seed: int = 0) -> Any:
        """Fill data-dependent defaults and refuse options that cannot work on ``data`` (its
        kind, shape, size), before the model is built; ``seed`` is the run's."""
        return cfg

    @classmethod
    def bernoulli_pixels(cls, cfg: Any) -> bool:
        """Whether the model with options ``cfg`` reads images as binary pixels, so that
        ``--binarize auto`` binarizes them."""
        return False

    @classmethod
    def default_steps(cls, data: Dataset) -> int:
        """Training steps (EM iterations) when no --steps, --epochs or --minutes is given: a
        number of steps that trains this model well on ``data``, whatever its size."""
        return 5000

    @classmethod
    def bench_options(cls, data: Dataset) -> dict[str, Any]:
        """The options ``pushforward bench`` trains this model with on ``data``."""
        return {}

    def prepare(self, data: Dataset) -> None:
        """Adapt to the training data before the first step (e.g. standardise 2-D points)."""

    @property
    def schedule(self) -> tuple[str, ...]:
        """The phases of one training step, in order (a GAN may repeat D)."""
        return self.phases

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """One optimizer per phase."""
        return {}

    def phase_modules(self, phase: str) -> list[nn.Module]:
        """The networks a phase trains; the others are frozen during it."""
        return [self]

    def loss(
        self, x: torch.Tensor, phase: str, y: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """The phase's loss on a batch x [B, *shape] (with its labels y [B], for a conditional
        model) under ``"loss"``, and numbers to log."""
        raise NotImplementedError(f"{type(self).__name__} is not trained by gradient phases")

    def double_backward(self, phase: str) -> bool:
        """Whether the phase's loss differentiates a gradient (a penalty on it), which
        torch.compile cannot compile: --compile leaves such a phase's loss eager."""
        return False

    def after_step(self, phase: str, step: int) -> None:
        """Runs after each phase's optimizer step of training step ``step`` (from 1): a moving
        average of weights, say."""

    def training_failures(self, history: list[dict[str, Any]]) -> list[str]:
        """What the training log (metrics.jsonl rows) shows went wrong, one reason each."""
        return []

    @abstractmethod
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        labels: torch.Tensor | int | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """n draws [n, *shape], float32, on the model's device; the generator fixes them. A
        conditional model draws class ``labels`` (one, or one per sample [n]), or by default
        classes as often as the training data has them. ``temperature`` scales the spread of the
        base distribution about its centres (its standard deviation; 1: the trained model): below
        1 trades diversity for samples nearer the modes."""

    def draw_labels(
        self, n: int, asked: torch.Tensor | int | None, generator: torch.Generator | None
    ) -> torch.Tensor | None:
        """The labels [n] of n samples on the model's device: the ``asked`` ones, checked, or
        drawn by the data's class frequencies; None for a model that is not conditional (which
        refuses asked labels)."""
        freq = self._modules.get("label_frequencies")
        if not isinstance(freq, ClassFrequencies):
            if asked is not None:
                raise PushforwardError(
                    "--label: this model was not trained with --conditional; drop --label"
                )
            return None
        return freq.labels(n, asked, generator).to(self.device)

    def trained_classes(self) -> list[int]:
        """The classes a conditional model saw examples of (``--classes`` may name more, and
        a class it never saw is not scored); empty for a model that is not conditional."""
        freq = self._modules.get("label_frequencies")
        if not isinstance(freq, ClassFrequencies):
            return []
        return freq.seen()

    def condition_on(self, classes: int) -> None:
        """Make this a conditional model of ``classes`` classes, whose frequencies in the
        training data (``prepare`` notes them) are kept with the weights."""
        self.classes = classes
        self.label_frequencies = ClassFrequencies(classes)

    def note_classes(self, data: Dataset) -> None:
        """A conditional model notes how often each class occurs in the training data."""
        freq = self._modules.get("label_frequencies")
        if isinstance(freq, ClassFrequencies) and data.train_labels is not None:
            freq.fit(data.train_labels)

    def n_parameters(self) -> int:
        """Free parameters of the whole model."""
        return sum(p.numel() for p in self.parameters())

    @abstractmethod
    def sampler_parameters(self) -> int:
        """Parameters that define the distribution samples come from (networks that only help
        training, an encoder or a discriminator, are not counted)."""

    @property
    def device(self) -> torch.device:
        return next(iter(self.state_dict().values())).device

    # ------------------------------------------------------------------ its frames

    def frame_refusal(self, data: Dataset) -> str | None:
        """Why the explorer cannot draw this model on ``data`` (then a run takes no frames by
        default and refuses --snapshots), or None."""
        return None

    def frame_images(self, data: Dataset) -> int:
        """Images a frame holds besides its samples (for the bound on the frames' size)."""
        return 0

    def frame_setup(self, view: FrameView) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """What the page needs to know about this run's frames (JSON values) and inputs fixed
        for the whole run (written with the frames, except names starting with "_")."""
        return {}, {}

    def frame(
        self, view: FrameView, inputs: dict[str, torch.Tensor], generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """What the model does at this step to the fixed ``inputs`` (eval mode, no gradients),
        as CPU tensors the panels name; image samples are added by the caller. By default:
        points sampled from the same random numbers at every frame."""
        if view.kind == "points":
            return {"samples": self.sample(POINTS, generator).float().cpu()}
        return {}

    @classmethod
    def panels(cls, info: dict[str, Any]) -> list[dict[str, Any]]:
        """How the explorer draws a frame (models/drawing.py), given what ``frame_setup`` said
        (``info``, with ``kind`` and ``data``): by default, the samples."""
        return sample_panels(info["kind"])


class ExactDensity(ABC):
    """The model's density is written down: ``log_prob`` is exact."""

    @abstractmethod
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) of each example: x [N, *shape] -> [N]."""


class Dequantized(ABC):
    """An exact density over dequantized pixels: images on L levels, k / (L - 1), spread
    uniformly over their cells, (k + u) / L. Its held-out NLL is -E_u[log p] + D log L, an upper
    bound on the discrete images' NLL (the scale of published bits per dimension)."""

    @abstractmethod
    def dequantize(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x [B, *shape] on the pixel levels -> the same spread over their cells, u drawn with
        ``generator``; data that is not on levels comes back as it is."""

    @abstractmethod
    def discrete_shift(self) -> float:
        """D log L, the log-volume term that puts the density on the discrete scale (0 when
        nothing is dequantized)."""


class LikelihoodBound(ABC):
    """The model bounds log p(x) from below: the ELBO and the importance-weighted bound."""

    @property
    def trains_on_k(self) -> int:
        """The importance samples of the bound training maximises (1: the ELBO)."""
        return 1

    @abstractmethod
    def elbo(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        y: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Per-example ``elbo``, ``recon`` and ``kl``, [B] each (of log p(x | y) given labels)."""

    @abstractmethod
    def iwae_bound(
        self,
        x: torch.Tensor,
        k: int,
        generator: torch.Generator | None = None,
        max_rows: int = 4096,
        y: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The IWAE-k bound per example: x [B, *shape] -> [B], float64."""


class Encoder(ABC):
    """The model encodes x into a Gaussian posterior over z, with a prior p(z) over z."""

    prior: Any  # a priors.Prior: log_prob, sample

    @abstractmethod
    def encode(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, *shape] (and labels y [B], conditional) -> (mu, logvar), each [B, d]."""

    @abstractmethod
    def generate(
        self,
        z: torch.Tensor,
        generator: torch.Generator | None = None,
        y: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Decode given latents z [n, d] (under labels y [n], conditional): [n, *shape]."""

    @abstractmethod
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Decoder mean at the encoder mean: [B, *shape] -> [B, *shape]."""

    @abstractmethod
    def interpolate(
        self,
        a: torch.Tensor,
        b: torch.Tensor,
        steps: int,
        ya: torch.Tensor | None = None,
        yb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Decoded straight lines in z between a [B, *shape] and b: [B * steps, *shape] (a
        conditional model's label moves from a's to b's along the line)."""


class FitsByEM(ABC):
    """The model is fitted in closed form on the whole training set, not by gradient phases."""

    @abstractmethod
    def fit(
        self,
        x: Examples,
        max_iter: int,
        generator: torch.Generator | None = None,
        callback: Callable[[int, float], bool | None] | None = None,
        resume_at: tuple[int, float] | None = None,
    ) -> dict[str, float]:
        """Fit on x [N, *shape] (a tensor, or rows read from disk); ``callback(iteration, mean log-likelihood)`` returning True
        stops early; ``callback(0, nan)`` comes first, once the start is set (its return is ignored).
        ``resume_at`` (iteration, mean log-likelihood) continues from a checkpoint's parameters.
        Returns what the run's model.json records (iterations, ...)."""
