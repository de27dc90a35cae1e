"""Class conditioning for the VAE and the GAN (--conditional): a label y in 0..K-1 reaches the
networks beside their input, so a trained model draws the class it is asked for.

- The decoder and the generator take z beside the one-hot label (Mirza & Osindero 2014; the
  conditional VAE of Sohn et al. 2015).
- The VAE's encoder takes the label too: one-hot coordinates beside a flat input, one-hot planes
  beside an image's channels.
- The GAN's discriminator scores with a projection head (Miyato & Koyama 2018): D(x, y) =
  psi(phi(x)) + <embed(y), phi(x)>, which measured better than feeding the label in.

A label may also be a row of class weights [B, K] (a one-hot, or a blend of two for an
interpolation between classes). A model without --conditional builds none of this.

May import, of this package: config, errors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..config import option
from ..errors import PushforwardError


# The options every conditional model declares, each once
def conditional_option() -> Any:
    return option(
        False,
        "condition on the data's labels (classes; the mode of ring8 and grid25): sample a "
        "chosen class with `sample --label`",
    )


def classes_option() -> Any:
    return option(
        None,
        "with --conditional: how many classes the labels name (default: the data's largest "
        "label + 1)",
        at_least=2,
        at_most=1000,
    )


def resolve_classes(conditional: bool, classes: int | None, data: Any) -> int | None:
    """The class count of a conditional model on ``data`` (a Dataset), checked: its labels
    exist and lie in 0..classes-1. Refuses --classes without --conditional."""
    if not conditional:
        if classes is not None:
            raise PushforwardError(f"--classes {classes} needs --conditional; drop --classes")
        return None
    splits = [y for y in (data.train_labels, data.test_labels) if y is not None]
    if data.train_labels is None:
        raise PushforwardError(
            f"--conditional needs labelled data, and {data.name} has no labels: use a built-in "
            "image set, ring8 or grid25, idx: with a labels file, or images: with one subfolder "
            "per class; or drop --conditional"
        )
    top = max(int(y.max()) for y in splits) + 1
    if classes is None:
        return max(top, 2)
    if top > classes:
        raise PushforwardError(
            f"--classes {classes}: {data.name} has labels up to {top - 1}; give --classes {top} "
            "or more"
        )
    return classes


def one_hot(y: torch.Tensor, classes: int, dtype: torch.dtype) -> torch.Tensor:
    """Labels [B] (class indices) or class weights [B, K] as weights [B, K]."""
    if y.dim() == 2:
        return y.to(dtype)
    return nn.functional.one_hot(y.long(), classes).to(dtype)


def class_rows(classes: list[int], n: int) -> tuple[torch.Tensor, int, list[str]]:
    """Labels of at most n samples of a conditional model shown one row per class of
    ``classes`` (up to 8 a row): (the labels [rows * per], the row length, the rows' names)."""
    per = max(1, min(8, n // len(classes)))
    shown = classes[: n // per]
    names = [f"class {c}" for c in shown]
    return torch.as_tensor(shown).repeat_interleave(per), per, names


def labelled_shape(shape: tuple[int, ...], classes: int, planes: bool) -> tuple[int, ...]:
    """The input shape of a network that sees the label beside an example of ``shape``: K more
    channels (planes), or K more coordinates after flattening; ``shape`` when K = 0."""
    if not classes:
        return shape
    if planes:
        return (shape[0] + classes, *shape[1:])
    return (math.prod(shape) + classes,)


def call(net: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """``net(x)``, or ``net(x, y)`` for a conditioned network."""
    return net(x) if y is None else net(x, y)


class LabelledInput(nn.Module):
    """``net`` applied to its input beside the label: one-hot coordinates after a flattened
    input ([B, D] -> [B, D + K]), or one-hot planes after an image's channels ([B, C, H, W] ->
    [B, C + K, H, W])."""

    def __init__(self, net: nn.Module, classes: int, planes: bool) -> None:
        super().__init__()
        self.net, self.classes, self.planes = net, classes, planes

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = one_hot(y, self.classes, x.dtype)  # [B, K]
        if self.planes:
            h = h[:, :, None, None].expand(-1, -1, *x.shape[2:])  # [B, K, H, W]
            return self.net(torch.cat([x, h], 1))
        return self.net(torch.cat([x.flatten(1), h], 1))


class ProjectionCritic(nn.Module):
    """A discriminator with a projection head: features phi(x) [P, F] of a pack of m examples
    scored as psi(phi) + <embed(y), phi>, where embed maps the m labels' one-hots [P, m * K] to
    F (one table per place in the pack; with m = 1 an embedding per class)."""

    def __init__(
        self,
        features: nn.Module,
        width: int,
        classes: int,
        pack: int,
        act: Callable[[], nn.Module],
    ) -> None:
        super().__init__()
        self.features, self.act, self.classes = features, act(), classes
        self.head = nn.Linear(width, 1)
        self.embed = nn.Linear(pack * classes, width, bias=False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x [P, m * C, ...] (a pack per row), y [P, m] labels or [P, m, K] weights -> [P, 1]."""
        h = self.act(self.features(x))  # [P, F]
        labels = one_hot(y.flatten(0, 1), self.classes, h.dtype).view(len(h), -1)  # [P, m*K]
        return self.head(h) + (self.embed(labels) * h).sum(1, keepdim=True)


class ClassFrequencies(nn.Module):
    """How often each class occurs in the training data (a buffer saved with the weights): the
    labels a conditional model draws when none is asked, so its samples follow the data's
    classes and compare with the whole data set."""

    frequencies: torch.Tensor

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.register_buffer("frequencies", torch.full((classes,), 1.0 / classes))

    @property
    def classes(self) -> int:
        return len(self.frequencies)

    @torch.no_grad()
    def fit(self, labels: torch.Tensor) -> None:
        counts = torch.bincount(labels.long().cpu(), minlength=self.classes).double()
        self.frequencies.copy_((counts / counts.sum()).to(self.frequencies))

    def seen(self) -> list[int]:
        """The classes the training data had examples of."""
        return [c for c, f in enumerate(self.frequencies.tolist()) if f > 0]

    def labels(
        self, n: int, asked: torch.Tensor | int | None, generator: torch.Generator | None
    ) -> torch.Tensor:
        """n labels [n] on the host: the asked class (or one each, [n]), checked, or drawn from
        the frequencies with ``generator``."""
        if asked is None:
            p = self.frequencies.detach().double().cpu()
            return torch.multinomial(p, n, replacement=True, generator=generator)
        y = torch.as_tensor(asked).long().cpu().reshape(-1)
        if len(y) == 1:
            y = y.expand(n)
        if len(y) != n:
            raise PushforwardError(f"{len(y)} labels for {n} samples; give one label or one each")
        bad = y[(y < 0) | (y >= self.classes)]
        if len(bad):
            raise PushforwardError(
                f"--label {int(bad[0])}: this run's classes are 0 to {self.classes - 1}"
            )
        return y.clone()


def line_labels(lines: torch.Size, classes: int, device: torch.device) -> torch.Tensor | None:
    """Labels for the explorer's z-lines [L, P, d] flattened: each line under one class, the
    classes in turn ([L * P]); None for a model that is not conditional."""
    if not classes:
        return None
    n_lines, per_line = lines
    return (torch.arange(n_lines) % classes).repeat_interleave(per_line).to(device)


def best_class(
    score: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
    x: torch.Tensor,
    classes: int,
) -> torch.Tensor:
    """``score(x, y)`` at each row of x under the class that scores it highest (a conditional
    discriminator's map: where some class is judged real), or ``score(x, None)``."""
    if not classes:
        return score(x, None)
    ys = (torch.full((len(x),), c, device=x.device) for c in range(classes))
    return torch.stack([score(x, y) for y in ys]).amax(0)
