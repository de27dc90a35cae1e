"""Frozen dataclasses <-> argparse flags <-> TOML/JSON, with one small set of helpers.

Every option lives in exactly one dataclass field (``TrainConfig`` here, a model's config at the top
of its own file, ``EvalOptions`` beside the Run handle), declared with its type, choices and
bounds (``option``) and checked in one place: when an :class:`Options` dataclass is built.
Flags, ``--config FILE.toml``, ``--set key=value``, the Python API and the run folder's
``config.json`` are all views of those fields, resolved in the order
defaults < TOML file < flags < ``--set``.

May import, of this package: errors, limits.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from .errors import PushforwardError
from .limits import read_file

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

T = TypeVar("T")
_KIND = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def option(
    default: Any,
    help: str,
    choices: tuple[str, ...] | None = None,
    *,
    at_least: float | None = None,
    above: float | None = None,
    below: float | None = None,
    at_most: float | None = None,
) -> Any:
    """A dataclass field that also knows its flag's help text and allowed values: ``choices``
    for a string, bounds (``at_least``, ``above``, ``below``, ``at_most``) for a number."""
    bounds = {"at_least": at_least, "above": above, "below": below, "at_most": at_most}
    return field(default=default, metadata={"help": help, "choices": choices, **bounds})


INT_LIMIT = 2**31 - 1  # every integer option: counts, sizes and seeds all fit in int32


def out_of_bounds(f: dataclasses.Field[Any], value: Any) -> str | None:
    """Why a number breaks its field's declared bounds ("must be at least 1"), else None."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    if isinstance(value, int) and abs(value) > INT_LIMIT:  # past it, torch and numpy overflow
        return f"must be between -{INT_LIMIT} and {INT_LIMIT}"
    m = f.metadata
    lo, above, below = m.get("at_least"), m.get("above"), m.get("below")
    most = m.get("at_most")
    if most is not None and not value <= most:
        return f"must be at most {most:g}"
    if lo is not None and not value >= lo:
        return f"must be at least {lo:g}"
    if above is not None and not value > above:
        return f"must be above {above:g}"
    if below is not None and not value < below:
        return f"must be below {below:g}"
    return None


class Options:
    """The base of every options dataclass (TrainConfig, each model's Config, EvalOptions): each
    value is typed and checked against its field's declared type, choices and bounds when the
    dataclass is built, whatever builds it (flags, TOML, --set, config.json, Python), so an
    option is declared once and checked in one place. ``flags`` names the flags not spelled
    --NAME, for the errors."""

    flags: ClassVar[dict[str, str]] = {}

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            flag = self.flags.get(f.name, _flag(f.name))
            value = coerce(type(self), f.name, getattr(self, f.name), flag, built=True)
            object.__setattr__(self, f.name, value)


@dataclass(frozen=True)
class TrainConfig(Options):
    """Options shared by every model: data, budget, seed, device and precision."""

    data: str = option("", "data set name or npy:PATH, idx:DIR, images:DIR")
    test_data: str | None = option(None, "held-out data for a user's own --data")
    data_dir: str | None = option(None, "folder searched first for image data sets")
    data_memory: float | None = option(
        None,
        "GiB of examples (as float32) held in memory; a larger npy or plain IDX file is read "
        "from disk a chunk or batch at a time, and larger gzip'd IDX or image files are "
        "refused before they are decoded (default: half the memory available)",
        above=0,
    )
    binarize: str = option(
        "auto",
        "binarize images for Bernoulli likelihoods (auto: dynamic when the model's likelihood "
        "is bernoulli, else none)",
        ("auto", "none", "dynamic", "static"),
    )
    epochs: int | None = option(None, "passes over the training data", at_least=1)
    steps: int | None = option(None, "optimisation steps (EM iterations for gmm)", at_least=1)
    minutes: float | None = option(None, "stop after this much wall-clock training time", above=0)
    batch_size: int = option(128, "examples per step", at_least=1)
    seed: int = option(0, "seed for weights, data order and sampling")
    device: str = option("auto", "where to train", ("auto", "cpu", "cuda"))
    precision: str = option(
        "fp32", "training precision (bf16: autocast; likelihoods stay fp32)", ("fp32", "bf16")
    )
    compile: bool = option(
        False,
        "torch.compile each phase's loss and update; CUDA graphs on a GPU (off: no faster on "
        "CPU, docs/benchmarks.md)",
    )
    log_every: int = option(50, "steps between metrics.jsonl rows", at_least=1)
    checkpoint_every: int = option(
        1000, "steps (EM iterations for gmm) between checkpoints/last.*", at_least=1
    )
    lr_schedule: str = option(
        "constant",
        "learning rate over the run: constant, or cosine (from the model's --lr down to 0 at "
        "the last step of --epochs/--steps)",
        ("constant", "cosine"),
    )
    validation: int = option(
        0,
        "hold out this many training examples; at every checkpoint score them (vae: the ELBO; "
        "flow: the exact log-likelihood) and keep the best weights as the run's model (0 = off)",
        at_least=0,
    )
    patience: int | None = option(
        None,
        "with --validation: stop after this many checkpoints without a better score",
        at_least=1,
    )
    tensorboard: bool = option(False, "also log to RUN/tensorboard (needs the tensorboard package)")
    dist_timeout: float = option(
        600.0,
        "under torchrun: seconds a process waits for the others at a collective before it stops "
        "with an error (a frozen or lost peer)",
        above=0,
        below=1e6,
    )
    nan_policy: str = option(
        "stop",
        "a non-finite loss: stop (one-line error; the last good checkpoint stays) or skip the step",
        ("stop", "skip"),
    )
    snapshots: int | None = option(
        None,
        "frames of training saved in RUN/snapshots/ for `pushforward explore` (default: 40 on "
        "2-D points, 16 on images; 0 = off)",
        at_least=0,
        at_most=200,
    )
    recipe: str | None = option(
        None, "start from a shipped recipe's options (listed below); yours override them"
    )
    resume: bool = option(
        False, "continue the run in --out from checkpoints/last.* (same options as its start)"
    )


def _field_type(cls: type, f: dataclasses.Field[Any]) -> tuple[type, bool]:
    """(base type, optional?) of a field annotated like ``int`` or ``int | None``."""
    hint = _hints(cls)[f.name]
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        base = next(a for a in args if a is not type(None))
        return base, True
    return hint, False


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """A dataclass's field types, evaluated once per class (every build types every field)."""
    return typing.get_type_hints(cls)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


_INVALID = object()
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def _typed(base: type, value: Any) -> Any:
    """``value`` as the scalar type ``base``, from that type or a string spelling it (flags and
    --set give strings); anything else (a list, a table, a date, a bool for a number) is
    ``_INVALID``, so every source of options is typed the same way."""
    if base is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
        return _INVALID
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return _INVALID
    if base is str:
        return value if isinstance(value, str) else _INVALID
    try:
        if base is int:
            if isinstance(value, float) and not value.is_integer():
                return _INVALID
            return int(value)
        return float(value)
    except (ValueError, OverflowError):  # "abc", or int(float("inf"))
        return _INVALID


def _described(value: Any) -> str:
    """A non-scalar value named by its type, shortened: a user's table may be large."""
    text = repr(value)
    return (
        f"{text[:40]}... ({type(value).__name__})"
        if len(text) > 40
        else f"{text} ({type(value).__name__})"
    )


def coerce(cls: type, name: str, value: Any, source: str, built: bool = False) -> Any:
    """Check and convert one value for field ``name`` of ``cls``; ``source`` names it in errors
    (``built``: the flag of a value given when the dataclass was built, in Python say)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    f = fields[name]
    base, optional = _field_type(cls, f)
    value_in = value
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null")):
        if optional:
            return None
        raise PushforwardError(f"{source}: {name} cannot be empty; give {_KIND[base]}")
    value = _typed(base, value)
    if value is _INVALID:
        shown = repr(value_in) if isinstance(value_in, (str, int, float)) else _described(value_in)
        raise PushforwardError(f"{source}: {name}={shown} is not valid; give {_KIND[base]}")
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise PushforwardError(f"{source}: {name}={value!r} is not one of {', '.join(choices)}")
    why = out_of_bounds(f, value)
    if why and built:
        raise PushforwardError(f"{source} {value}: {why}")
    if why:
        raise PushforwardError(f"{source}: {name}={value!r} {why}")
    return value


def add_flags(
    parser: argparse.ArgumentParser,
    cls: type,
    only: tuple[str, ...] | None = None,
    spelled: dict[str, str] | None = None,
) -> None:
    """One flag per field (of those named in ``only``; ``spelled`` gives the flags not spelled
    --NAME); defaults are suppressed so we can tell what the user actually gave."""
    for f in dataclasses.fields(cls):
        if only is not None and f.name not in only:
            continue
        base, _ = _field_type(cls, f)
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": _help(f)}
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = str
            choices = f.metadata.get("choices")
            kwargs["metavar"] = "{" + ",".join(choices) + "}" if choices else f.name.upper()
        parser.add_argument((spelled or {}).get(f.name, _flag(f.name)), dest=f.name, **kwargs)


def _help(f: dataclasses.Field[Any]) -> str:
    """The field's help with its default, as --help shows it ("%" escaped for argparse)."""
    text = f.metadata.get("help") or ""
    if f.default is not None and f.default != "":
        default = (
            str(f.default).lower()
            if isinstance(f.default, bool)
            else f"{f.default:g}"
            if isinstance(f.default, float)
            else f.default
        )
        text = f"{text} [default: {default}]"
    return text.replace("%", "%%")


def field_names(*classes: type) -> list[str]:
    return [f.name for cls in classes for f in dataclasses.fields(cls)]


def build(cls: type[T], values: dict[str, Any], source: str) -> T:
    """Instantiate ``cls`` from (possibly string) values, rejecting unknown keys by name."""
    if not isinstance(values, dict):
        raise PushforwardError(
            f"{source}: expected a table of options, found {type(values).__name__}; restore it"
        )
    known = set(field_names(cls))
    unknown = sorted(set(values) - known)
    if unknown:
        raise PushforwardError(
            f"{source}: unknown option {unknown[0]!r}; valid options: {', '.join(sorted(known))}"
        )
    return cls(**{k: coerce(cls, k, v, source) for k, v in values.items()})


def read_toml(path: str) -> dict[str, Any]:
    try:
        data = tomllib.loads(read_file(Path(path), "give --config a TOML file", 1 << 20).decode())
    except FileNotFoundError:
        raise PushforwardError(f"--config {path}: file not found; check the path") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise PushforwardError(f"--config {path}: not valid TOML ({e}); fix the file") from None
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("train", "model") and isinstance(value, dict):  # tables for readability
            flat.update(value)
        else:
            flat[key] = value
    return flat


def parse_set(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise PushforwardError(f"--set {item!r}: expected key=value, e.g. --set seed=1")
        out[key.strip().replace("-", "_")] = value.strip()
    return out


def resolve(
    classes: tuple[type, ...],
    given: dict[str, Any],
    toml_path: str | None,
    sets: list[str],
    under: tuple[dict[str, Any], str] = ({}, ""),
) -> tuple[Any, ...]:
    """Merge TOML, flags and ``--set`` over the defaults of each dataclass in ``classes``, and
    over ``under`` (a recipe's options and the name its errors give) when there is one."""
    merged: dict[str, tuple[Any, str]] = {k: (v, under[1]) for k, v in under[0].items()}
    if toml_path:
        for k, v in read_toml(toml_path).items():
            merged[k] = (v, f"--config {toml_path}")
    for k, v in given.items():
        merged[k] = (v, _flag(k))
    for k, v in parse_set(sets).items():
        merged[k] = (v, f"--set {k}")
    valid = field_names(*classes)
    for k, (_, source) in merged.items():
        if k not in valid:
            raise PushforwardError(
                f"{source}: unknown option {k!r}; valid options: {', '.join(sorted(valid))}"
            )
    out = []
    for cls in classes:
        names = set(field_names(cls))
        kwargs = {k: coerce(cls, k, v, src) for k, (v, src) in merged.items() if k in names}
        out.append(cls(**kwargs))
    return tuple(out)


def as_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def whole_number(lo: int, hi: int = INT_LIMIT) -> Callable[[str], int]:
    """An argparse type: a whole number in [lo, hi] (past int32, torch and numpy overflow)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} must be between {lo:,} and {hi:,}")
        return value

    return parse
