"""How the VAE shows itself in the explorer and its GIF: on 2-D points the latent plane (the
encoder's codes, the prior and its holes) beside the decoder's map of straight z-lines into the
data space; on images with a 2-d z the whole latent plane decoded, cell by cell.

A mixin of models/vae.py's VAE, kept apart so that file stays one sitting's reading.

May import, of this package: data, models/conditional, models/drawing, models/priors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..data import Dataset
from . import conditional as cond
from . import drawing as dr
from .priors import Prior


class LatentFrames(dr.PlaneFrames):
    """The explorer's view of a model with an encoder, a prior and a decoder."""

    prior: Prior
    encode: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    decode_mean: Callable[..., torch.Tensor]

    def _hoverable(self, kind: str) -> bool:
        """Images with a 2-d z: the page decodes the whole latent plane, cell by cell (not for a
        conditional model, whose plane differs with each class)."""
        return kind == "images" and self.config.latent_dim == 2 and not self.classes

    def frame_images(self, data: Dataset) -> int:
        return dr.latent_side(data.shape) ** 2 if self._hoverable(data.kind) else 0

    def frame_setup(self, view: dr.FrameView) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        d = self.config.latent_dim
        if view.kind == "points":
            info = {"latent_dim": d, **({"classes": self.classes} if self.classes else {})}
            return info, {"z_lines": dr.z_lines(d, dr.Z_EXTENT)}
        return (
            {"latent_side": dr.latent_side(view.shape)} if self._hoverable(view.kind) else {}
        ), {}

    def frame(
        self, view: dr.FrameView, inputs: dict[str, torch.Tensor], generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """Points: the decoder's mean along the z-lines and samples from the prior; the latent
        plane (models/drawing.py) for points, and for images with a 2-d z, decoded there."""
        out: dict[str, torch.Tensor] = {}
        if view.kind == "points":
            lines = inputs["z_lines"]
            z = self.prior.sample(dr.POINTS, generator).float()
            y = self.draw_labels(dr.POINTS, None, generator)
            out["prior_z"] = z[:, :2].cpu()
            out["samples"] = self.generate(z, generator, y).float().cpu()
            if y is not None:  # a conditional model's samples are coloured by their class
                out["sample_labels"] = y.cpu()
            y_lines = cond.line_labels(lines.shape[:2], self.classes, self.device)
            flat = lines.reshape(-1, lines.shape[-1]).to(self.device)
            means = self.decode_mean(flat, y_lines)
            out["lines"] = means.float().cpu().reshape(*lines.shape[:2], 2)
        elif not self._hoverable(view.kind):
            return out
        labels = view.labels if self.classes else None
        out.update(
            dr.latent_plane(
                self.encode, self.prior, view.encoded.to(self.device), generator, labels
            )
        )
        if view.kind == "images":
            side = dr.latent_side(view.shape)
            zs = dr.plane((-dr.Z_EXTENT, dr.Z_EXTENT, -dr.Z_EXTENT, dr.Z_EXTENT), side)
            out["latent_images"] = dr.to_bytes(self.decode_mean(zs.to(self.device)))
        return out

    @classmethod
    def panels(cls, info: dict[str, Any]) -> list[dict[str, Any]]:
        if info["kind"] != "points":
            hover = [dr.latent_panel(True)] if info.get("latent_side") else []
            return dr.sample_panels(info["kind"], columns=info.get("columns")) + hover
        by_class = bool(info.get("classes"))
        data = dr.panel(
            "Data space: decoded grid and samples",
            "The decoder's mean along straight lines of the latent plane, and samples (z from "
            + (
                "the prior, coloured by the class each was drawn for; each line decoded under "
                "one class, in turn)"
                if by_class
                else "the prior, coloured by where z fell)"
            )
            + ", over the true density.",
            "data",
            [
                dr.density("true_log_density"),
                dr.lines("lines"),
                dr.dots("samples", {"class": "sample_labels"} if by_class else {"hue": "prior_z"}),
            ],
            dr.DENSITY_LEGEND,
        )
        return [dr.latent_panel(False), data]
