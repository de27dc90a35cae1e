"""How the GAN shows itself in the explorer and its GIF: on 2-D points the base plane's fixed
draws and straight lines, the same pushed forward by the generator over the true density, and
the discriminator's judgement over the data plane; on images, its samples beside the data.

A mixin of models/gan.py's GAN, kept apart so that file stays one sitting's reading.

May import, of this package: data, models/conditional, models/drawing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from . import conditional as cond
from . import drawing as dr


class GeneratorFrames(dr.PlaneFrames):
    """The explorer's view of a generator and a discriminator."""

    generator: nn.Module
    generator_ema: nn.Module | None
    noise: Callable[..., torch.Tensor]
    discriminate: Callable[..., torch.Tensor]

    def frame_setup(self, view: dr.FrameView) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """Fixed draws of z and straight lines of the z-plane (2-D points)."""
        extent = 1.0 if self.config.noise == "uniform" else dr.Z_EXTENT  # a uniform z's square
        probability = self.config.loss in ("ns", "minimax")
        info = {"z_extent": extent, "critic": "probability" if probability else "score"}
        if view.kind != "points":
            return info, {}
        g = torch.Generator().manual_seed(view.seed)
        z = self.noise(dr.POINTS, g)  # [POINTS, d]
        y = self.draw_labels(dr.POINTS, None, g)  # [POINTS] (conditional)
        info["latent_dim"] = self.config.latent_dim
        if y is not None:
            info["classes"] = self.classes
        return info, {
            "z_lines": dr.z_lines(self.config.latent_dim, extent),
            "z_points": z[:, :2],
            "_z": z,
            **({} if y is None else {"_y": y.cpu(), "sample_labels": y.cpu()}),
        }

    def frame(
        self, view: dr.FrameView, inputs: dict[str, torch.Tensor], generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """G (its average, if kept) applied to the z-lines and the fixed draws; D over the
        data plane, each cell's point repeated into a pack."""
        if view.kind != "points" or view.extent is None:
            return {}
        net, dev, lines = self.generator_ema or self.generator, self.device, inputs["z_lines"]
        y_lines = cond.line_labels(lines.shape[:2], self.classes, dev)
        warped = self.generate(lines.reshape(-1, lines.shape[-1]).to(dev), net, y_lines)
        grid = dr.plane(view.extent).to(dev).repeat_interleave(self.config.pack, 0)
        critic = cond.best_class(self.discriminate, grid, self.classes).float().cpu()
        y = inputs["_y"].to(dev) if "_y" in inputs else None
        return {
            "lines": warped.float()
            .cpu()
            .reshape(*lines.shape[:2], 2),  # [2 * LINES, LINE_POINTS, 2]
            "samples": self.generate(inputs["_z"].to(dev), net, y).float().cpu(),  # [POINTS, 2]
            "critic": critic.reshape(dr.RES, dr.RES),
        }

    @classmethod
    def panels(cls, info: dict[str, Any]) -> list[dict[str, Any]]:
        if info["kind"] != "points":
            return dr.sample_panels(info["kind"], columns=info.get("columns"))
        probability = info.get("critic") == "probability"
        by_class = bool(info.get("classes"))  # conditional: colours are the asked classes
        follow = {"class": "sample_labels"} if by_class else {"hue": "z_points"}
        base = dr.panel(
            "Base space: z ~ N(0, I)",
            f"The first two coordinates of {dr.POINTS} fixed draws of z (of "
            f"{info.get('latent_dim')}) and straight lines of the z-plane; "
            + (
                "a point's colour is the class it is drawn for, beside z."
                if by_class
                else "a point's colour follows it into the data space."
            ),
            "z",
            [dr.lines("z_lines"), dr.dots("z_points", follow)],
        )
        data = dr.panel(
            "Data space: G(z) over the true density",
            "The generator pushes the z-plane forward: the grid lines as G warps them "
            + ("(each under one class, in turn) " if by_class else "")
            + "and the same draws' samples, over the data's true density.",
            "data",
            [dr.density("true_log_density"), dr.lines("lines"), dr.dots("samples", follow)],
            dr.DENSITY_LEGEND,
        )
        judge = dr.panel(
            "Discriminator: D(x) = P(real)" if probability else "Critic score D(x)",
            "Where D calls the data real (red) or fake (blue)"
            + (", under the class that finds each point most real" if by_class else "")
            + ", with the generator's samples; at balance it cannot tell them apart.",
            "data",
            [dr.critic("critic", probability), dr.dots("samples", "#111111", 1.2)],
            ("critic", "0: fake", "1: real") if probability else ("critic", "low", "high"),
        )
        return [base, data, judge]
