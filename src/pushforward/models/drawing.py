"""How a model shows itself in ``pushforward explore``: the vocabulary its frames are made of.

A model draws itself through three methods of the contract (models/base.py): ``frame_setup``
(inputs fixed for the whole run, and what the page needs to know about them), ``frame`` (what
the model does to those inputs at one step, as named tensors) and ``panels`` (how to draw them:
titles, captions and layers). A layer names a tensor of the frame or of the fixed inputs and
one of the few ways to draw it below; the explorer page (explore/explorer.js) and the GIF
(explore/gif.py) draw every layer kind the same way and know no model by name, so a new model
that uses these kinds is drawn without touching either.

Besides the vocabulary, the pieces more than one model draws: a grid of the plane, straight
lines of the base space, and the latent plane of a model with an encoder and a prior.

May import torch, the data types and the model contract; imported by the models and by
training/frames.py, which takes and writes the frames.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .priors import Prior, StandardNormal, encoder_means, log_aggregate_posterior

LINES, LINE_POINTS, POINTS, RES, IMAGES = 17, 48, 1000, 64, 64
Z_EXTENT = 3.0  # the base space and the latent plane are drawn over [-3, 3]^2


class PlaneFrames:
    """The base of a model's drawing mixin (the VAE's, the GAN's) that draws its base plane, the
    first two coordinates of z: what it uses of the model it is mixed into."""

    config: Any  # with latent_dim
    classes: int  # a conditional model's class count, else 0
    device: torch.device
    generate: Callable[..., torch.Tensor]
    draw_labels: Callable[..., torch.Tensor | None]

    def frame_refusal(self, data: Any) -> str | None:
        if data.kind == "points" and self.config.latent_dim < 2:
            return (
                "the explorer draws the plane of z's first two coordinates, and --latent-dim is 1"
            )
        return None


@dataclass(frozen=True)
class FrameView:
    """What a model's frames may look at, fixed for the whole run."""

    kind: str  # "points" or "images"
    shape: tuple[int, ...]  # one example's shape
    extent: tuple[float, float, float, float] | None  # the data plane drawn (2-D points)
    encoded: torch.Tensor  # [POINTS, *shape] held-out examples, as the model trains on them
    seed: int  # the frames' own seed, apart from training's random numbers
    labels: torch.Tensor | None = None  # [POINTS] their labels, where the data has them


def plane(extent: tuple[float, float, float, float], res: int = RES) -> torch.Tensor:
    """Cell centres of a res x res grid over (x0, x1, y0, y1), row by row from the top: [res^2, 2]."""
    x0, x1, y0, y1 = extent
    xs = x0 + (torch.arange(res) + 0.5) * (x1 - x0) / res
    ys = y1 - (torch.arange(res) + 0.5) * (y1 - y0) / res
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)


def z_lines(dim: int, extent: float) -> torch.Tensor:
    """LINES vertical and LINES horizontal lines of the z-plane, in its first two coordinates
    (the others 0): [2 * LINES, LINE_POINTS, dim]."""
    at = torch.linspace(-extent, extent, LINES)
    along = torch.linspace(-extent, extent, LINE_POINTS)
    z = torch.zeros(2 * LINES, LINE_POINTS, dim)
    z[:LINES, :, 0], z[:LINES, :, 1] = at[:, None], along[None, :]
    z[LINES:, :, 0], z[LINES:, :, 1] = along[None, :], at[:, None]
    return z


def to_bytes(images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] as uint8, a quarter of float32's size: [N, C, H, W]."""
    return (images.float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()


def log_map(values: torch.Tensor) -> torch.Tensor:
    """A log density over the RES x RES grid as a frame holds it: float32, -inf floored."""
    return values.float().cpu().clamp(min=-1e4).reshape(RES, RES)


def latent_side(shape: tuple[int, ...]) -> int:
    """Decoded images per side of the latent-plane grid: 16, fewer for large images."""
    return max(6, min(16, int(math.sqrt((200 << 10) / math.prod(shape)))))


# ---------------------------------------------------------------- the panels' vocabulary
# A panel: {"title", "caption", "space": "data" | "z" | "images", "legend": None or
# [ramp, low label, high label], "layers": [...]}. Colours: "#rrggbb" (with "alpha"),
# {"hue": NAME} (each point coloured by where it sits in the base plane NAME [n, 2]) or
# {"class": NAME} (by the class in NAME [n]: a conditional model's asked class, a data point's).


DENSITY_LEGEND = ("density", "low", "high density")


def panel(
    title: str,
    caption: str,
    space: str,
    layers: list[dict[str, Any]],
    legend: tuple[str, str, str] | None = None,
) -> dict[str, Any]:
    """One panel; ``legend`` is (the ramp its map uses, "density" or "critic", the label of
    its low end, of its high end)."""
    return {"title": title, "caption": caption, "space": space, "legend": legend, "layers": layers}


def density(of: str) -> dict[str, Any]:
    """exp(log density) [RES, RES] scaled to its maximum, on the blue ramp (white if absent)."""
    return {"draw": "density", "of": of}


def critic(of: str, probability: bool) -> dict[str, Any]:
    """A discriminator's logits [RES, RES], as probabilities or, for a critic, scores."""
    return {"draw": "critic", "of": of, "scale": "sigmoid" if probability else "symmetric"}


def holes(of: str) -> dict[str, Any]:
    """Cells [RES, RES] marked 1 drawn in translucent red."""
    return {"draw": "holes", "of": of}


def lines(of: str) -> dict[str, Any]:
    """Polylines [n, m, >= 2] (their first two coordinates) in thin grey."""
    return {"draw": "lines", "of": of}


def dots(of: str, colour: str | dict[str, str], size: float = 1.6, alpha: float = 1.0) -> Any:
    """Points [n, 2]."""
    return {"draw": "points", "of": of, "colour": colour, "size": size, "alpha": alpha}


def ellipses(weights: str, means: str, covariances: str) -> dict[str, Any]:
    """The 1- and 2-sigma ellipses of 2-D Gaussians [K], [K, 2], [K, 2, 2], thicker by weight."""
    return {"draw": "ellipses", "weights": weights, "means": means, "covariances": covariances}


def images(of: str, columns: int = 8) -> dict[str, Any]:
    """uint8 images [n, C, H, W] in a grid of ``columns`` columns."""
    return {"draw": "images", "of": of, "columns": columns}


def decoder(of: str) -> dict[str, Any]:
    """Makes a "z" panel interactive: hovering shows the image of ``of`` [side^2, C, H, W]
    (decoded at the cell centres of the plane) under the pointer; two clicks, the path."""
    return {"draw": "decoder", "of": of}


def sample_panels(
    kind: str, show_truth: bool = True, columns: int | None = None
) -> list[dict[str, Any]]:
    """The panels every model gets: its samples (over the true density, for points), and the
    data beside them (for images); ``columns`` (a conditional model): one row per class."""
    if kind == "images":
        by_class = " One row per class." if columns else ""
        return [
            panel(
                "Data",
                "Held-out images, for comparison." + by_class,
                "images",
                [images("real", columns or 8)],
            ),
            panel(
                "Samples from fixed z",
                "The model's samples from the same draws at every frame: watch them sharpen."
                + by_class,
                "images",
                [images("samples", columns or 8)],
            ),
        ]
    caption = "The model's samples from the same random numbers at every frame."
    layers = [density("true_log_density")] if show_truth else []
    return [
        panel(
            "Data space: samples",
            caption + " Background: the data's true density, where it is known.",
            "data",
            [*layers, dots("samples", "#ff7f0e")],
            DENSITY_LEGEND,
        )
    ]


# the shape each kind of layer draws (-1: any size; -2: at least 2)
_SHAPES: dict[str, tuple[int, ...]] = {
    **dict.fromkeys(("density", "critic", "holes"), (RES, RES)),
    **{"lines": (-1, -1, -2), "points": (-1, 2)},
    **dict.fromkeys(("images", "decoder"), (-1, -1, -1, -1)),
}


def _named(layer: dict[str, Any]) -> list[tuple[str, tuple[int, ...]]]:
    """The tensors a layer draws, each with the shape it needs."""
    if layer["draw"] == "ellipses":
        return [
            (layer["weights"], (-1,)),
            (layer["means"], (-1, 2)),
            (layer["covariances"], (-1, 2, 2)),
        ]
    out = [(layer["of"], _SHAPES[layer["draw"]])]
    colour = layer.get("colour")
    if isinstance(colour, dict):
        out += [(colour["hue"], (-1, 2))] if "hue" in colour else [(colour["class"], (-1,))]
    return out


def misfit(
    panels: list[dict[str, Any]], tensors: dict[str, torch.Tensor]
) -> tuple[str, str] | None:
    """The tensor of ``tensors`` (a frame's and the fixed inputs') the panels cannot draw and
    why: one they name that is missing (a missing density only draws white) or of another
    shape; else None."""
    for layer in (layer for p in panels for layer in p["layers"]):
        for name, want in _named(layer):
            t = tensors.get(name)
            if t is None and layer["draw"] == "density":
                continue
            if t is None:
                return name, f"holds no {name}, which the explorer draws"
            fits = t.dim() == len(want) and all(
                w == -1 or (w == -2 and n >= 2) or w == n
                for w, n in zip(want, t.shape, strict=True)
            )
            if not fits or (len(want) == 4 and t.dtype != torch.uint8):
                shown = tuple("n" if w == -1 else ">=2" if w == -2 else w for w in want)
                return name, f"{name} {tuple(t.shape)} is not the {shown} tensor the explorer draws"
        parts = ("weights", "means", "covariances")
        if layer["draw"] == "ellipses" and len({len(tensors[layer[k]]) for k in parts}) != 1:
            return layer["means"], "its mixture's weights, means and covariances differ in number"
    return None


# ---------------------------------------------------------------- the latent plane


def _log_prior(prior: Prior, z2: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
    """log p of points z2 [n, 2] of the plane: the prior itself for a 2-d z, its marginal on
    the first two coordinates otherwise (exact for N(0, I), else a kernel estimate from
    ``draws`` [m, 2], the first two coordinates of the prior's own draws)."""
    if prior.latent_dim == 2:
        params = list(prior.parameters())
        dev = params[0].device if params else z2.device
        return prior.log_prob(z2.to(dev, torch.float32)).double().cpu()
    if isinstance(prior, StandardNormal):
        return -0.5 * z2.pow(2).sum(1) - math.log(2 * math.pi)
    return log_aggregate_posterior(z2, draws, torch.full_like(draws, math.log(0.05)))


def latent_plane(
    encode: Callable[..., tuple[torch.Tensor, torch.Tensor]],
    prior: Prior,
    encoded: torch.Tensor,
    g: torch.Generator,
    labels: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The plane of z's first two coordinates at this step under ``encode`` (x -> (mu, logvar))
    and ``prior``: the encoder's means of the fixed
    held-out examples (``enc_mu`` [n, 2]), the prior (``log_p``) and the aggregate posterior
    (``log_q``) over the RES x RES grid, and the holes between them (``holes``): where the
    prior puts its mass (as much as at 99% of its own draws) and the aggregate posterior is
    thinner than at 99% of its own samples, as eval's prior_holes counts them. A conditional
    encoder is given the examples' ``labels``."""
    mu, logvar = encoder_means(encode, encoded, labels=labels)
    mu, logvar = mu[:, :2], logvar[:, :2]
    grid = plane((-Z_EXTENT, Z_EXTENT, -Z_EXTENT, Z_EXTENT)).double()
    log_q = log_aggregate_posterior(grid, mu, logvar)
    own = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=g, dtype=mu.dtype)
    floor = torch.quantile(log_aggregate_posterior(own, mu, logvar), 0.01)
    draws = prior.sample(2000, g).double()[:, :2].cpu()  # [2000, 2]
    log_p = _log_prior(prior, grid, draws)
    drawn = _log_prior(prior, draws, draws)
    hole = (log_q < floor) & (log_p > torch.quantile(drawn, 0.01))
    return {
        "enc_mu": mu.float(),
        "log_q": log_map(log_q),
        "log_p": log_map(log_p),
        "holes": hole.to(torch.uint8).reshape(RES, RES),
    }


def latent_panel(interactive: bool) -> dict[str, Any]:
    """The latent plane drawn: the prior, the holes, the encoder's means by class."""
    what = "held-out images" if interactive else "held-out points"
    caption = (
        f"Background: the prior p(z). Dots: the encoder's means of {what}, coloured by class "
        "(the mode of a mode set). Red: holes, where the prior puts mass and the encoder "
        "sends no data; decoding there gives samples off the data."
    )
    layers = [density("log_p"), holes("holes"), dots("enc_mu", {"class": "labels"}, 1.4)]
    title = "Latent plane: prior, encoder means, holes"
    if interactive:
        title = "Latent plane: hover to decode, click two points"
        caption += " Hover to see the decoder's image there; click two points for the path."
        layers.append(decoder("latent_images"))
    return panel(title, caption, "z", layers, DENSITY_LEGEND)
