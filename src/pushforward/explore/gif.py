"""The explorer's timeline as an animated GIF, for slides: each frame drawn with matplotlib the
way the page draws its main panels.

May import, of this package: errors, explore, files, plots, training/frames.
"""

from __future__ import annotations

import colorsys
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.patches import Ellipse
from PIL import Image

from ..errors import PushforwardError
from ..files import atomic_write_bytes
from ..plots import image_grid, plt
from ..training.frames import read_snapshots

Tensors = dict[str, torch.Tensor]


def _density(ax: Any, t: torch.Tensor | None, extent: list[float]) -> None:
    if t is not None:
        d = (t - t.max()).exp().sqrt().numpy()
        ax.imshow(d, extent=extent, cmap="Blues", vmin=0, vmax=1, origin="upper")


def _critic(ax: Any, t: torch.Tensor, extent: list[float], sigmoid: bool) -> None:
    p, top = torch.sigmoid(t) - 0.5, 0.5  # the page's scale: 0 fake, 1 real
    if not sigmoid:
        p, top = t, float(t.abs().max()) + 1e-9
    ax.imshow(p.numpy(), extent=extent, cmap="RdBu_r", origin="upper", vmin=-top, vmax=top)


def _colour(spec: Any, t: Tensors, alpha: float) -> Any:
    """A colour of the page's vocabulary as matplotlib takes it: one, or one per point."""
    if isinstance(spec, str):
        return [(*(int(spec[i : i + 2], 16) / 255 for i in (1, 3, 5)), alpha)]
    if "hue" in spec:
        z = t[spec["hue"]][:, :2].double()
        h = ((torch.atan2(z[:, 1], z[:, 0]) / (2 * math.pi)) + 1) % 1
        lightness = 0.25 + 0.4 * (z.norm(dim=1) / 3).clamp(max=1)
        return [
            colorsys.hls_to_rgb(float(a), float(b), 0.75) for a, b in zip(h, lightness, strict=True)
        ]
    return [plt.get_cmap("tab10")(int(c) % 10) if c >= 0 else "#333333" for c in t[spec["class"]]]


def _ellipses(ax: Any, w: torch.Tensor, means: torch.Tensor, covs: torch.Tensor) -> None:
    for k, (wk, mu, cov) in enumerate(zip(w, means, covs, strict=True)):
        vals, vecs = torch.linalg.eigh(cov.double())
        angle = float(torch.atan2(vecs[1, 1], vecs[0, 1]).rad2deg())
        for s in (1, 2):
            width, height = (2 * s * vals.clamp(min=0).sqrt()).flip(0).tolist()
            lw = 0.5 + 2 * float(wk / w.max())
            ax.add_patch(
                Ellipse(
                    mu.tolist(), width, height, angle=angle, fill=False, color=f"C{k % 10}", lw=lw
                )
            )


def _layer(ax: Any, layer: dict[str, Any], t: Tensors, extent: list[float]) -> None:
    """One layer of a panel (models/drawing.py), drawn as the page draws it."""
    kind = layer["draw"]
    if kind == "density":
        _density(ax, t.get(layer["of"]), extent)
    elif kind == "critic":
        _critic(ax, t[layer["of"]], extent, layer["scale"] == "sigmoid")
    elif kind == "holes":
        h = t[layer["of"]].numpy()
        ax.imshow(np.ma.masked_where(h == 0, h), extent=extent, cmap="autumn", alpha=0.5)
    elif kind == "lines":
        for line in t[layer["of"]]:
            ax.plot(line[:, 0], line[:, 1], color="k", lw=0.4, alpha=0.35)
    elif kind == "points":
        xy = t[layer["of"]]
        size = 2 * layer["size"] / 1.6
        ax.scatter(xy[:, 0], xy[:, 1], s=size, c=_colour(layer["colour"], t, layer["alpha"]))
    elif kind == "ellipses":
        _ellipses(ax, t[layer["weights"]], t[layer["means"]], t[layer["covariances"]])
    elif kind == "images":
        ax.imshow(image_grid(t[layer["of"]].float() / 255, 8), cmap="gray", vmin=0, vmax=255)


def _moves(panel: dict[str, Any], frame: Tensors) -> bool:
    """Whether a panel draws anything of the frame (the GIF leaves out the fixed ones)."""
    names = {v for layer in panel["layers"] for k, v in layer.items() if k in _NAMES}
    names |= {
        v
        for layer in panel["layers"]
        if isinstance(layer.get("colour"), dict)
        for v in layer["colour"].values()
    }
    return bool(names & set(frame)) and any(layer["draw"] != "decoder" for layer in panel["layers"])


_NAMES = ("of", "weights", "means", "covariances")


def _frame(
    name: str, unit: str, info: dict[str, Any], shown: list[dict[str, Any]], t: Tensors
) -> Any:
    """One frame's figure: the model's panels that change, side by side."""
    fig, axes = plt.subplots(1, len(shown), figsize=(4 * len(shown), 4), squeeze=False)
    fig.suptitle(f"{name} on {info['data']}: {unit} {int(t['step']):,}")
    z = float(info["z_extent"])
    for ax, panel in zip(axes[0], shown, strict=True):
        extent = (
            [-z, z, -z, z] if panel["space"] == "z" else list(info.get("extent") or [-z, z, -z, z])
        )
        for layer in panel["layers"]:
            _layer(ax, layer, t, extent)
        if panel["space"] != "images":
            ax.set_xlim(extent[0], extent[1])
            ax.set_ylim(extent[2], extent[3])
        ax.set_title(panel["title"], fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def write_gif(run: str | Path, out: str | Path) -> Path:
    """Write ``run``'s frames as an animated GIF at ``out`` (4 frames a second, looping)."""
    run, out = Path(run), Path(out)
    if out.suffix.lower() != ".gif":
        raise PushforwardError(f"--gif {out}: name a FILE.gif")
    from . import model_of

    name, cls = model_of(run)
    info, inputs, frames = read_snapshots(run, cls.panels)
    panels = cls.panels(info)
    shown = [p for p in panels if _moves(p, frames[0])] or panels[:1]
    pictures = []
    for f in frames:
        fig = _frame(name, cls.step_unit, info, shown, {**inputs, **f})
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=72)
        plt.close(fig)
        pictures.append(
            Image.open(io.BytesIO(buf.getvalue())).convert("P", palette=Image.Palette.ADAPTIVE)
        )
    buf = io.BytesIO()
    pictures[0].save(
        buf, format="GIF", save_all=True, append_images=pictures[1:], duration=250, loop=0
    )
    atomic_write_bytes(out, buf.getvalue())
    return out
