"""Frames of training for ``pushforward explore``: at N steps spread over a run (EM iterations
for the GMM), what the model does to inputs fixed for the whole run, so frames compare.

RUN/snapshots/inputs.safetensors holds the fixed inputs, and in its header what the frames show;
RUN/snapshots/step-0000123.safetensors holds one frame (its step and seconds in the header).
Every file is written atomically with its checksum. Frames never touch the training's random
numbers or its batch-norm statistics, so a resumed run, which drops the frames past its
checkpoint and takes them again, ends with the same frames as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from .. import dist
from ..data import TOY_MODES, Dataset
from ..errors import PushforwardError
from ..files import load_tensors_and_metadata, save_tensors
from ..metrics.latent import encoder_means, log_aggregate_posterior
from ..models import GAN, GMM, VAE, Model
from ..models.priors import StandardNormal
from ..plots import data_limits

SNAPSHOTS, INPUTS = "snapshots", "inputs.safetensors"
DEFAULT_COUNT = {"points": 40, "images": 16}
BYTES_LIMIT = 4 << 20  # every frame of a run together, whatever the length of training
LINES, LINE_POINTS, POINTS, RES, IMAGES = 17, 48, 1000, 64, 64
Z_EXTENT = 3.0  # the base space and the latent plane are drawn over [-3, 3]^2


def frame_name(step: int) -> str:
    return f"step-{step:07d}.safetensors"


def resolve_count(asked: int | None, model: Model, data: Dataset) -> int:
    """How many frames a run keeps: --snapshots, or the default of its kind of data; fewer for
    images when their frames would pass BYTES_LIMIT. Refused (exit 2) where the explorer draws
    nothing: points of other than 2 dimensions."""
    latent = model.config.latent_dim if isinstance(model, (GAN, VAE)) else None
    why = None
    if data.kind == "points" and data.dim != 2:
        why = f"the explorer draws 2-D points and images, and {data.name} has {data.dim}-d points"
    elif data.kind == "points" and latent is not None and latent < 2:
        why = "the explorer draws the plane of z's first two coordinates, and --latent-dim is 1"
    if asked is None:
        asked = 0 if why else DEFAULT_COUNT[data.kind]
    if asked and why:
        raise PushforwardError(f"--snapshots {asked}: {why}; give --snapshots 0")
    if asked:
        asked = min(asked, max(2, BYTES_LIMIT // _frame_bytes(model, data)))
    return asked


def _latent_side(shape: tuple[int, ...]) -> int:
    """Decoded images per side of the latent-plane grid: 16, fewer for large images."""
    return max(6, min(16, int(math.sqrt((200 << 10) / math.prod(shape)))))


def _two_d_latent(model: Model) -> bool:
    return isinstance(model, VAE) and model.config.latent_dim == 2


def _frame_bytes(model: Model, data: Dataset) -> int:
    """An upper bound on one frame's size: the largest is the VAE's latent plane (three RES x
    RES maps, four sets of POINTS points, the decoded grid lines) plus its decoded images."""
    plane = 3 * 4 * RES * RES + 4 * 8 * POINTS + 2 * LINES * LINE_POINTS * 8
    if data.kind == "points":
        return plane
    n = IMAGES + (_latent_side(data.shape) ** 2 if _two_d_latent(model) else 0)
    return n * math.prod(data.shape) + plane


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


def _plane(extent: tuple[float, float, float, float], res: int = RES) -> torch.Tensor:
    """Cell centres of a res x res grid over (x0, x1, y0, y1), row by row from the top: [res^2, 2]."""
    x0, x1, y0, y1 = extent
    xs = x0 + (torch.arange(res) + 0.5) * (x1 - x0) / res
    ys = y1 - (torch.arange(res) + 0.5) * (y1 - y0) / res
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)


def _z_lines(dim: int, extent: float) -> torch.Tensor:
    """LINES vertical and LINES horizontal lines of the z-plane, in its first two coordinates
    (the others 0): [2 * LINES, LINE_POINTS, dim]."""
    at = torch.linspace(-extent, extent, LINES)
    along = torch.linspace(-extent, extent, LINE_POINTS)
    z = torch.zeros(2 * LINES, LINE_POINTS, dim)
    z[:LINES, :, 0], z[:LINES, :, 1] = at[:, None], along[None, :]
    z[LINES:, :, 0], z[LINES:, :, 1] = along[None, :], at[:, None]
    return z


def _labels(data: Dataset, x: torch.Tensor) -> torch.Tensor:
    """A colour class per shown example: its class label, the nearest mode of a mode set, or -1."""
    if data.kind == "points" and data.name in TOY_MODES:
        modes = torch.as_tensor(TOY_MODES[data.name], dtype=x.dtype)
        return torch.cdist(x, modes).argmin(1)
    labels = data.test_labels if data.test is not None else data.train_labels
    if labels is not None:
        return labels[: len(x)].long()
    return torch.full((len(x),), -1, dtype=torch.long)


def _bytes(images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] as uint8, a quarter of float32's size: [N, C, H, W]."""
    return (images.float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()


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
        self.points, self.encoded = shown[:POINTS].cpu(), encoded[:POINTS]
        self.info: dict[str, Any] = {"kind": data.kind, "data": data.name, "count": count}
        self.inputs: dict[str, torch.Tensor] = {"labels": _labels(raw, self.points)}
        if data.kind == "points":
            self.extent = data_limits(raw.train[:20000].cpu())
            self.info["extent"] = list(self.extent)
            self.inputs["points"] = self.points
            if raw.log_prob is not None:
                log_p = raw.log_prob(_plane(self.extent)).float().clamp(min=-1e4)
                self.inputs["true_log_density"] = log_p.reshape(RES, RES)
        else:
            self.inputs["real"] = _bytes(shown[:IMAGES])
        # the base space drawn: [-3, 3]^2, or the square a uniform z fills
        uniform = isinstance(model, GAN) and model.config.noise == "uniform"
        self.info["z_extent"] = 1.0 if uniform else Z_EXTENT
        if isinstance(model, GAN) or (isinstance(model, VAE) and data.kind == "points"):
            dim = model.config.latent_dim
            self.inputs["z_lines"] = _z_lines(dim, self.info["z_extent"])
            self.info["latent_dim"] = dim
        if isinstance(model, GAN):
            self.z = model.noise(POINTS, torch.Generator().manual_seed(self.seed))
            self.inputs["z_points"] = self.z[:, :2]
            self.info["critic"] = (
                "probability" if model.config.loss in ("ns", "minimax") else "score"
            )
        if _two_d_latent(model) and data.kind == "images":
            self.info["latent_side"] = _latent_side(data.shape)

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
        save_tensors(self.folder / INPUTS, self.inputs, {"info": json.dumps(self.info)})
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
        images = self.info["kind"] == "images"
        out: dict[str, torch.Tensor] = {}
        if images:
            out["samples"] = _bytes(m.sample(IMAGES, g))
        if isinstance(m, GAN):
            out.update({} if images else self._gan_points(m))
        elif isinstance(m, VAE):
            out.update(self._vae(m, g, images))
        elif isinstance(m, GMM) and not images:
            out.update(self._gmm(m))
        return out

    def _gan_points(self, m: GAN) -> dict[str, torch.Tensor]:
        net = m.generator_ema or m.generator
        dev = m.device
        lines = self.inputs["z_lines"]
        warped = m.generate(lines.reshape(-1, lines.shape[-1]).to(dev), net).float().cpu()
        grid = _plane(self.extent).to(dev)
        critic = m.discriminate(grid.repeat_interleave(m.config.pack, 0)).float().cpu()
        return {
            "lines": warped.reshape(*lines.shape[:2], 2),
            "samples": m.generate(self.z.to(dev), net).float().cpu(),
            "critic": critic.reshape(RES, RES),
        }

    def _vae(self, m: VAE, g: torch.Generator, images: bool) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        d = m.config.latent_dim
        if not images:
            lines = self.inputs["z_lines"]
            z = m.prior.sample(POINTS, g).float()
            out["prior_z"] = z[:, :2].cpu()
            out["samples"] = m.generate(z, g).float().cpu()
            means = m.decode_mean(lines.reshape(-1, d).to(m.device)).float().cpu()
            out["lines"] = means.reshape(*lines.shape[:2], 2)
        elif d != 2:
            return out
        mu, logvar = encoder_means(m, self.encoded.to(m.device))
        mu, logvar = mu[:, :2], logvar[:, :2]  # the plane of the first two coordinates
        out["enc_mu"] = mu.float()
        plane = _plane((-Z_EXTENT, Z_EXTENT, -Z_EXTENT, Z_EXTENT)).double()
        log_q = log_aggregate_posterior(plane, mu, logvar)
        own = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=g, dtype=mu.dtype)
        floor = torch.quantile(log_aggregate_posterior(own, mu, logvar), 0.01)
        draws = m.prior.sample(2000, g).double()[:, :2].cpu()  # [2000, 2]
        log_p = self._log_prior(m, plane, draws)
        # a hole: where the prior puts its mass (as much as at 99% of its own draws) and the
        # aggregate posterior is thinner than at 99% of its own samples (eval's prior_holes)
        drawn = self._log_prior(m, draws, draws)
        out["log_q"] = log_q.float().clamp(min=-1e4).reshape(RES, RES)
        out["log_p"] = log_p.float().clamp(min=-1e4).reshape(RES, RES)
        out["holes"] = ((log_q < floor) & (log_p > torch.quantile(drawn, 0.01))).to(torch.uint8)
        out["holes"] = out["holes"].reshape(RES, RES)
        if images:
            side = self.info["latent_side"]
            zs = _plane((-Z_EXTENT, Z_EXTENT, -Z_EXTENT, Z_EXTENT), side).to(m.device)
            out["latent_images"] = _bytes(m.decode_mean(zs))
        return out

    def _log_prior(self, m: VAE, z2: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
        """log p of points z2 [n, 2] of the plane: the prior itself for a 2-d z, its marginal
        on the first two coordinates otherwise (exact for N(0, I), else a kernel estimate from
        ``draws`` [m, 2], the first two coordinates of the prior's own draws)."""
        prior, d = m.prior, m.config.latent_dim
        if d == 2:
            params = list(prior.parameters())
            dev = params[0].device if params else z2.device
            return prior.log_prob(z2.to(dev, torch.float32)).double().cpu()
        if isinstance(prior, StandardNormal):
            return -0.5 * z2.pow(2).sum(1) - math.log(2 * math.pi)
        return log_aggregate_posterior(z2, draws, torch.full_like(draws, math.log(0.05)))

    def _gmm(self, m: GMM) -> dict[str, torch.Tensor]:
        means, cov = m.means.float().cpu(), m.covariances.float().cpu()
        return {
            "weights": m.weights.float().cpu(),
            "means": means,
            "covariances": cov if cov.dim() == 3 else torch.diag_embed(cov),
            "log_density": m.log_prob(_plane(self.extent).to(m.means.device))
            .float()
            .cpu()
            .clamp(min=-1e4)
            .reshape(RES, RES),
        }


_MAP, _XY = (RES, RES), (-1, 2)
SHAPES: dict[str, tuple[int, ...]] = {  # every tensor a snapshot file may hold (-1: any size)
    **dict.fromkeys(("true_log_density", "critic", "log_q", "log_p", "holes", "log_density"), _MAP),
    **dict.fromkeys(("points", "z_points", "prior_z", "enc_mu", "means"), _XY),
    **{"lines": (-1, LINE_POINTS, 2), "z_lines": (2 * LINES, LINE_POINTS, -1)},
    **{"covariances": (-1, 2, 2), "weights": (-1,), "labels": (-1,)},
    **dict.fromkeys(("real", "samples", "latent_images"), (-1, -1, -1, -1)),
}


def _check_shapes(path: Path, tensors: dict[str, torch.Tensor], kind: str) -> None:
    """Refuse a snapshot file holding tensors this version does not write, or of other shapes."""
    for name, t in tensors.items():
        want = SHAPES.get(name)
        if name == "samples" and kind == "points":
            want = _XY
        ok = want is not None and t.dim() == len(want)
        if not ok or any(w not in (-1, n) for w, n in zip(want or (), t.shape, strict=False)):
            raise PushforwardError(
                f"{path}: {name} {tuple(t.shape)} is not a snapshot tensor of this version; "
                "delete the snapshots folder, or train the run again"
            )


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
        and info.get("critic") in (None, "probability", "score")
        and (info.get("latent_side") is None or isinstance(info["latent_side"], int))
    )


def read_snapshots(
    run: Path,
) -> tuple[dict[str, Any], dict[str, torch.Tensor], list[dict[str, Any]]]:
    """(what the frames show, the fixed inputs, the frames in step order, each its tensors plus
    ``step`` and ``seconds``) of RUN/snapshots/, each file checked against its checksum; a
    frame whose tensors differ in name or shape from the others is refused."""
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
    kind = info["kind"]
    _check_shapes(folder / INPUTS, inputs, kind)
    files, frames = sorted(folder.glob("step-*.safetensors")), []
    for f in files:
        tensors, head = load_tensors_and_metadata(f)
        _check_shapes(f, tensors, kind)
        try:
            tensors_meta = {"step": int(head["step"]), "seconds": float(head["seconds"])}
        except (KeyError, ValueError):
            tensors_meta = {"step": -1, "seconds": math.nan}
        if tensors_meta["step"] < 0 or not math.isfinite(tensors_meta["seconds"]):
            raise PushforwardError(f"{f}: its header has no step and finite seconds; delete it")
        frames.append({**tensors, **tensors_meta})
    if not frames:
        raise PushforwardError(f"{folder}: no frames (step-*.safetensors); {fix}")
    shape = {k: tuple(v.shape) for k, v in frames[0].items() if torch.is_tensor(v)}
    for f, frame in zip(files, frames, strict=True):
        if {k: tuple(v.shape) for k, v in frame.items() if torch.is_tensor(v)} != shape:
            raise PushforwardError(f"{f}: not a frame of the same run as the others; delete it")
    return info, inputs, frames
