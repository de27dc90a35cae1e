"""Pure functions that turn tensors into figures. No model or training logic here.

May import, of this package: files.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import matplotlib

if "ipykernel" not in sys.modules:  # in a notebook the kernel's inline backend stays
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image

from .files import atomic_write_bytes

LogDensity = Callable[[torch.Tensor], torch.Tensor]  # [N, 2] -> [N]


def image_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile images [N, C, H, W] in [0, 1] into one uint8 array [H', W'] or [H', W', 3]."""
    n, c, h, w = images.shape
    nrow = nrow or int(np.ceil(np.sqrt(n)))
    ncol = int(np.ceil(n / nrow))
    grid = np.ones((c, ncol * (h + pad) + pad, nrow * (w + pad) + pad), dtype=np.float32)
    x = images.detach().float().clamp(0, 1).cpu().numpy()
    for i in range(n):
        r, q = divmod(i, nrow)
        grid[
            :,
            pad + r * (h + pad) : pad + r * (h + pad) + h,
            pad + q * (w + pad) : pad + q * (w + pad) + w,
        ] = x[i]
    out = (grid * 255).round().astype(np.uint8)
    return out[0] if c == 1 else out.transpose(1, 2, 0)


def png_bytes_of_grid(images: torch.Tensor, nrow: int | None = None, scale: int = 4) -> bytes:
    arr = image_grid(images, nrow)
    im = Image.fromarray(arr)
    im = im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def grid_figure(
    images: torch.Tensor, title: str, nrow: int | None = None, row_labels: Sequence[str] = ()
) -> bytes:
    """Images [N, C, H, W] in [0, 1] as a titled grid; ``row_labels`` name its rows (e.g.
    "data" and "reconstruction" in turn)."""
    arr = image_grid(images, nrow)
    h = images.shape[2] + 1
    rows = arr.shape[0] // h
    fig, ax = plt.subplots(figsize=(4.2, 4.2 * arr.shape[0] / arr.shape[1] + 0.4))
    ax.imshow(arr, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([h * (r + 0.5) for r in range(rows)][: len(row_labels)])
    ax.set_yticklabels(list(row_labels)[:rows], fontsize=8)
    ax.tick_params(length=0)
    return fig_bytes(fig)


def fig_bytes(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def data_limits(points: torch.Tensor) -> tuple[float, float, float, float]:
    lo = torch.quantile(points, 0.001, dim=0)
    hi = torch.quantile(points, 0.999, dim=0)
    span = (hi - lo).max().item() * 0.1 + 0.1
    return lo[0].item() - span, hi[0].item() + span, lo[1].item() - span, hi[1].item() + span


def _log_density_grid(
    log_prob: LogDensity, limits: tuple[float, float, float, float], n: int = 300
) -> torch.Tensor:
    """log_prob on an n x n grid over ``limits`` = (x0, x1, y0, y1), rows from the bottom: [n, n]."""
    x0, x1, y0, y1 = limits
    gx, gy = torch.meshgrid(torch.linspace(x0, x1, n), torch.linspace(y0, y1, n), indexing="xy")
    with torch.no_grad():  # a model's log_prob may be differentiable: the picture needs none
        logp = log_prob(torch.stack([gx.flatten(), gy.flatten()], 1).double()).float().cpu()
    return logp.reshape(n, n)


def draw_density(
    ax: plt.Axes, log_prob: LogDensity, limits: tuple[float, float, float, float], cmap: str
) -> None:
    """exp(log_prob) on a 300x300 grid over ``limits`` = (x0, x1, y0, y1)."""
    ax.imshow(
        _log_density_grid(log_prob, limits).exp().numpy(),
        extent=limits,
        origin="lower",
        cmap=cmap,
        aspect="auto",
    )


def scatter_bytes(
    samples: torch.Tensor,
    reference: torch.Tensor,
    title: str,
    density: LogDensity | None = None,
) -> bytes:
    """Samples [N, 2] as dots over the data: its density when known, else a histogram of it."""
    samples, reference = samples.detach().float().cpu(), reference.detach().float().cpu()
    x0, x1, y0, y1 = data_limits(reference)
    fig, ax = plt.subplots(figsize=(4, 4))
    if density is not None:
        draw_density(ax, density, (x0, x1, y0, y1), "Greys")
    else:
        ax.hist2d(
            reference[:, 0].numpy(),
            reference[:, 1].numpy(),
            bins=150,
            range=[[x0, x1], [y0, y1]],
            cmap="Greys",
        )
    ax.scatter(samples[:, 0], samples[:, 1], s=2, c="tab:red", alpha=0.5, linewidths=0)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_title(title)
    ax.set_aspect("equal")
    return fig_bytes(fig)


def density_bytes(log_prob: LogDensity, reference: torch.Tensor, title: str) -> bytes:
    """A model's log-density on a grid over the data's range (the 12 nats below its peak, where
    a density of sharp modes would be a black square with a few dots), with its colour scale."""
    limits = data_limits(reference.detach().float().cpu())
    logp = _log_density_grid(log_prob, limits)
    top = float(logp.max())
    fig, ax = plt.subplots(figsize=(4.6, 4))
    im = ax.imshow(
        logp.numpy(), extent=limits, origin="lower", cmap="viridis",
        vmin=top - 12, vmax=top, aspect="auto",
    )  # fmt: skip
    fig.colorbar(im, ax=ax, label="log p(x)")
    ax.set_title(title)
    ax.set_aspect("equal")
    return fig_bytes(fig)


def curve_bytes(
    steps: Sequence[float], series: Mapping[str, Sequence[float]], ylabel: str, title: str
) -> bytes:
    """Training curves: one line per named series against the step."""
    fig, ax = plt.subplots(figsize=(4, 3))
    for name, values in series.items():
        ax.plot(steps, values, marker="." if len(steps) < 50 else None, label=name)
    if len(series) > 1:
        ax.legend()
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return fig_bytes(fig)


def latent_bytes(z: torch.Tensor, labels: torch.Tensor | None, title: str) -> bytes:
    """Encoder means [N, d] as a scatter coloured by class; the top two principal components when
    d > 2, so any latent size can be looked at."""
    z = z.detach().float().cpu()
    axes = "z1", "z2"
    if z.shape[1] > 2:
        zc = z - z.mean(0)
        _, _, v = torch.linalg.svd(zc, full_matrices=False)
        z, axes = zc @ v[:2].T, ("PC 1", "PC 2")
    elif z.shape[1] == 1:
        z = torch.cat([z, torch.zeros_like(z)], 1)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    if labels is None:
        sc = ax.scatter(z[:, 0], z[:, 1], s=4, alpha=0.7, linewidths=0)
    else:
        c = labels.numpy()
        sc = ax.scatter(z[:, 0], z[:, 1], c=c, cmap="tab10", s=4, alpha=0.7, linewidths=0)
    if labels is not None:
        fig.colorbar(sc, ax=ax, ticks=range(int(labels.max()) + 1))
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    ax.set_title(title)
    return fig_bytes(fig)


def samples_figure(
    samples: torch.Tensor,
    reference: torch.Tensor,
    title: str,
    density: LogDensity | None = None,
    nrow: int | None = None,
    row_labels: Sequence[str] = (),
) -> bytes:
    """The picture of a model's samples: a scatter over the data (its first two coordinates) for
    points, an image grid for images."""
    if samples.dim() == 2:
        exact = density if samples.shape[1] == 2 else None
        return scatter_bytes(samples[:, :2], reference[:, :2], title, exact)
    if samples.dim() == 4:
        return grid_figure(samples if nrow else samples[:64], title, nrow, row_labels)
    raise ValueError(f"cannot draw samples of shape {tuple(samples.shape)}")


def write(path: str | Path, png: bytes) -> None:
    atomic_write_bytes(path, png)


# ------------------------------------------------------------------ the experiments' figures


def against_k(
    ks: Sequence[int], nll: Mapping[str, Sequence[float]], kl: Mapping[str, Sequence[float]]
) -> bytes:
    """Held-out NLL and KL(true || model) against the number of components, one line per set
    (KL only for sets with a known density), both on log-2 K axes."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, values in nll.items():
        axes[0].plot(ks, values, marker="o", label=name)
    for name, values in kl.items():
        axes[1].plot(ks, [max(v, 1e-4) for v in values], marker="o", label=name)
    for ax, title in zip(axes, ("held-out NLL (nats)", "KL(true || GMM) (nats)"), strict=True):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("components K")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[1].set_yscale("log")
    return fig_bytes(fig)


def density_table(
    rows: Mapping[str, tuple[torch.Tensor, Sequence[LogDensity]]], titles: Sequence[str]
) -> bytes:
    """One row per data set: a histogram of its points [N, 2], then one fitted density per
    column (titled by ``titles``)."""
    cols = len(titles) + 1
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.8 * cols, 1.8 * len(rows)), squeeze=False)
    for i, (name, (ref, densities)) in enumerate(rows.items()):
        x0, x1, y0, y1 = data_limits(ref)
        axes[i, 0].hist2d(
            ref[:, 0].numpy(), ref[:, 1].numpy(), bins=120, range=[[x0, x1], [y0, y1]], cmap="magma"
        )
        axes[i, 0].set_ylabel(name, fontsize=8)
        for j, log_prob in enumerate(densities):
            draw_density(axes[i, j + 1], log_prob, (x0, x1, y0, y1), "magma")
            if i == 0:
                axes[i, j + 1].set_title(titles[j], fontsize=8)
        if i == 0:
            axes[i, 0].set_title("data", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig_bytes(fig)


def scatter_table(
    refs: Mapping[str, torch.Tensor], columns: Sequence[str], samples: Mapping[str, torch.Tensor]
) -> bytes:
    """Rows of data sets (their points [N, 2] in grey), columns of models: the model's samples
    ``samples[f"{row}/{column}"]`` in red over its row's data."""
    fig, axes = plt.subplots(
        len(refs), len(columns), figsize=(2.6 * len(columns), 2.7 * len(refs)), squeeze=False
    )
    for i, (row, ref) in enumerate(refs.items()):
        x0, x1, y0, y1 = data_limits(ref)
        for j, column in enumerate(columns):
            ax, x = axes[i, j], samples[f"{row}/{column}"]
            ax.scatter(ref[:3000, 0], ref[:3000, 1], s=1, c="0.7", linewidths=0)
            ax.scatter(x[:, 0], x[:, 1], s=1, c="tab:red", alpha=0.5, linewidths=0)
            ax.set_xlim(x0, x1)
            ax.set_ylim(y0, y1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(column, fontsize=8)
    return fig_bytes(fig)


def image_panels(panels: Mapping[str, torch.Tensor], cols: int = 4) -> bytes:
    """Several models' samples [N, C, H, W] side by side, 36 each, titled by model."""
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, x) in zip(axes.flat, panels.items(), strict=False):
        ax.imshow(image_grid(x[:36], nrow=6), cmap="gray", vmin=0, vmax=255)
        ax.set_title(title, fontsize=8)
    return fig_bytes(fig)


def latents_over_priors(
    panels: Mapping[str, tuple[torch.Tensor, torch.Tensor | None, LogDensity]],
) -> bytes:
    """2-d codes [N, 2] (coloured by label) over their prior's log density, one panel per
    title: where the prior has mass and no codes are, its samples decode to something between
    the classes. Log-density bands down to e^-8 of the peak keep a peaked prior visible."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.6), squeeze=False)
    for ax, (title, (z, labels, log_prob)) in zip(axes[0], panels.items(), strict=True):
        lim = max(float(z.abs().quantile(0.995)) * 1.15, 3.0)
        g = torch.linspace(-lim, lim, 200)
        zz = torch.stack(torch.meshgrid(g, g, indexing="xy"), -1).reshape(-1, 2)
        with torch.no_grad():
            logp = log_prob(zz).reshape(200, 200)
        top = float(logp.max())
        ax.contourf(
            g, g, logp.clamp_min(top - 8), levels=torch.linspace(top - 8, top, 9), cmap="Greys"
        )
        c = None if labels is None else labels.numpy()
        ax.scatter(z[:, 0], z[:, 1], c=c, cmap="tab10", s=2, alpha=0.6, linewidths=0)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_title(title, fontsize=9)
    return fig_bytes(fig)


def against_dimension(
    dims: Sequence[int],
    series: Mapping[str, Mapping[str, Sequence[float]]],
    xlabel: str = "dimension (pixels)",
) -> bytes:
    """One panel per metric (``series``: metric -> model -> a value per dimension), a line per
    model against the data's dimension on a log axis."""
    fig, axes = plt.subplots(1, len(series), figsize=(5 * len(series), 4), squeeze=False)
    order = sorted(range(len(dims)), key=lambda i: dims[i])
    x = [dims[i] for i in order]
    for ax, (metric, models) in zip(axes[0], series.items(), strict=True):
        for model, values in models.items():
            style = "--" if model.startswith("gmm") else "-"
            ax.plot(x, [values[i] for i in order], style, marker="o", label=model)
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(x, [str(d) for d in x])
        ax.set_xlabel(xlabel)
        ax.set_title(metric + (" (lower is better)" if metric == "fd" else ""))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    if "fd" in series:
        axes[0][list(series).index("fd")].set_yscale("log")
    return fig_bytes(fig)
