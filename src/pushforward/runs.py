"""The run folder: what a finished run holds, and the :class:`Run` handle used by the CLI and API.

Layout (see INTERFACE.md): config.json, metrics.jsonl, model.safetensors + model.json,
checkpoints/last.*, samples.png, eval.json. Loading reads safetensors and JSON only.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__
from .checkpoint import atomic_write_json, load_tensors, read_json, read_jsonl, save_tensors
from .config import TrainConfig, as_dict, build
from .data import Dataset, load_dataset
from .dist import resolve_device
from .errors import PushforwardError
from .metrics import METRICS, EvalInput
from .models import MODELS
from .models.gmm import GMM, GMMConfig

FORMAT = 1  # bump when the meaning of saved tensors changes
CONFIG, HISTORY, EVAL = "config.json", "metrics.jsonl", "eval.json"
WEIGHTS, WEIGHTS_META, SAMPLES = "model.safetensors", "model.json", "samples.png"
CHECKPOINTS = "checkpoints"
EXPERIMENT_DONE = "experiment.json"  # written by an experiment once it has scored the run
EXPERIMENT_TRAINED = "experiment-trained.json"  # ... and once it has trained it


def clear_run(path: Path) -> None:
    """Delete every file a run writes (and what is derived from it: eval.json, ex-post GMMs,
    an experiment's scores), so that a run trained over an old one inherits nothing stale.
    Other files in the folder are left alone."""
    names = [
        EXPERIMENT_DONE,
        EXPERIMENT_TRAINED,
        EVAL,
        SAMPLES,
        WEIGHTS,
        WEIGHTS_META,
        HISTORY,
        CONFIG,
    ]
    derived = [*path.glob("expost-gmm-*.safetensors"), *path.glob("expost-gmm-*.json")]
    for f in [path / n for n in names] + derived:
        f.unlink(missing_ok=True)
    for folder in (path / CHECKPOINTS, path / "tensorboard"):
        if folder.is_dir():
            shutil.rmtree(folder)


def resolve_binarize(mode: str, mcfg: Any, kind: str) -> str:
    """``auto`` becomes ``dynamic`` for a Bernoulli likelihood on images, else ``none``."""
    if mode != "auto":
        return mode
    bernoulli = getattr(mcfg, "likelihood", None) == "bernoulli"
    return "dynamic" if bernoulli and kind == "images" else "none"


def binarize(ds: Dataset, mode: str) -> Dataset:
    """Apply ``--binarize``: static draws every pixel once; dynamic leaves the training images
    to be redrawn per batch and binarizes the held-out split once, with a fixed seed, so that
    evaluations are comparable."""
    if mode in ("none", "auto"):
        return ds
    if ds.kind != "images":
        raise PushforwardError(f"--binarize {mode} applies to images; {ds.name!r} is points")
    if mode == "static":
        return ds.binarized(seed=0)
    test = ds.binarized(seed=1).test if ds.test is not None else None
    return replace(ds, test=test)


def save_model(run_dir: Path, name: str, model: Any, mcfg: Any, info: dict[str, Any]) -> None:
    save_tensors(run_dir / WEIGHTS, model.state_dict())
    atomic_write_json(
        run_dir / WEIGHTS_META,
        {
            "model": name,
            "format": FORMAT,
            "version": __version__,
            "data_shape": list(model.data_shape),
            "model_config": as_dict(mcfg),
            "info": info,
        },
    )


def load_model(weights: Path, meta_path: Path, device: torch.device) -> tuple[str, nn.Module, Any]:
    """Rebuild a model from its safetensors + JSON pair, checking every name and shape."""
    meta = read_json(meta_path)
    name = meta.get("model") if isinstance(meta, dict) else None
    if name not in MODELS:
        raise PushforwardError(
            f"{meta_path}: unknown model {name!r}; expected one of {', '.join(MODELS)}"
        )
    if meta.get("format") != FORMAT:
        raise PushforwardError(
            f"{meta_path}: checkpoint format {meta.get('format')!r} from pushforward "
            f"{meta.get('version')}, this version reads format {FORMAT}; retrain or use that version"
        )
    cls = MODELS[name]
    mcfg = build(cls.Config, meta.get("model_config", {}), str(meta_path))
    model = cls(mcfg, tuple(meta["data_shape"]))
    state = load_tensors(weights)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if expected != got:
        diff = sorted(set(expected.items()) ^ set(got.items()))[:3]
        raise PushforwardError(
            f"{weights}: tensors do not match a {name} with this config (first differences: "
            f"{diff}); the file belongs to another run or was altered"
        )
    model.load_state_dict(state)
    return name, model.to(device), mcfg


class Run:
    """A trained run on disk: sample from it, evaluate it, read its history."""

    def __init__(self, path: Path, model_name: str, model: nn.Module, tcfg: TrainConfig, mcfg: Any):
        self.path, self.model_name, self.model = Path(path), model_name, model
        self.train_config, self.model_config = tcfg, mcfg
        self._data: Dataset | None = None
        self._raw: Dataset | None = None

    def __repr__(self) -> str:
        return (
            f"Run({str(self.path)!r}, model={self.model_name!r}, data={self.train_config.data!r})"
        )

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> Run:
        path = Path(path)
        if not path.is_dir():
            raise PushforwardError(
                f"{path}: run folder not found; pass the --out folder of a train run"
            )
        cfg = read_json(path / CONFIG)
        tcfg = build(TrainConfig, cfg.get("train", {}), str(path / CONFIG))
        name, model, mcfg = load_model(path / WEIGHTS, path / WEIGHTS_META, resolve_device(device))
        return cls(path, name, model, tcfg, mcfg)

    @property
    def device(self) -> torch.device:
        return next(iter(self.model.state_dict().values())).device

    @property
    def raw_data(self) -> Dataset:
        """The run's data as loaded, before binarization: what feature metrics compare samples
        with (loaded once, on first use)."""
        if self._raw is None:
            tc = self.train_config
            self._raw = load_dataset(tc.data, tc.data_dir, tc.test_data)
        return self._raw

    @property
    def data(self) -> Dataset:
        """The run's data as training saw it: ``raw_data`` with the run's binarization."""
        if self._data is None:
            self._data = binarize(self.raw_data, self.train_config.binarize)
        return self._data

    def history(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path / HISTORY) if (self.path / HISTORY).exists() else []

    def sample(
        self, n: int, seed: int = 0, sampler: str = "prior", components: int = 10
    ) -> torch.Tensor:
        """n samples [n, *shape] on the CPU; the same seed gives the same samples.

        ``sampler="gmm"`` (VAE): draw z from a Gaussian mixture fitted after training to the
        encoder means of the training data (ex-post density estimation, Ghosh et al. 2020)
        instead of from the prior, so samples come from where the data's codes actually are."""
        if n < 1:
            raise PushforwardError(f"-n {n}: ask for at least one sample")
        g = torch.Generator().manual_seed(seed)
        if sampler == "prior":
            return self.model.sample(n, generator=g).cpu()  # type: ignore[operator]
        if sampler != "gmm":
            raise PushforwardError(f"--sampler {sampler!r}: choose prior or gmm")
        model = self._encoder_model("--sampler gmm")
        z = self.expost_gmm(components).sample(n, g)
        return model.generate(z, g).cpu()

    def expost_gmm(self, components: int = 10) -> GMM:
        """The ex-post latent GMM (K components, full covariances), fitted once and kept in the
        run folder as expost-gmm-K.safetensors + .json."""
        weights, meta = (
            self.path / f"expost-gmm-{components}.safetensors",
            self.path / f"expost-gmm-{components}.json",
        )
        if weights.exists() and meta.exists():
            return load_model(weights, meta, torch.device("cpu"))[1]  # type: ignore[return-value]
        model = self._encoder_model("--sampler gmm")
        x = self.data.train[
            torch.randperm(len(self.data.train), generator=torch.Generator().manual_seed(0))[
                :20_000
            ]
        ]
        with torch.no_grad():
            codes = torch.cat([model.encode(c.to(self.device))[0].cpu() for c in x.split(1000)])
        cfg = GMMConfig(components=min(components, len(codes)))
        gmm = GMM(cfg, (codes.shape[1],))
        info = gmm.fit(codes)
        save_tensors(weights, gmm.state_dict())
        atomic_write_json(
            meta,
            {
                "model": "gmm",
                "format": FORMAT,
                "version": __version__,
                "data_shape": [codes.shape[1]],
                "model_config": as_dict(cfg),
                "info": {**info, "fitted_to": f"encoder means of {len(codes)} training examples"},
            },
        )
        return gmm

    def _encoder_model(self, what: str) -> Any:
        if not hasattr(self.model, "reconstruct"):
            raise PushforwardError(
                f"{what} needs a model with an encoder (vae); {self.model_name} has none"
            )
        return self.model

    def _held_out(self, n: int, seed: int) -> torch.Tensor:
        x = self.data.test if self.data.test is not None else self.data.train
        return x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]]

    def reconstructions(self, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """(n held-out examples, their reconstructions), each [n, *shape], on the CPU."""
        model = self._encoder_model("--recon")
        x = self._held_out(n, seed)
        return x.cpu(), model.reconstruct(x).cpu()

    def interpolations(self, pairs: int, steps: int = 8, seed: int = 0) -> torch.Tensor:
        """Decoded straight lines in z between pairs of held-out examples: [pairs * steps, *shape]."""
        model = self._encoder_model("--interpolate")
        x = self._held_out(2 * pairs, seed)
        return model.interpolate(x[:pairs], x[pairs:], steps).cpu()

    def latents(self, n: int = 2000) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Encoder means of up to n held-out examples [n, d] and their labels [n] (or None)."""
        model = self._encoder_model("the latent plot")
        d = self.data
        x, labels = (d.test, d.test_labels) if d.test is not None else (d.train, d.train_labels)
        x = x[:n]
        with torch.no_grad():
            z = model.encode(x.to(self.device))[0].cpu()
        return z, None if labels is None else labels[:n]

    def evaluate(
        self,
        metrics: list[str] | None = None,
        split: str = "test",
        data: str | None = None,
        n_fake: int = 10_000,
        seed: int = 0,
        write: bool = True,
        k: int = 1000,
        n_real: int | None = None,
        sampler: str = "prior",
    ) -> dict[str, Any]:
        """Compute metrics on held-out data and (by default) write them to RUN/eval.json.

        With ``metrics`` None every metric that applies runs; a named one that does not apply is
        an error. ``data`` evaluates on other data of the same shape, e.g. ``npy:held_out.npy``
        (binarized once, seed 1, if the run binarized its images). ``k`` is the IWAE sample count;
        ``n_real`` keeps the first n held-out examples (the IWAE bound costs k decoder passes each).
        """
        if split not in ("train", "test"):
            raise PushforwardError(f"--split {split!r}: choose train or test")
        if k < 1 or (n_real is not None and n_real < 1) or n_fake < 2:
            raise PushforwardError("-k and --n-real must be at least 1, --n-fake at least 2")
        if data:
            raw = load_dataset(data, self.train_config.data_dir)
            real = raw.split(split) if raw.test is not None else raw.train
            if self.train_config.binarize in ("static", "dynamic") and raw.kind == "images":
                real = torch.bernoulli(real, generator=torch.Generator().manual_seed(1))
        else:
            raw = self.raw_data
            real = self.data.split(split)
        truth = raw.log_prob
        real = real[:n_real] if n_real else real
        shape = tuple(self.model.data_shape)  # type: ignore[arg-type]
        if tuple(real.shape[1:]) != shape:
            raise PushforwardError(
                f"--data {data}: examples of shape {tuple(real.shape[1:])}, the model was trained "
                f"on {shape}; evaluate on data of the training shape"
            )
        fake = self.sample(n_fake, seed, sampler)
        name = data or self.train_config.data
        e = EvalInput(
            self.model, real.to(self.device), fake.to(self.device), truth, name, seed, k, raw
        )
        names = metrics or [m for m in METRICS if METRICS[m].applies(e) is None]
        out: dict[str, Any] = {}
        for m in names:
            if m not in METRICS:
                raise PushforwardError(
                    f"--metrics {m!r}: unknown; choose from {', '.join(METRICS)}"
                )
            why = METRICS[m].applies(e)
            if why:
                raise PushforwardError(f"--metrics {m}: does not apply here ({why})")
            out.update(METRICS[m].compute(e))
        out.update(
            split=split,
            data=name,
            **({"sampler": sampler} if sampler != "prior" else {}),
            n_real=len(real),
            n_fake=n_fake,
            seed=seed,
        )
        if write:
            atomic_write_json(self.path / EVAL, out)
        return out
