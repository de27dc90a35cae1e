"""The normalizing flow: the same Gaussian base as the VAE and the GAN, pushed through a network
that is invertible with a cheap Jacobian, so the density it defines is written down exactly:

    log p(x) = log N(f(x); 0, I) + log |det df/dx|,

with f the composition of steps (ActNorm, an invertible linear map of the channels, an affine
coupling; models/flow_layers.py), RealNVP's couplings with Glow's ActNorm and learned 1x1
mixing. The price of the exact density is the architecture: f keeps the data's dimension and
every step must be invertible.

Points and vectors are standardized first (an affine map whose log-det is counted). Images with
L discrete pixel levels are dequantized, y = (k + u) / L with u ~ U[0, 1) per pixel, and taken
through RealNVP's logit, both Jacobians counted; ``log_prob`` is the exact density of that
continuous model at the given points, and -E_u[log p(y)] + D log L bounds the discrete
images' NLL, the scale of published bits per dimension.

May import, of this package: config, data, errors, models/base, models/drawing,
models/flow_layers, models/nets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from ..config import Options, option
from ..data import Dataset, find_levels, in_memory
from ..errors import PushforwardError
from . import drawing as dr
from .base import Dequantized, ExactDensity, Model
from .flow_layers import (
    ActNorm,
    AffineCoupling,
    InvertibleLinear,
    Squeeze,
    Step,
    conv_net,
    masks,
    vector_net,
)
from .nets import Standardize, adam, check_arch

LOG_2PI = math.log(2 * math.pi)
START_EXAMPLES = 1024  # ActNorm's data-dependent start reads this many training examples


@dataclass(frozen=True)
class FlowConfig(Options):
    couplings: int = option(8, "affine coupling steps", at_least=1, at_most=128)
    arch: str = option(
        "auto",
        "the couplings' networks: auto is conv for images, mlp for points (mlp on images "
        "flattens them)",
        ("auto", "mlp", "conv"),
    )
    hidden: int | None = option(
        None, "MLP width, or conv channels (default: 256 for points, 64 for images)", at_least=1
    )
    depth: int = option(
        2, "hidden layers of each MLP network, 1x1 convolutions of each conv one", at_least=0
    )
    levels: int | None = option(
        None,
        "pixel levels to dequantize (default: read from the images, e.g. 17 for digits, 256 "
        "for 8-bit images; 0 for continuous values)",
        at_least=0,
        at_most=65536,
    )
    logit_alpha: float = option(
        0.05, "images: the logit is taken of alpha + (1 - 2 alpha) y", above=0, below=0.5
    )
    lr: float = option(1e-3, "Adam learning rate", above=0)


class Flow(Model, ExactDensity, Dequantized):
    """An affine-coupling flow (RealNVP, with Glow's ActNorm and invertible 1x1 mixing)."""

    Config = FlowConfig
    phases = ("main",)
    explain = "explicit: z ~ N(0, I) through an invertible network, the density exact"
    failure_hint = "a longer run (--steps), more --couplings or a wider --hidden"
    lead = "A normalizing flow: an invertible map of a Gaussian, its density exact"
    curve_label = "NLL, nats per dimension"

    @classmethod
    def resolve_config(cls, cfg: FlowConfig, data: Dataset, seed: int = 0) -> FlowConfig:
        """Read the pixel levels from the images, and refuse what cannot be a coupling flow."""
        images = data.kind == "images"
        check_arch(cfg.arch, 0, images)
        if data.dim < 2:
            raise PushforwardError(
                f"data {data.name!r} has 1 dimension: a coupling flow splits the features in "
                "two, so it needs at least 2; fit a GMM instead"
            )
        if images and cfg.levels is None:
            cfg = replace(cfg, levels=find_levels(in_memory(data.train[:2000])))
        if not images:
            cfg = replace(cfg, levels=0)
        arch = cfg.arch if cfg.arch != "auto" else ("conv" if images else "mlp")
        hidden = cfg.hidden or (64 if arch == "conv" else 256)
        return replace(cfg, arch=arch, hidden=hidden)

    @classmethod
    def bench_options(cls, data: Dataset) -> dict[str, Any]:
        return {"hidden": 64} if data.kind == "images" else {"hidden": 128}

    def __init__(self, config: FlowConfig, data_shape: tuple[int, ...]) -> None:
        super().__init__()
        if config.arch == "auto" or config.levels is None or config.hidden is None:
            raise ValueError("resolve_config first")  # an internal misuse, not a user error
        self.config, self.data_shape = config, tuple(data_shape)
        self.images = len(data_shape) == 3
        self.standardize = Standardize(self.data_shape)  # points: fitted by ``prepare``
        # the shape the steps see: squeezed images (even sizes), flat vectors otherwise
        shape: tuple[int, ...] = (math.prod(data_shape),)
        self.squeeze: Squeeze | None = None
        if config.arch == "conv":
            c, h, w = data_shape
            even = h % 2 == 0 and w % 2 == 0
            self.squeeze = Squeeze() if even else None
            shape = (4 * c, h // 2, w // 2) if even else (c, h, w)
        self.shape = shape
        steps: list[nn.Module] = []
        for i in range(config.couplings):
            steps.append(ActNorm(shape[0]))
            if shape[0] >= 2:
                steps.append(InvertibleLinear(shape[0], seed=i))
            net = (
                conv_net(shape[0], config.hidden, config.depth)
                if len(shape) == 3
                else vector_net(shape[0], config.hidden, config.depth)
            )
            steps.append(AffineCoupling(masks(shape, i), net))
        self.steps = nn.ModuleList(steps)

    # ------------------------------------------------------------------ the map and its inverse

    def _into_flow(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Data units -> the steps' input [B, *self.shape], with the log-det of the map [B]:
        standardizing (points), or the logit of continuous pixels y in [0, 1] (images)."""
        if not self.images:
            return self.standardize(x), -self.standardize.log_scale_sum().expand(len(x))
        a = self.config.logit_alpha
        p = a + (1 - 2 * a) * x.clamp(0, 1)
        log_p, log_q = p.log(), (-p).log1p()  # [B, C, H, W] each
        h = log_p - log_q
        logdet = (math.log(1 - 2 * a) - log_p - log_q).flatten(1).sum(1)
        if self.squeeze is not None:
            h = self.squeeze(h)[0]
        return h.reshape(len(x), *self.shape), logdet

    def _out_of_flow(self, h: torch.Tensor) -> torch.Tensor:
        """The inverse of ``_into_flow``: [B, *self.shape] -> data units [B, *data_shape]."""
        if not self.images:
            return self.standardize.inverse(h.reshape(len(h), *self.data_shape))
        if self.squeeze is not None:
            h = self.squeeze.inverse(h)
        a = self.config.logit_alpha
        y = (torch.sigmoid(h.reshape(len(h), *self.data_shape)) - a) / (1 - 2 * a)
        return y.clamp(0, 1)

    def to_base(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """f: continuous data x [B, *data_shape] -> z [B, D], with log|det df/dx| [B]."""
        h, logdet = self._into_flow(x)
        for step in self.steps:
            h, ld = step(h)
            logdet = logdet + ld
        return h.flatten(1), logdet

    def from_base(self, z: torch.Tensor) -> torch.Tensor:
        """f^-1: z [B, D] -> continuous data [B, *data_shape]."""
        h = z.reshape(len(z), *self.shape)
        for step in reversed(self.steps):
            assert isinstance(step, Step)
            h = step.inverse(h)
        return self._out_of_flow(h)

    # ------------------------------------------------------------------ density and training

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """The exact log-density at x [N, *shape] (continuous values; for images, of the
        dequantized pixels in [0, 1]): [N], in the weights' dtype."""
        x = x.to(self.device, next(self.parameters()).dtype)
        z, logdet = self.to_base(x)
        return -0.5 * (z.pow(2).sum(1) + z.shape[1] * LOG_2PI) + logdet

    def dequantize(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Pixels on L levels, k / (L - 1), spread uniformly over their cells: (k + u) / L.
        Points and continuous images are returned as they are."""
        if self.discrete_shift() == 0:
            return x
        u = torch.rand(x.shape, generator=generator, device=None if generator else x.device)
        return self._in_cells(x, u.to(x))

    def _in_cells(self, x: torch.Tensor, u: torch.Tensor | float) -> torch.Tensor:
        """Pixels k / (L - 1) moved to the point ``u`` (in [0, 1)) across their cell: (k + u) / L."""
        levels = self.config.levels or 0
        return ((x * (levels - 1)).round() + u) / levels

    def discrete_shift(self) -> float:
        """D log L: what turns the dequantized density's NLL into the bound on the discrete
        pixels' (0 for points and continuous images)."""
        levels = self.config.levels or 0
        return math.prod(self.data_shape) * math.log(levels) if levels >= 2 else 0.0

    def loss(
        self, x: torch.Tensor, phase: str, y: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """The NLL per dimension, in nats (on the discrete scale for dequantized images)."""
        d = math.prod(self.data_shape)
        nll = (self.discrete_shift() - self.log_prob(self.dequantize(x))) / d  # [B]
        if not self.images:
            return {"loss": nll.mean()}
        return {"loss": nll.mean(), "bits_per_dim": nll.mean().detach() / math.log(2)}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"main": adam(self.parameters(), self.config.lr)}

    @torch.no_grad()
    def prepare(self, data: Dataset) -> None:
        """Standardize points; start every ActNorm from the first training examples (pixels at
        the middle of their cells), the same on every rank."""
        if not self.images:
            self.standardize.fit(data.train)
        x = in_memory(data.train[:START_EXAMPLES]).to(self.device)
        if self.discrete_shift() != 0:
            x = self._in_cells(x, 0.5)
        h = self._into_flow(x)[0]
        for step in self.steps:
            if isinstance(step, ActNorm):
                step.start(h)
            h = step(h)[0]

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        labels: torch.Tensor | int | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """z ~ N(0, T^2 I) through f^-1: [n, *shape]; images come back on their pixel levels."""
        self.draw_labels(n, labels, generator)  # refuses labels: the flow is not conditional
        z = torch.randn(n, math.prod(self.shape), generator=generator) * temperature
        x = self.from_base(z.to(self.device))
        levels = self.config.levels or 0
        if self.images and levels >= 2:  # the cell a value falls in is its pixel level
            x = (x * levels).floor().clamp(max=levels - 1) / (levels - 1)
        return x.float()

    def sampler_parameters(self) -> int:
        """Every parameter: the map is the whole model."""
        return self.n_parameters()

    # ------------------------------------------------------------------ its frames (2-D points)

    def frame_setup(self, view: dr.FrameView) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """Fixed draws of z and straight lines of the z-plane (2-D points)."""
        if view.kind != "points" or view.extent is None:
            return {}, {}
        g = torch.Generator().manual_seed(view.seed)
        z = torch.randn(dr.POINTS, self.shape[0], generator=g)  # [POINTS, D]
        lines = dr.z_lines(self.shape[0], dr.Z_EXTENT)
        return {"z_extent": dr.Z_EXTENT}, {"z_lines": lines, "z_points": z[:, :2], "_z": z}

    def frame(
        self, view: dr.FrameView, inputs: dict[str, torch.Tensor], generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """f^-1 applied to the z-lines and the fixed draws, and the exact density over the data
        plane."""
        if view.kind != "points" or view.extent is None:
            return super().frame(view, inputs, generator)
        lines, dev = inputs["z_lines"], self.device
        warped = self.from_base(lines.reshape(-1, lines.shape[-1]).to(dev))
        return {
            "lines": warped.float().cpu().reshape(*lines.shape[:2], -1),  # [2 LINES, POINTS, D]
            "samples": self.from_base(inputs["_z"].to(dev)).float().cpu(),  # [POINTS, D]
            "log_density": dr.log_map(self.log_prob(dr.plane(view.extent).to(dev))),
        }

    @classmethod
    def panels(cls, info: dict[str, Any]) -> list[dict[str, Any]]:
        if info["kind"] != "points" or "z_extent" not in info:
            return dr.sample_panels(info["kind"], columns=info.get("columns"))
        follow = {"hue": "z_points"}
        base = dr.panel(
            "Base space: z ~ N(0, I)",
            f"{dr.POINTS} fixed draws of z and straight lines of the z-plane; a point's colour "
            "follows it into the data space.",
            "z",
            [dr.lines("z_lines"), dr.dots("z_points", follow)],
        )
        data = dr.panel(
            "Data space: f^-1(z) over the true density",
            "The inverse flow pushes the z-plane forward: the grid lines as it warps them and the "
            "same draws' samples. It cannot tear the plane, so separate modes stay joined.",
            "data",
            [dr.density("true_log_density"), dr.lines("lines"), dr.dots("samples", follow)],
            dr.DENSITY_LEGEND,
        )
        density = dr.panel(
            "The flow's exact density",
            "log p(x) = log N(f(x)) + log |det df/dx| at this step, scaled like the true "
            "density: written down, where the GAN's is not.",
            "data",
            [dr.density("log_density"), dr.dots("samples", "#111111", 1.0, 0.4)],
            dr.DENSITY_LEGEND,
        )
        return [base, data, density]
