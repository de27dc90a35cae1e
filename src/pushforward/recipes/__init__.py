"""Shipped recipes: named TOML files of options that measured best for one model on one shape of
data (docs/benchmarks.md holds the evidence). ``--recipe NAME`` puts a recipe's options under
everything the user gives, so defaults < recipe < --config < flags < --set.

A recipe file holds ``description`` (one line for ``--help``), ``shape`` (the [C, H, W] images it
was made for) and [train] / [model] tables of options, as a ``--config`` file does.

May import, of this package: config, errors.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib import resources
from typing import Any

from ..config import resolve
from ..errors import PushforwardError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


BUDGET = ("steps", "epochs", "minutes")  # how long to train: the user's replaces the recipe's


@dataclass(frozen=True)
class Recipe:
    name: str
    model: str
    description: str
    shape: tuple[int, ...]
    options: dict[str, Any]  # flat: train and model options together

    def check_shape(self, shape: tuple[int, ...], data: str) -> None:
        """Refuse data of another shape: a 28x28 recipe's networks do not fit 8x8 digits."""
        if tuple(shape) != self.shape:
            fits = [r.name for r in recipes(self.model).values() if r.shape == tuple(shape)]
            hint = f"use --recipe {fits[0]}" if fits else "train without --recipe"
            have = "x".join(map(str, shape))
            raise PushforwardError(
                f"--recipe {self.name} is for {_shape(self.shape)}; --data {data} is {have}: "
                f"{hint} (`pushforward train {self.model} --help` lists the recipes)"
            )


def _shape(shape: tuple[int, ...]) -> str:
    c, h, w = shape
    return f"{h}x{w} {'grey' if c == 1 else 'colour'} images"


def recipes(model: str) -> dict[str, Recipe]:
    """The recipes shipped for ``model``, by name."""
    folder = resources.files(__package__).joinpath(model)
    if not folder.is_dir():
        return {}
    out = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            name = entry.name.removesuffix(".toml")
            out[name] = _parse(model, name, tomllib.loads(entry.read_text()))
    return out


def _parse(model: str, name: str, data: dict[str, Any]) -> Recipe:
    options: dict[str, Any] = {}
    for table in ("train", "model"):
        options.update(data.get(table, {}))
    return Recipe(name, model, data["description"], tuple(data["shape"]), options)


def recipe(model: str, name: str) -> Recipe:
    """The named recipe of ``model``, or a one-line error listing those there are."""
    shipped = recipes(model)
    if not shipped:
        raise PushforwardError(f"--recipe {name!r}: {model} ships no recipes; drop --recipe")
    if name not in shipped:
        names = ", ".join(shipped)
        raise PushforwardError(f"--recipe {name!r}: {model} has no such recipe; choose: {names}")
    return shipped[name]


def help_text(model: str) -> str:
    """The recipes of ``model`` as ``--help`` lists them, or "" when it has none."""
    shipped = recipes(model)
    if not shipped:
        return ""
    width = max(map(len, shipped))
    lines = [f"  {n:<{width}}  {r.description}" for n, r in shipped.items()]
    return "recipes (--recipe NAME; your options override its own):\n" + "\n".join(lines)


def resolve_options(
    model: str, classes: tuple[type, ...], given: dict[str, Any], toml: str | None, sets: list[str]
) -> tuple[Any, ...]:
    """The configs of ``classes`` from the user's options, over the recipe they name (given as
    a flag, in the --config file or by --set). A training length the user gives (--steps,
    --epochs or --minutes) replaces the recipe's."""
    configs = resolve(classes, given, toml, sets)
    name = configs[0].recipe
    if name is None:
        return configs
    options = recipe(model, name).options
    if any(getattr(configs[0], k) is not None for k in BUDGET):
        options = {k: v for k, v in options.items() if k not in BUDGET}
    return resolve(classes, given, toml, sets, (options, f"--recipe {name}"))
