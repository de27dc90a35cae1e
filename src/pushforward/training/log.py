"""What training records as it goes: the :class:`Meter` sums the numbers each phase returns on
the device between logging steps (the loop's only host sync is turning them into a row), the
:class:`Logger` appends that row to RUN/metrics.jsonl (and TensorBoard, when asked), and
``trim_history`` drops the rows a resumed run logs again.

May import the run folder's names and the model contract; imported by training/loop.py.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from .. import dist
from ..errors import PushforwardError
from ..files import append_jsonl, atomic_write_bytes, read_jsonl
from ..models import Model

_KEPT = "#kept"  # Meter: how many phases a number was summed over


class Meter:
    """Sums of the logged numbers kept on the device between logging steps, turned into one
    metrics.jsonl row (the loop's only host sync) by :meth:`row`."""

    def __init__(self, model: Model, skip_bad: bool, since: float) -> None:
        self.multi, self.skip_bad = len(model.phases) > 1, skip_bad
        self.last_phase = model.schedule[-1]
        self.sums: dict[str, Any] = {}
        self.steps = self.seen = 0
        self.since = since  # when the numbers summed began

    def add(self, phase: str, out: dict[str, torch.Tensor], bad: torch.Tensor, n: int) -> None:
        for k, v in out.items():
            key = f"{phase}_{k}" if self.multi else k
            v = v.detach().float()
            # a skipped step's numbers stay out of the averages; a phase run twice a step
            # (--d-steps 2) counts twice
            kept = (~bad).float() if self.skip_bad else torch.ones_like(v)
            if self.skip_bad:
                v = torch.where(bad, 0.0, v)
            self.sums[key + _KEPT] = self.sums[key + _KEPT] + kept if key in self.sums else kept
            self.sums[key] = self.sums[key] + v if key in self.sums else v
        self.sums["nonfinite"] = self.sums.get("nonfinite", 0) + bad.float()
        self.seen += n

    def row(self, **extra: Any) -> dict[str, Any]:
        """The means since the last row (over ranks too), ``extra`` and the throughput."""
        now = time.perf_counter()
        keys = list(self.sums)
        means = dist.mean_across(torch.stack([self.sums[k] for k in keys]) / self.steps)
        row: dict[str, Any] = dict(zip(keys, means.tolist(), strict=True))  # the host sync
        # the mean of each number over the phases that ran: none ran (all skipped) is null,
        # not 0.0
        kept = {k[: -len(_KEPT)]: row.pop(k) for k in keys if k.endswith(_KEPT)}
        row.update({k: row[k] / n if n > 0 else None for k, n in kept.items()})
        if self.multi:
            row["loss"] = row[f"{self.last_phase}_loss"]
        seen = self.seen * dist.world_size()
        row.update(extra, images_per_sec=round(seen / (now - self.since), 1))
        self.sums, self.steps, self.seen, self.since = {}, 0, 0, now
        return row


def trim_history(path: Path, step: int) -> None:
    """Rows logged after the checkpoint (or before a first one) are logged again on resume."""
    if dist.is_main() and path.exists():
        rows = [r for r in read_jsonl(path) if isinstance(r.get("step"), int) and r["step"] <= step]
        atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in rows).encode())


class Logger:
    """metrics.jsonl rows (and TensorBoard scalars when asked), from rank 0 only."""

    def __init__(self, path: Path, tensorboard: Path | None) -> None:
        self.path, self.writer = path, None
        if tensorboard is not None and dist.is_main():
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise PushforwardError(
                    "--tensorboard needs the tensorboard package: pip install tensorboard"
                ) from None
            self.writer = SummaryWriter(str(tensorboard))

    def __call__(self, row: dict[str, Any]) -> None:
        if not dist.is_main():
            return
        append_jsonl(self.path, row)
        if self.writer is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.writer.add_scalar(k, v, row["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
