"""The explorer's timeline as an animated GIF, for slides: each frame drawn with matplotlib the
way the page draws its main panels."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.patches import Ellipse
from PIL import Image

from ..errors import PushforwardError
from ..files import atomic_write_bytes, read_json
from ..plots import image_grid, plt
from ..runs import CONFIG
from ..training.frames import read_snapshots


def _density(ax: Any, log_d: torch.Tensor, extent: list[float], cmap: str = "Blues") -> None:
    d = (log_d - log_d.max()).exp().sqrt().numpy()
    ax.imshow(d, extent=extent, cmap=cmap, vmin=0, vmax=1, origin="upper")


def _frame(model: str, info: dict[str, Any], inputs: dict[str, torch.Tensor], f: dict) -> Any:
    """One frame's figure: the data space, and the critic, latent plane or mixture beside it."""
    images = info["kind"] == "images"
    fig, axes = plt.subplots(1, 1 if images else 2, figsize=(4 if images else 8, 4), squeeze=False)
    ax = axes[0]
    unit = "EM iteration" if model == "gmm" else "step"
    fig.suptitle(f"{model} on {info['data']}: {unit} {f['step']:,}")
    if images:
        ax[0].imshow(image_grid(f["samples"].float() / 255, 8), cmap="gray", vmin=0, vmax=255)
        ax[0].set_title("samples from fixed z")
    else:
        ext = info["extent"]
        truth = inputs.get("true_log_density")
        data_ax = ax[1] if model == "vae" else ax[0]
        if truth is not None:
            _density(data_ax, truth, ext)
        if "lines" in f:
            for line in f["lines"]:
                data_ax.plot(line[:, 0], line[:, 1], color="k", lw=0.4, alpha=0.35)
        if "samples" in f:
            data_ax.scatter(f["samples"][:, 0], f["samples"][:, 1], s=2, c="tab:orange")
        data_ax.set_title("data space")
        if model == "gan":
            p, top = torch.sigmoid(f["critic"]) - 0.5, 0.5  # the page's scale: 0 fake, 1 real
            if info.get("critic") != "probability":
                p, top = f["critic"], float(f["critic"].abs().max()) + 1e-9
            ax[1].imshow(p.numpy(), extent=ext, cmap="RdBu_r", origin="upper", vmin=-top, vmax=top)
            ax[1].set_title("discriminator D(x)")
        elif model == "vae":
            z = info["z_extent"]
            _density(ax[0], f["log_p"], [-z, z, -z, z], "Greys")
            h = np.ma.masked_where(f["holes"].numpy() == 0, f["holes"].numpy())
            ax[0].imshow(h, extent=[-z, z, -z, z], cmap="autumn", alpha=0.5, origin="upper")
            ax[0].scatter(
                f["enc_mu"][:, 0], f["enc_mu"][:, 1], s=2, c=inputs["labels"] % 10, cmap="tab10"
            )
            ax[0].set_title("latent plane (red: holes)")
        else:
            for k, (w, mu, cov) in enumerate(
                zip(f["weights"], f["means"], f["covariances"], strict=True)
            ):
                vals, vecs = torch.linalg.eigh(cov.double())
                angle = float(torch.atan2(vecs[1, 1], vecs[0, 1]).rad2deg())
                for s in (1, 2):
                    width, height = (2 * s * vals.clamp(min=0).sqrt()).flip(0).tolist()
                    e = Ellipse(
                        mu.tolist(),
                        width,
                        height,
                        angle=angle,
                        fill=False,
                        color=f"C{k % 10}",
                        lw=0.5 + 2 * float(w / f["weights"].max()),
                    )
                    ax[0].add_patch(e)
            ax[0].set_title("components")
            _density(ax[1], f["log_density"], ext)
            ax[1].set_title("the mixture's density")
        for a in [data_ax] + ([ax[0]] if model == "gmm" else []):
            a.set_xlim(ext[0], ext[1])
            a.set_ylim(ext[2], ext[3])
    for a in ax:
        a.set_xticks([])
        a.set_yticks([])
    return fig


def write_gif(run: str | Path, out: str | Path) -> Path:
    """Write ``run``'s frames as an animated GIF at ``out`` (4 frames a second, looping)."""
    run, out = Path(run), Path(out)
    if out.suffix.lower() != ".gif":
        raise PushforwardError(f"--gif {out}: name a FILE.gif")
    info, inputs, frames = read_snapshots(run)
    model = read_json(run / CONFIG).get("model")
    pictures = []
    for f in frames:
        fig = _frame(model, info, inputs, f)
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
