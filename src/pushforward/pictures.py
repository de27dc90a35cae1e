"""What ``pushforward sample`` draws, as a picture's images, its row length and its rows' names:
samples (one row per class for a conditional run), held-out examples beside their
reconstructions, and interpolations; and the file it is written to.

May import, of this package: files, models/conditional, plots, run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import plots
from .files import atomic_write_npy
from .models.conditional import class_rows
from .run import Run

PICTURE_IMAGES, PICTURE_POINTS = 64, 100_000  # the most a picture shows


@dataclass
class Picture:
    x: torch.Tensor  # [n, *shape] what is drawn, row by row
    kind: str  # "samples", "reconstructions" or "interpolations"
    nrow: int | None = None  # images per row (None: the plot's own layout)
    rows: list[str] = field(default_factory=list)  # each row's name

    @property
    def by_class(self) -> bool:
        return self.kind == "samples" and bool(self.rows)


def samples(
    run: Run,
    n: int,
    seed: int,
    sampler: str = "prior",
    components: int = 10,
    label: int | None = None,
    picture: bool = True,
    temperature: float = 1.0,
) -> Picture:
    """n samples (of class ``label``); a picture of a conditional run's images without a label
    shows one row per class instead."""
    if picture and run.model.classes and label is None and run.data.kind == "images":
        labels, per, names = class_rows(run.model.trained_classes(), n)
        return Picture(
            run.sample(len(labels), seed, sampler, components, labels, temperature),
            "samples",
            per,
            names,
        )
    return Picture(run.sample(n, seed, sampler, components, label, temperature), "samples")


def reconstructions(run: Run, n: int, seed: int) -> Picture:
    """Rows of up to 8 held-out examples, each followed by a row of their reconstructions."""
    orig, rec = run.reconstructions(n, seed)
    per = min(n, 8)
    x = torch.cat([torch.cat([orig[i : i + per], rec[i : i + per]]) for i in range(0, n, per)])
    return Picture(x, "reconstructions", per, ["data", "reconstruction"] * ((n + per - 1) // per))


def interpolations(run: Run, pairs: int, steps: int, seed: int) -> Picture:
    """A row of ``steps`` decoded points between each pair of held-out examples."""
    x = run.interpolations(pairs, steps, seed)
    return Picture(x, "interpolations", steps, [f"pair {i + 1}" for i in range(pairs)])


def write(
    run: Run,
    pic: Picture,
    out: Path | None,
    n: tuple[int, int],
    seed: int,
    label: int | None = None,
    temperature: float = 1.0,
) -> str:
    """Write ``pic`` to ``out`` (FILE.png: a picture; FILE.npy: the raw draws), by default a
    PNG in the run folder named by what was drawn; ``n`` is (asked, shown). Returns the line
    saying what was written."""
    asked, shown = n
    named = pic.kind if label is None else f"{pic.kind}-label{label}"
    named += "" if temperature == 1 else f"-t{temperature:g}"
    out = out or run.path / f"{named}-n{asked}-seed{seed}.png"
    if out.suffix == ".npy":
        atomic_write_npy(out, pic.x.numpy())
    else:
        ref = run.data.train[:20000].cpu()
        title = f"{run.model_name}: {pic.kind}"
        title += "" if temperature == 1 else f", temperature {temperature:g}"
        png = plots.samples_figure(pic.x, ref, title, run.data.log_prob, pic.nrow, pic.rows)
        plots.write(out, png)
    if pic.by_class:
        return f"wrote {out} ({len(pic.x)} samples: a row of {pic.nrow} for each class)"
    if pic.kind != "samples" or shown == asked:
        return f"wrote {out} ({asked} {pic.kind})"
    return (
        f"wrote {out} ({shown:,} of the {asked:,} samples: a picture shows at most that many; "
        "--out FILE.npy writes them all)"
    )
