"""The invertible layers of the normalizing flow, each a map x -> y with the log-determinant of
its Jacobian per example, and its exact inverse.

A layer's ``forward(x)`` returns (y, log|det dy/dx| [B]) in the direction data -> base;
``inverse(y)`` goes back. Shapes are [B, D] for vectors and [B, C, H, W] for images; a layer
works on either unless it says otherwise.

- :class:`ActNorm` (Glow): a per-channel affine map, started from the data so the first steps
  see unit-scale inputs.
- :class:`InvertibleLinear` (Glow's invertible 1x1 convolution): a learned rotation and scaling
  of the channels, stored as P L (U + diag(s)) so its determinant is the product of s.
- :class:`AffineCoupling` (RealNVP): the masked half of x sets a scale and shift of the other
  half through a network, so the map is triangular: exact inverse, log-det a sum.
- :class:`Squeeze`: 2x2 pixel blocks folded into channels, so couplings can split channels.

May import, of this package: models/nets.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .nets import mlp


class Step(nn.Module):
    """One invertible layer: ``forward`` x -> (y, log-det [B]), ``inverse`` y -> x."""

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def _per_channel(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A [C] vector shaped to broadcast over x [B, C] or [B, C, H, W]."""
    return v.view(1, -1, *([1] * (x.dim() - 2)))


def _pixels(x: torch.Tensor) -> int:
    """Positions a per-channel map is applied at: H * W for images, 1 for vectors."""
    return math.prod(x.shape[2:])


class ActNorm(Step):
    """y = (x - bias) * exp(-log_scale) per channel; ``start`` sets both from a batch so that
    y has zero mean and unit variance per channel (Glow's data-dependent start)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))  # [C]
        self.log_scale = nn.Parameter(torch.zeros(channels))  # [C]

    @torch.no_grad()
    def start(self, x: torch.Tensor) -> None:
        dims = [0, *range(2, x.dim())]
        self.bias.copy_(x.mean(dims))
        self.log_scale.copy_(x.std(dims).clamp_min(1e-6).log())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = (x - _per_channel(self.bias, x)) * _per_channel((-self.log_scale).exp(), x)
        logdet = -self.log_scale.sum() * _pixels(x)
        return y, logdet.expand(len(x))

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * _per_channel(self.log_scale.exp(), y) + _per_channel(self.bias, y)


class InvertibleLinear(Step):
    """y = W x over the channels at every position, W = P L (U + diag(sign * exp(log_s))): P a
    fixed permutation, L unit lower- and U strictly upper-triangular, so log|det W| is the sum
    of log_s. Starts at a random rotation (seeded), as Glow does."""

    def __init__(self, channels: int, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        w = torch.linalg.qr(torch.randn(channels, channels, generator=g, dtype=torch.float64))[0]
        p, lower, upper = torch.linalg.lu(w)
        s = torch.diagonal(upper)
        self.register_buffer("perm", p.float())  # [C, C]
        self.register_buffer("sign", s.sign().float())  # [C]
        self.lower = nn.Parameter(lower.tril(-1).float())  # [C, C], below the diagonal
        self.upper = nn.Parameter(upper.triu(1).float())  # [C, C], above the diagonal
        self.log_s = nn.Parameter(s.abs().log().float())  # [C]
        eye = torch.eye(channels)
        self.register_buffer("eye", eye)
        self.register_buffer("lower_mask", torch.tril(torch.ones_like(eye), -1))

    perm: torch.Tensor
    sign: torch.Tensor
    eye: torch.Tensor
    lower_mask: torch.Tensor

    def weight(self) -> torch.Tensor:
        lower = self.lower * self.lower_mask + self.eye
        # the diagonal as eye * s (not torch.diag, whose gradient inductor cannot yet lower)
        upper = self.upper * self.lower_mask.T + self.eye * (self.sign * self.log_s.exp())
        return self.perm @ lower @ upper  # [C, C]

    def _mix(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return x @ w.T
        return torch.einsum("oc,bchw->bohw", w, x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logdet = self.log_s.sum() * _pixels(x)
        return self._mix(x, self.weight()), logdet.expand(len(x))

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return self._mix(y, torch.linalg.inv(self.weight().double()).to(y.dtype))


class AffineCoupling(Step):
    """y = x on the mask; elsewhere y = x * exp(s) + t, with (s, t) = net(x * mask) and s held
    in (-2, 2) by a scaled tanh, so no step can blow up. The net's last layer starts at zero:
    the coupling starts as the identity."""

    def __init__(self, mask: torch.Tensor, net: nn.Module) -> None:
        super().__init__()
        self.register_buffer("mask", mask)  # [D] or [C, H, W], 1 where x passes unchanged
        self.net = net  # [B, *shape] -> [B, 2 * C, ...]: raw scale and shift
        last = [m for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d))][-1]
        nn.init.zeros_(last.weight)
        assert last.bias is not None
        nn.init.zeros_(last.bias)

    mask: torch.Tensor

    def _scale_shift(self, kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw_s, t = self.net(kept).chunk(2, dim=1)
        free = 1 - self.mask
        return 2 * torch.tanh(raw_s / 2) * free, t * free

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self._scale_shift(x * self.mask)
        return x * s.exp() + t, s.flatten(1).sum(1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        s, t = self._scale_shift(y * self.mask)  # y * mask is x * mask
        return (y - t) * (-s).exp()


class Squeeze(Step):
    """[B, C, H, W] -> [B, 4C, H/2, W/2]: each 2x2 block of pixels becomes 4 channels."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, h, w = x.shape
        y = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
        return y.reshape(b, 4 * c, h // 2, w // 2), x.new_zeros(b)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        b, c4, h2, w2 = y.shape
        x = y.view(b, c4 // 4, 2, 2, h2, w2).permute(0, 1, 4, 2, 5, 3)
        return x.reshape(b, c4 // 4, 2 * h2, 2 * w2)


def vector_net(dim: int, hidden: int, depth: int) -> nn.Module:
    """The conditioner of a vector coupling: [B, D] -> [B, 2D] (scale and shift per input)."""
    return mlp(dim, 2 * dim, hidden, depth)


def conv_net(channels: int, hidden: int, blocks: int) -> nn.Module:
    """The conditioner of an image coupling (Glow's): 3x3 conv, ``blocks`` 1x1 convs, 3x3 conv
    to a scale and a shift per channel: [B, C, H, W] -> [B, 2C, H, W]."""
    layers: list[nn.Module] = [nn.Conv2d(channels, hidden, 3, padding=1), nn.ReLU()]
    for _ in range(blocks):
        layers += [nn.Conv2d(hidden, hidden, 1), nn.ReLU()]
    layers.append(nn.Conv2d(hidden, 2 * channels, 3, padding=1))
    return nn.Sequential(*layers)


def masks(shape: tuple[int, ...], i: int) -> torch.Tensor:
    """The i-th coupling's mask over one example of ``shape``: the first half of the features
    (vectors) or channels (images of 2 or more channels), else a checkerboard of pixels; odd
    couplings take the complement, so every feature is changed every other coupling."""
    if len(shape) == 1:
        m = (torch.arange(shape[0]) < shape[0] // 2).float()
    elif shape[0] >= 2:
        m = (torch.arange(shape[0]) < shape[0] // 2).float().view(-1, 1, 1).expand(shape)
    else:
        h, w = shape[1:]
        m = ((torch.arange(h)[:, None] + torch.arange(w)[None]) % 2 == 0).float()
        m = m.expand(shape)
    m = m.contiguous()
    return m if i % 2 == 0 else 1 - m
