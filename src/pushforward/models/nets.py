"""Network blocks sized from the data's shape: MLPs for flat data, DCGAN-style convolutional
encoders/decoders for [C, H, W] images. Shared by the VAE and the GAN.

May import, of this package: config, data, errors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from ..config import option
from ..data import Examples, moments
from ..errors import PushforwardError


def adam(
    params: Iterable[nn.Parameter], lr: float, betas: tuple[float, float] = (0.9, 0.999)
) -> torch.optim.Adam:
    """Adam with torch's fused kernel (one pass over every tensor: 1.15x faster VAE training on
    these CPUs, benchmarks/vae_train.py), or the foreach one where the device has no fused."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    except RuntimeError:
        return torch.optim.Adam(params, lr=lr, betas=betas, foreach=True)


# The network options every model with these networks declares, each once (the defaults of
# the width and depth are the model's): arch: str = arch_option(), and so on.
def arch_option() -> Any:
    return option("mlp", "network family", ("mlp", "conv"))


def hidden_option(default: int) -> Any:
    return option(default, "MLP width, or the first conv layer's channels", at_least=1)


def depth_option(default: int) -> Any:
    return option(default, "hidden layers of each MLP", at_least=0, at_most=64)


def blocks_option() -> Any:
    return option(
        0, "--arch conv: extra 3x3 convolutions at each resolution", at_least=0, at_most=16
    )


def check_arch(arch: str, blocks: int, images: bool) -> None:
    """Refuse the options the chosen network family would silently ignore."""
    if arch == "conv" and not images:
        raise PushforwardError("--arch conv needs image data; use --arch mlp for points")
    if blocks and arch != "conv":
        raise PushforwardError(
            f"--blocks {blocks} needs --arch conv (it adds 3x3 convolutions); "
            "drop --blocks or add --arch conv"
        )


def mlp(
    d_in: int, d_out: int, hidden: int, depth: int, act: Callable[[], nn.Module] = nn.ReLU
) -> nn.Sequential:
    """``depth`` hidden layers of width ``hidden``: [B, d_in] -> [B, d_out]."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(d_in if i == 0 else hidden, hidden), act()]
    layers.append(nn.Linear(hidden if depth else d_in, d_out))
    return nn.Sequential(*layers)


def conv_plan(shape: tuple[int, ...]) -> tuple[int, int]:
    """(number of stride-2 halvings, final spatial size) for an H x W image: halve while the size
    is even and at least 8, so 28 -> 14 -> 7, 32 -> 16 -> 8 -> 4, 8 -> 4."""
    _, h, w = shape
    if h != w:
        raise ValueError(f"conv nets need square images, got {h}x{w}")
    n = 0
    while h % 2 == 0 and h >= 8:
        h, n = h // 2, n + 1
    return n, h


def _blocks(ch: int, n: int, act: Callable[[], nn.Module], norm: bool) -> list[nn.Module]:
    """``n`` 3x3 convolutions keeping size and channels: depth at one resolution."""
    layers: list[nn.Module] = []
    for _ in range(n):
        layers += [nn.Conv2d(ch, ch, 3, 1, 1), *([nn.BatchNorm2d(ch)] if norm else []), act()]
    return layers


class ConvEncoder(nn.Module):
    """[B, C, H, W] -> [B, d_out]: 4x4 stride-2 convolutions doubling channels, then a linear map.

    ``norm`` adds batch norm after every convolution but the first (the DCGAN discriminator);
    ``blocks`` adds that many 3x3 convolutions after each of them."""

    def __init__(
        self,
        shape: tuple[int, ...],
        d_out: int,
        width: int,
        act: Callable[[], nn.Module] = nn.ReLU,
        norm: bool = False,
        blocks: int = 0,
    ):
        super().__init__()
        n, final = conv_plan(shape)
        layers: list[nn.Module] = []
        ch = shape[0]
        for i in range(max(n, 1)):
            stride = 2 if i < n else 1
            out = width * 2**i
            layers.append(nn.Conv2d(ch, out, 4 if stride == 2 else 3, stride, 1))
            if norm and i > 0:
                layers.append(nn.BatchNorm2d(out))
            layers += [act(), *_blocks(out, blocks, act, norm)]
            ch = out
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(ch * final * final, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).flatten(1))


class ConvDecoder(nn.Module):
    """[B, d_in] -> [B, C_out, H, W]: a linear map to a small feature map, then 4x4 stride-2
    transposed convolutions halving channels (DCGAN generator shape); ``blocks`` 3x3
    convolutions at every resolution but the output's."""

    def __init__(
        self,
        d_in: int,
        shape: tuple[int, ...],
        width: int,
        out_channels: int,
        norm: bool = False,
        blocks: int = 0,
    ):
        super().__init__()
        n, final = conv_plan(shape)
        n = max(n, 1)
        self.start = (width * 2 ** (n - 1), final)
        self.head = nn.Sequential(nn.Linear(d_in, self.start[0] * final * final), nn.ReLU())
        ch = self.start[0]
        layers: list[nn.Module] = _blocks(ch, blocks, nn.ReLU, norm)
        halvings = conv_plan(shape)[0]
        for i in range(n):
            last = i == n - 1
            out = out_channels if last else ch // 2
            if i < halvings:
                layers.append(nn.ConvTranspose2d(ch, out, 4, 2, 1))
            else:
                layers.append(nn.Conv2d(ch, out, 3, 1, 1))
            if not last:
                if norm:
                    layers.append(nn.BatchNorm2d(out))
                layers += [nn.ReLU(), *_blocks(out, blocks, nn.ReLU, norm)]
            ch = out
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        ch, s = self.start
        return self.body(self.head(z).view(-1, ch, s, s))


def encoder(
    shape: tuple[int, ...],
    d_out: int,
    arch: str,
    hidden: int,
    depth: int,
    act: Callable[[], nn.Module] = nn.ReLU,
    norm: bool = False,
    blocks: int = 0,
) -> nn.Module:
    """x [B, *shape] -> [B, d_out], an MLP over flattened inputs or a conv net for images
    (``norm`` and ``blocks`` shape the conv net only, as in ``decoder``)."""
    if arch == "conv":
        return ConvEncoder(shape, d_out, hidden, act, norm, blocks)
    return nn.Sequential(nn.Flatten(), mlp(math.prod(shape), d_out, hidden, depth, act))


def decoder(
    d_in: int,
    shape: tuple[int, ...],
    arch: str,
    hidden: int,
    depth: int,
    channels_mult: int = 1,
    norm: bool = False,
    blocks: int = 0,
) -> nn.Module:
    """z [B, d_in] -> [B, channels_mult * C, H, W] (or [B, channels_mult * D] for flat data)."""
    if arch == "conv":
        return ConvDecoder(d_in, shape, hidden, shape[0] * channels_mult, norm, blocks)
    out = mlp(d_in, math.prod(shape) * channels_mult, hidden, depth)
    return nn.Sequential(out, nn.Unflatten(1, (channels_mult * shape[0], *shape[1:])))


class Standardize(nn.Module):
    """A fixed per-dimension affine map x -> (x - shift) / scale, fitted once to the training data.

    Networks train best on data of unit scale; keeping the map inside the model (saved with the
    weights) means samples come back in data units and densities stay exact: a density on the
    standardized scale converts by subtracting ``log_scale_sum``.
    """

    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.register_buffer("shift", torch.zeros(shape))
        self.register_buffer("scale", torch.ones(shape))

    @torch.no_grad()
    def fit(self, x: Examples) -> None:
        """Per-dimension mean and std of x [N, *shape] (std floored so constants stay finite),
        in one pass of float64 chunks (data read from disk too)."""
        mean, std = moments(x)
        self.shift.copy_(mean)
        self.scale.copy_(std.clamp(min=1e-3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.scale + self.shift

    def log_scale_sum(self) -> torch.Tensor:
        return self.scale.log().sum()
