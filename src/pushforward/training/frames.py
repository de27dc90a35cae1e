"""Frames of training for ``pushforward explore``: at N steps spread over a run (EM iterations
for the GMM), what the model does to inputs fixed for the whole run, so frames compare.

RUN/snapshots/inputs.safetensors holds the fixed inputs, and in its header what the frames show;
RUN/snapshots/step-0000123.safetensors holds one frame (its step and seconds in the header).
Every file is written atomically with its checksum. Frames never touch the training's random
numbers or its batch-norm statistics, so a resumed run, which drops the frames past its
checkpoint and takes them again, ends with the same frames as an uninterrupted one.

May import, of this package: data, dist, errors, files, models, models/drawing, plots,
run_folder.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from .. import dist
from ..data import Dataset
from ..errors import PushforwardError
from ..files import load_tensors_and_metadata, save_tensors
from ..models import Model
from ..models.conditional import class_rows
from ..models.drawing import (
    IMAGES,
    LINE_POINTS,
    LINES,
    POINTS,
    RES,
    Z_EXTENT,
    FrameView,
    misfit,
    plane,
    to_bytes,
)
from ..plots import data_limits
from ..run_folder import INPUTS, SNAPSHOTS

DEFAULT_COUNT = {"points": 40, "images": 16}
BYTES_LIMIT = 4 << 20  # every frame of a run together, whatever the length of training


def frame_name(step: int) -> str:
    return f"step-{step:07d}.safetensors"


def resolve_count(asked: int | None, model: Model, data: Dataset) -> int:
    """How many frames a run keeps: --snapshots, or the default of its kind of data; fewer for
    images when their frames would pass BYTES_LIMIT. Refused (exit 2) where the explorer draws
    nothing: points of other than 2 dimensions, or what the model says it cannot draw."""
    why = None
    if data.kind == "points" and data.dim != 2:
        why = f"the explorer draws 2-D points and images, and {data.name} has {data.dim}-d points"
    else:
        why = model.frame_refusal(data)
    if asked is None:
        asked = 0 if why else DEFAULT_COUNT[data.kind]
    if asked and why:
        raise PushforwardError(f"--snapshots {asked}: {why}; give --snapshots 0")
    if asked:
        asked = min(asked, max(2, BYTES_LIMIT // _frame_bytes(model, data)))
    return asked


def _frame_bytes(model: Model, data: Dataset) -> int:
    """An upper bound on one frame's size: three RES x RES maps, four sets of POINTS points,
    the decoded grid lines (the largest, the VAE's latent plane) plus its images."""
    maps = 3 * 4 * RES * RES + 4 * 8 * POINTS + 2 * LINES * LINE_POINTS * 8
    if data.kind == "points":
        return maps
    return (IMAGES + model.frame_images(data)) * math.prod(data.shape) + maps


@contextlib.contextmanager
def _evaluating(model: Model) -> Iterator[None]:
    """Eval mode (batch norm reads its running statistics and updates none of them) and no
    gradients; every module's own mode is restored afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, was in modes:
            m.train(was)


def _by_class(data: Dataset, rows: torch.Tensor) -> torch.Tensor:
    """Held-out images in the rows of a conditional model's samples: for each label in ``rows``
    [n], the next example of that class (a blank where a class has run out)."""
    x, y = (
        (data.test, data.test_labels) if data.test is not None else (data.train, data.train_labels)
    )
    out = torch.zeros(len(rows), *x.shape[1:])
    if y is None:
        return out
    taken: dict[int, int] = {}
    for i, c in enumerate(rows.tolist()):
        mine = (y == c).nonzero().flatten()
        j = taken.get(c, 0)
        if j < len(mine):
            out[i] = x[mine[j]]
        taken[c] = j + 1
    return out


def _labels(data: Dataset, x: torch.Tensor) -> torch.Tensor:
    """A colour class per shown example (the first of its split): its label (a mode set's
    points are labelled with their mode), or -1."""
    labels = data.test_labels if data.test is not None else data.train_labels
    if labels is not None:
        return labels[: len(x)].long()
    return torch.full((len(x),), -1, dtype=torch.long)


class Snapshots:
    """Takes and writes a run's frames (rank 0 only; a count of 0 takes none). ``begin`` plans
    them over the budget; ``maybe`` takes one when due; ``finish`` takes the last."""

    def __init__(
        self, folder: Path, model: Model, raw: Dataset, data: Dataset, count: int, seed: int
    ):
        self.folder, self.model, self.count = folder, model, count if dist.is_main() else 0
        self.seed = seed + 7919  # the fixed inputs' own generator, apart from training's
        self.due: list[float] = []
        self.by_seconds, self.last = False, -1
        if not self.count:
            return
        shown = raw.test if raw.test is not None else raw.train
        encoded = data.test if data.test is not None else data.train  # as the encoder saw data
        self.info: dict[str, Any] = {"kind": data.kind, "data": data.name, "count": count}
        self.info["z_extent"] = Z_EXTENT
        self.inputs: dict[str, torch.Tensor] = {"labels": _labels(raw, shown[:POINTS].cpu())}
        extent = None
        if data.kind == "points":
            extent = data_limits(raw.train[:20000].cpu())
            self.info["extent"] = list(extent)
            self.inputs["points"] = shown[:POINTS].cpu()
            if raw.log_prob is not None:
                log_p = raw.log_prob(plane(extent)).float().clamp(min=-1e4)
                self.inputs["true_log_density"] = log_p.reshape(RES, RES)
        else:
            self.inputs["real"] = to_bytes(shown[:IMAGES])
            if model.classes:  # one row per class: the model's samples, and data beside them
                self.rows, self.info["columns"], _ = class_rows(model.trained_classes(), IMAGES)
                self.inputs["real"] = to_bytes(_by_class(raw, self.rows))
        labels = data.test_labels if data.test is not None else data.train_labels
        labels = None if labels is None else labels[:POINTS]
        self.view = FrameView(data.kind, data.shape, extent, encoded[:POINTS], self.seed, labels)
        info, inputs = model.frame_setup(self.view)
        self.info.update(info)
        self.inputs.update(inputs)

    @classmethod
    def none(cls) -> Snapshots:
        """Takes no frames (training called from Python without a run folder's snapshots)."""
        self = cls.__new__(cls)
        self.count, self.due, self.last, self.by_seconds = 0, [], -1, False
        return self

    # ------------------------------------------------------------------ when

    def begin(
        self,
        total: int | None,
        minutes: float | None,
        step: int,
        seconds: float,
        first: bool = True,
    ) -> None:
        """Plan the frames over ``total`` steps (or ``minutes``, when the clock ends the run),
        denser early, where training changes most; write the inputs; drop the frames past
        ``step`` and ``seconds`` (a resumed run's checkpoint: they are taken again) and take
        frame 0 of a new run (unless not ``first``: EM takes it once its start is set)."""
        if not self.count:
            return
        n, self.by_seconds = self.count, total is None
        span = 60 * (minutes or 0.0) if total is None else total
        due = {span * (i / (n - 1)) ** 2 for i in range(1, n)} if n > 1 else set()
        if not self.by_seconds:
            due = {float(max(1, round(s))) for s in due}
        self.due = sorted(s for s in due if s > (seconds if self.by_seconds else step))
        self.folder.mkdir(parents=True, exist_ok=True)
        kept = {k: v for k, v in self.inputs.items() if not k.startswith("_")}
        save_tensors(self.folder / INPUTS, kept, {"info": json.dumps(self.info)})
        for f in self.folder.glob("step-*.safetensors"):
            if not f.name[5:12].isdigit() or int(f.name[5:12]) > step:
                f.unlink()
        self.last = step
        if step == 0 and first:
            self.take(0, 0.0)

    def maybe(self, step: int, seconds: float) -> None:
        """Take a frame if this step (or, by the clock, this time) is due."""
        if not self.count or not self.due:
            return
        now = seconds if self.by_seconds else step
        if now >= self.due[0]:
            while self.due and now >= self.due[0]:
                self.due.pop(0)
            self.take(step, seconds)

    def finish(self, step: int, seconds: float) -> None:
        """The last step's frame, whenever the run ended (early stop, the clock, convergence)."""
        if self.count and step != self.last:
            self.take(step, seconds)

    # ------------------------------------------------------------------ what

    def take(self, step: int, seconds: float) -> None:
        if not self.count:
            return
        with _evaluating(self.model):
            frame = self.frame()
        meta = {"step": str(step), "seconds": f"{seconds:.3f}"}
        save_tensors(self.folder / frame_name(step), frame, meta)
        self.last = step

    def frame(self) -> dict[str, torch.Tensor]:
        """The frame of the model as it is now (eval mode, no gradients)."""
        m, g = self.model, torch.Generator().manual_seed(self.seed + 1)
        out: dict[str, torch.Tensor] = {}
        if self.view.kind == "images" and m.classes:  # a row per class
            out["samples"] = to_bytes(m.sample(len(self.rows), g, self.rows))
        elif self.view.kind == "images":
            out["samples"] = to_bytes(m.sample(IMAGES, g))
        out.update(m.frame(self.view, self.inputs, g))
        return out


def _valid_info(info: Any) -> bool:
    """The header of inputs.safetensors, as this version writes it."""
    if not isinstance(info, dict) or info.get("kind") not in DEFAULT_COUNT:
        return False
    number = lambda v: isinstance(v, (int, float)) and math.isfinite(v)  # noqa: E731
    extent = info.get("extent")
    return (
        isinstance(info.get("data"), str)
        and number(info.get("z_extent"))
        and (info["kind"] == "images" or (isinstance(extent, list) and len(extent) == 4))
        and all(number(v) for v in extent or [])
    )


def _same_tensors(path: Path, frame: dict[str, Any], first: dict[str, Any]) -> None:
    """Refuse a frame whose tensors differ in name or shape from the first frame's."""
    shape = lambda f: {k: tuple(v.shape) for k, v in f.items() if torch.is_tensor(v)}  # noqa: E731
    mine, theirs = shape(frame), shape(first)
    for name in sorted(set(mine) | set(theirs)):
        if mine.get(name) != theirs.get(name):
            raise PushforwardError(
                f"{path}: {name} {mine.get(name, 'missing')} is not as in the run's other frames "
                f"({theirs.get(name, 'missing')}): not a frame of the same run; delete it"
            )


def read_snapshots(
    run: Path, panels: Callable[[dict[str, Any]], list[dict[str, Any]]] | None = None
) -> tuple[dict[str, Any], dict[str, torch.Tensor], list[dict[str, Any]]]:
    """(what the frames show, the fixed inputs, the frames in step order, each its tensors plus
    ``step`` and ``seconds``) of RUN/snapshots/, each file checked against its checksum; a
    frame whose tensors differ in name or shape from the others is refused, and so is one the
    model's ``panels`` (given what the frames show) cannot draw."""
    folder = run / SNAPSHOTS
    fix = "train the run with --snapshots N (on by default for 2-D points and images)"
    if not (folder / INPUTS).is_file():
        raise PushforwardError(f"{folder / INPUTS} not found: no snapshots to explore; {fix}")
    inputs, meta = load_tensors_and_metadata(folder / INPUTS)
    try:
        info = json.loads(meta.get("info", ""))
    except json.JSONDecodeError:
        info = None
    if not _valid_info(info):
        raise PushforwardError(
            f"{folder / INPUTS}: its header does not say what the frames show; {fix}"
        )
    drawn = panels(info) if panels else []
    files, frames = sorted(folder.glob("step-*.safetensors")), []
    for f in files:
        tensors, head = load_tensors_and_metadata(f)
        bad = misfit(drawn, {**inputs, **tensors})
        if bad:
            where = folder / INPUTS if bad[0] in inputs and bad[0] not in tensors else f
            raise PushforwardError(
                f"{where}: {bad[1]}; delete the snapshots folder, or train again"
            )
        try:
            tensors_meta = {"step": int(head["step"]), "seconds": float(head["seconds"])}
        except (KeyError, ValueError):
            tensors_meta = {"step": -1, "seconds": math.nan}
        if tensors_meta["step"] < 0 or not math.isfinite(tensors_meta["seconds"]):
            raise PushforwardError(f"{f}: its header has no step and finite seconds; delete it")
        frames.append({**tensors, **tensors_meta})
    if not frames:
        raise PushforwardError(f"{folder}: no frames (step-*.safetensors); {fix}")
    for f, frame in zip(files, frames, strict=True):
        _same_tensors(f, frame, frames[0])
    return info, inputs, frames
