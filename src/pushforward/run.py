"""The :class:`Run` handle: a trained run folder to sample from, evaluate and look into, used by
the CLI and the Python API alike.

May import, of this package: config, data, dist, errors, explore, explore/card, files, limits,
metrics, metrics/health, models, models/saved, run_folder.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from .config import INT_LIMIT, Options, TrainConfig, option
from .data import Dataset, binarize, binarize_held_out, load_dataset
from .dist import resolve_device
from .errors import PushforwardError
from .explore import page
from .explore.card import Explorer, Scores, run_card
from .files import atomic_write_json, read_json, read_jsonl
from .limits import check_fits
from .metrics import EvalInput, evaluate
from .metrics.health import failure_line
from .models import GMM, Encoder, GMMConfig, Model
from .models.priors import encoder_means
from .models.saved import load_model, save_model
from .run_folder import (
    CHECKPOINTS,
    EVAL,
    HISTORY,
    LAST_JSON,
    WEIGHTS,
    WEIGHTS_META,
    read_train_config,
)

IWAE_K = 100_000  # the IWAE papers' largest is 5,000; each example costs k decoder passes


@dataclass(frozen=True)
class EvalOptions(Options):
    """How a run is scored (``pushforward eval`` fills it from its flags, ``Run.evaluate`` from
    keywords): each option declared once with its type, bounds and choices, and every value
    checked (and a flag's string typed) where the options are built, whatever built them."""

    metrics: str | None = option(None, "comma-separated names (default: all that apply)")
    split: str = option("test", "the held-out split scored", ("train", "test"))
    data: str | None = option(None, "evaluate on other data, e.g. npy:held_out.npy")
    n_fake: int = option(10_000, "model samples for sample metrics", at_least=2)
    seed: int = option(0, "seed of the samples and the estimates", at_least=-INT_LIMIT)
    k: int = option(1000, "importance samples of the IWAE bound", at_least=1, at_most=IWAE_K)
    n_real: int | None = option(None, "use only the first N held-out examples", at_least=1)
    sampler: str = option(
        "prior",
        "vae: where sample metrics draw z from (an ex-post GMM of the codes)",
        ("prior", "gmm"),
    )
    features: str = option(
        "classifier",
        "the sample metrics' features: the data set's classifier, or the FID network's",
        ("classifier", "inception"),
    )
    temperature: float = option(
        1.0,
        "spread of the base distribution the sample metrics draw from (1: as trained)",
        above=0,
    )
    feature_weights: str | None = option(None, "Inception weights file (.pth)")

    flags: ClassVar[dict[str, str]] = {"k": "-k"}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.metrics is not None and not all(m.strip() for m in self.metrics.split(",")):
            raise PushforwardError(
                f"--metrics {self.metrics!r}: an empty name; give names separated by commas, or "
                "leave --metrics out for all that apply"
            )

    @property
    def names(self) -> list[str] | None:
        """The metrics asked for, or None for every one that applies."""
        return None if self.metrics is None else [m.strip() for m in self.metrics.split(",")]


def _checkpoint_step(path: Path) -> int | None:
    """The step of a run folder's last checkpoint, if it has a readable one."""
    try:
        meta = read_json(path / CHECKPOINTS / LAST_JSON)
    except PushforwardError:
        return None
    step = meta.get("step") if isinstance(meta, dict) else None
    return step if type(step) is int else None


SAMPLE_CHUNK = 65_536  # samples drawn at once: bounds the networks' activations for any n
EXPOST_CODES = 20_000  # training codes the ex-post latent GMM is fitted to


class Run:
    """A trained run on disk: sample from it, evaluate it, read its history. ``raw`` and
    ``data`` (the data as loaded, and as training saw it) are loaded on first use unless the
    trainer hands over the ones it has."""

    def __init__(
        self,
        path: Path,
        model_name: str,
        model: Model,
        tcfg: TrainConfig,
        raw: Dataset | None = None,
        data: Dataset | None = None,
    ) -> None:
        self.path, self.model_name, self.model = Path(path), model_name, model
        self.train_config, self.model_config = tcfg, model.config
        self._raw, self._data = raw, data

    def __repr__(self) -> str:
        return (
            f"Run({str(self.path)!r}, model={self.model_name!r}, data={self.train_config.data!r})"
        )

    def _repr_html_(self) -> str:
        """The run as a card in a notebook (explore/card.py)."""
        return run_card(self)

    def explore(self, height: int = 900) -> Any:
        """The explorer of this run's training (``pushforward explore``), shown inline when a
        notebook displays it; ``.save(PATH)`` writes the page."""
        return Explorer(page(self.path), height)

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> Run:
        path = Path(path)
        if not path.is_dir():
            raise PushforwardError(
                f"{path}: run folder not found; pass the --out folder of a train run"
            )
        tcfg = read_train_config(path)
        if not (path / WEIGHTS_META).exists() and not (path / WEIGHTS).exists():
            step = _checkpoint_step(path)
            raise PushforwardError(
                f"{path}: an unfinished run ("
                + (
                    f"its last checkpoint is at step {step}"
                    if step is not None
                    else "no checkpoint"
                )
                + f"); finish it with the command it started with plus --resume --out {path}"
            )
        name, model = load_model(path / WEIGHTS, path / WEIGHTS_META, resolve_device(device))
        return cls(path, name, model, tcfg)

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def raw_data(self) -> Dataset:
        """The run's data as loaded, before binarization: what feature metrics compare samples
        with (loaded once, on first use)."""
        if self._raw is None:
            tc = self.train_config
            self._raw = load_dataset(tc.data, tc.data_dir, tc.test_data, tc.data_memory)
        return self._raw

    @property
    def data(self) -> Dataset:
        """The run's data as training saw it: ``raw_data`` with the run's binarization."""
        if self._data is None:
            self._data = binarize(self.raw_data, self.train_config.binarize)
        return self._data

    def warning(self) -> str | None:
        """Why the trained model visibly failed and what to try (model.json), or None."""
        info = read_json(self.path / WEIGHTS_META).get("info", {})
        reasons = info.get("warnings") if isinstance(info, dict) else None
        if not reasons:
            return None
        return failure_line(self.model_name, self.train_config.data, reasons)

    def history(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path / HISTORY) if (self.path / HISTORY).exists() else []

    def sample(
        self,
        n: int,
        seed: int = 0,
        sampler: str = "prior",
        components: int = 10,
        label: int | Sequence[int] | torch.Tensor | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """n samples [n, *shape] on the CPU; the same seed gives the same samples.

        ``sampler="gmm"`` (VAE): draw z from a Gaussian mixture fitted after training to the
        encoder means of the training data (ex-post density estimation, Ghosh et al. 2020)
        instead of from the prior, so samples come from where the data's codes actually are.
        ``label`` (a run trained with --conditional): the class of every sample, or one per
        sample; by default classes come as often as in the training data. ``temperature``
        scales the spread of the base distribution (or of the ex-post GMM) about its centres:
        below 1, samples nearer the modes and less varied."""
        if n < 1:
            raise PushforwardError(f"-n {n}: ask for at least one sample")
        if not (isinstance(temperature, (int, float)) and 0 < temperature < math.inf):
            raise PushforwardError(
                f"--temperature {temperature}: give a number above 0 (1 samples as trained)"
            )
        if sampler not in ("prior", "gmm"):
            raise PushforwardError(f"--sampler {sampler!r}: choose prior or gmm")
        dim = self.data.dim
        check_fits(8 * n * dim, f"-n {n}: {n:,} samples of {dim} values", "ask for fewer")
        labels = None if label is None else torch.as_tensor(label).long().reshape(-1).cpu()
        if labels is not None:
            self.model.draw_labels(n, labels, None)  # checked before anything is drawn
        g = torch.Generator().manual_seed(seed)
        model = self.model

        def draw(i: int, m: int) -> torch.Tensor:
            asked = labels if labels is None or len(labels) == 1 else labels[i : i + m]
            if sampler == "prior":
                return model.sample(m, g, asked, temperature)
            encoder, density = self._encoder("--sampler gmm"), self.expost_gmm(components)
            y = model.draw_labels(m, asked, g)
            return encoder.generate(density.sample(m, g, temperature=temperature), g, y)

        # in chunks, so the networks' activations stay bounded for any n
        return torch.cat(
            [draw(i, min(SAMPLE_CHUNK, n - i)).cpu() for i in range(0, n, SAMPLE_CHUNK)]
        )

    def expost_gmm(self, components: int = 10) -> GMM:
        """The ex-post latent GMM (K components, full covariances), fitted once and kept in the
        run folder as expost-gmm-K.safetensors + .json."""
        if not 1 <= components <= EXPOST_CODES:
            raise PushforwardError(
                f"--components {components}: the ex-post GMM is fitted to at most "
                f"{EXPOST_CODES:,} codes; choose 1 to {EXPOST_CODES:,} (10 is usual)"
            )
        weights, meta = (
            self.path / f"expost-gmm-{components}.safetensors",
            self.path / f"expost-gmm-{components}.json",
        )
        if weights.exists() and meta.exists():
            fitted = load_model(weights, meta, torch.device("cpu"))[1]
            if not isinstance(fitted, GMM):
                raise PushforwardError(f"{meta}: not a gmm; delete it and sample again")
            return fitted
        model = self._encoder("--sampler gmm")
        pick = torch.randperm(len(self.data.train), generator=torch.Generator().manual_seed(0))
        x = self.data.train[pick[:EXPOST_CODES]]
        y = self._labels_of(self.data.train_labels, pick[:EXPOST_CODES])
        codes = encoder_means(model.encode, x.to(self.device), 1000, y)[0].float()
        gmm = GMM(GMMConfig(components=min(components, len(codes))), (codes.shape[1],))
        info: dict[str, Any] = {
            **gmm.fit(codes),
            "fitted_to": f"encoder means of {len(codes)} training examples",
        }
        save_model(weights, meta, "gmm", gmm, info)
        return gmm

    def _encoder(self, what: str) -> Encoder:
        if not isinstance(self.model, Encoder):
            raise PushforwardError(
                f"{what} needs a model with an encoder (vae); {self.model_name} has none"
            )
        return self.model

    def _scored_labels(
        self, ds: Dataset, split: str, n: int, data: str | None
    ) -> torch.Tensor | None:
        """The labels [n] of the examples a conditional model's likelihood is scored on, which
        it is given (log p(x | y)); None for other models."""
        if not self.model.classes:
            return None
        y = ds.test_labels if split == "test" and ds.test is not None else ds.train_labels
        if y is None:
            raise PushforwardError(
                f"--data {data}: this run is conditional and its likelihood needs each "
                "example's label; evaluate on labelled data"
            )
        return y[:n].to(self.device)

    def _labels_of(self, labels: torch.Tensor | None, idx: torch.Tensor) -> torch.Tensor | None:
        """The labels at ``idx`` for a conditional model (whose encoder and decoder take them),
        else None."""
        return labels[idx] if labels is not None and self.model.classes else None

    def _held_out(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """n held-out examples as loaded (grey, not the binarized pixels a Bernoulli model
        is scored on: its encoder takes intensities, and a reader compares with the data),
        with their labels for a conditional model."""
        raw = self.raw_data
        x, y = (
            (raw.test, raw.test_labels) if raw.test is not None else (raw.train, raw.train_labels)
        )
        idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
        return x[idx], self._labels_of(y, idx)

    def reconstructions(self, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """(n held-out examples, their reconstructions), each [n, *shape], on the CPU."""
        model = self._encoder("--recon")
        x, y = self._held_out(n, seed)
        return x.cpu(), model.reconstruct(x, y).cpu()

    def interpolations(self, pairs: int, steps: int = 8, seed: int = 0) -> torch.Tensor:
        """Decoded straight lines in z between pairs of held-out examples: [pairs * steps, *shape]."""
        model = self._encoder("--interpolate")
        x, y = self._held_out(2 * pairs, seed)
        ya, yb = (None, None) if y is None else (y[:pairs], y[pairs:])
        return model.interpolate(x[:pairs], x[pairs:], steps, ya, yb).cpu()

    def latents(self, n: int = 2000) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Encoder means of up to n held-out examples [n, d] and their labels [n] (or None)."""
        model = self._encoder("the latent plot")
        d = self.data
        x, labels = (d.test, d.test_labels) if d.test is not None else (d.train, d.train_labels)
        labels = None if labels is None else labels[:n]
        y = labels if self.model.classes else None
        z = encoder_means(model.encode, x[:n].to(self.device), 1000, y)[0].float()
        return z, labels

    def evaluate(
        self, metrics: list[str] | None = None, write: bool = True, **options: Any
    ) -> dict[str, Any]:
        """Compute metrics on held-out data and (by default) write them to RUN/eval.json.

        With ``metrics`` None every metric that applies runs; a named one that does not apply is
        an error. ``options`` are :class:`EvalOptions`' (``k=100``, ``data="npy:x.npy"``, ...)."""
        unknown = sorted(set(options) - {f.name for f in dataclasses.fields(EvalOptions)})
        if unknown:
            raise PushforwardError(f"Run.evaluate: unknown option {unknown[0]!r}")
        names = None if metrics is None else ",".join(metrics)
        return self.score(EvalOptions(metrics=names, **options), write)

    def score(self, opts: EvalOptions, write: bool = True) -> dict[str, Any]:
        """The metrics ``opts`` asks for, as ``evaluate``; ``data`` evaluates on other data of
        the same shape (binarized once, seed 1, if the run binarized its images)."""
        split, data, n_real = opts.split, opts.data, opts.n_real
        if data:
            raw = load_dataset(
                data, self.train_config.data_dir, data_memory=self.train_config.data_memory
            )
            real = raw.split(split) if raw.test is not None else raw.train
            real = binarize_held_out(real, self.train_config.binarize, raw.kind)
            labels_of = raw
        else:
            raw = labels_of = self.raw_data
            real = self.data.split(split)
        real = real[:n_real] if n_real else real
        real_labels = self._scored_labels(labels_of, split, len(real), data)
        shape = tuple(self.model.data_shape)
        if tuple(real.shape[1:]) != shape:
            raise PushforwardError(
                f"--data {data}: examples of shape {tuple(real.shape[1:])}, the model was trained "
                f"on {shape}; evaluate on data of the training shape"
            )
        fake = self.sample(opts.n_fake, opts.seed, opts.sampler, temperature=opts.temperature)
        name = data or self.train_config.data
        e = EvalInput(
            self.model,
            real.to(self.device),
            fake.to(self.device),
            raw.log_prob,
            name,
            opts.seed,
            opts.k,
            raw,
            split,
            n_real,
            opts.features,
            opts.feature_weights,
            real_labels,
        )
        out = evaluate(e, opts.names)
        out.update(
            split=split,
            data=name,
            **({"sampler": opts.sampler} if opts.sampler != "prior" else {}),
            **({"temperature": opts.temperature} if opts.temperature != 1 else {}),
            n_real=len(real),
            n_fake=opts.n_fake,
            seed=opts.seed,
        )
        if write:
            atomic_write_json(self.path / EVAL, out)
        return Scores(out)  # a dict, shown as a table in a notebook
