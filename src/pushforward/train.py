"""Training: one entry point for every model, writing the run folder of INTERFACE.md.

Models fitted in closed form (the GMM's EM) declare no gradient ``phases`` and provide ``fit``;
the run folder, seeding, device, logging, checkpoint and samples are the same for every model.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from . import __version__, dist, plots
from .checkpoint import append_jsonl, atomic_write_json, save_tensors
from .config import TrainConfig, as_dict, resolve
from .errors import PushforwardError
from .models import MODELS
from .models.gmm import DEFAULT_EM_STEPS
from .runs import CHECKPOINTS, CONFIG, HISTORY, SAMPLES, Run, prepare_data, save_model


def _model_class(name: str) -> Any:
    if name not in MODELS:
        raise PushforwardError(f"model {name!r} is not known; choose one of {', '.join(MODELS)}")
    return MODELS[name]


def default_run_dir(model: str, data: str) -> Path:
    """runs/<model>-<data>, numbered when taken, so a new run never lands on an old one."""
    stem = f"{model}-" + "".join(
        c if c.isalnum() or c in "-_" else "_" for c in data.split("/")[-1]
    )
    path, i = Path("runs") / stem, 2
    while path.exists():
        path, i = Path("runs") / f"{stem}-{i}", i + 1
    return path


def _claim_run_dir(out: str | Path | None, model: str, data: str, overwrite: bool) -> Path:
    path = Path(out) if out else default_run_dir(model, data)
    if (path / CONFIG).exists() and not overwrite:
        raise PushforwardError(
            f"--out {path}: already holds a run; choose another --out or delete it"
        )
    if path.exists() and not path.is_dir():
        raise PushforwardError(f"--out {path}: is a file; choose a folder")
    try:
        (path / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PushforwardError(
            f"--out {path}: cannot create ({e.strerror}); choose a writable folder"
        ) from None
    (path / HISTORY).unlink(missing_ok=True)
    return path


def _fit_em(
    model: Any, x: torch.Tensor, tcfg: TrainConfig, run_dir: Path, progress: bool
) -> dict[str, Any]:
    """EM on the full training tensor, one metrics.jsonl row per iteration."""
    if tcfg.epochs is not None:
        raise PushforwardError(
            "--epochs does not apply to gmm (EM uses all data each step); use --steps"
        )
    if tcfg.precision != "fp32":
        raise PushforwardError(
            "--precision applies to network models; gmm's EM arithmetic is set by --dtype"
        )
    steps = tcfg.steps if tcfg.steps is not None else DEFAULT_EM_STEPS
    if steps < 1:
        raise PushforwardError(f"--steps {steps}: must be at least 1")
    bar = tqdm(
        total=steps,
        desc=f"gmm {tcfg.data}",
        disable=not progress or not dist.is_main(),
        leave=False,
    )
    start = time.perf_counter()

    def log(it: int, ll: float) -> None:
        bar.update(1)
        bar.set_postfix(loglik=f"{ll:.4f}")
        if dist.is_main():
            append_jsonl(
                run_dir / HISTORY,
                {
                    "step": it,
                    "epoch": it,
                    "loss": -ll,
                    "log_likelihood": ll,
                    "seconds": round(time.perf_counter() - start, 4),
                },
            )

    info = model.fit(
        x, max_iter=steps, generator=torch.Generator().manual_seed(tcfg.seed), callback=log
    )
    bar.close()
    info["seconds"] = time.perf_counter() - start
    return info


def fit(
    model_name: str,
    tcfg: TrainConfig,
    mcfg: Any,
    out: str | Path | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> Run:
    """Train ``model_name`` with resolved configs and write its run folder; returns the Run."""
    cls = _model_class(model_name)
    if not tcfg.data:
        raise PushforwardError(
            "--data is required, e.g. --data ring8 (see `pushforward data list`)"
        )
    device = dist.resolve_device(tcfg.device)
    data = prepare_data(tcfg)
    run_dir = _claim_run_dir(out, model_name, tcfg.data, overwrite)
    torch.manual_seed(tcfg.seed + dist.rank())
    model = cls(mcfg, data.shape).to(device)
    atomic_write_json(
        run_dir / CONFIG,
        {
            "model": model_name,
            "version": __version__,
            "torch": torch.__version__,
            "train": as_dict(tcfg),
            "model_config": as_dict(mcfg),
            "data": {
                "name": data.name,
                "kind": data.kind,
                "shape": list(data.shape),
                "n_train": len(data.train),
                "n_test": None if data.test is None else len(data.test),
                "source": data.source,
            },
            "device": str(device),
            "world_size": dist.world_size(),
        },
    )
    info = _fit_em(model, data.train.to(device), tcfg, run_dir, progress)
    if dist.is_main():
        save_model(run_dir, model_name, model, mcfg, info)
        ckpt = run_dir / CHECKPOINTS
        save_tensors(
            ckpt / "last.safetensors", {**model.state_dict(), "rng.torch": torch.get_rng_state()}
        )
        atomic_write_json(
            ckpt / "last.json",
            {
                "step": info["iterations"],
                "epoch": info["iterations"],
                "finished": True,
                "model": model_name,
                "version": __version__,
            },
        )
    run = Run(run_dir, model_name, model, tcfg, mcfg)
    run._data = data
    if dist.is_main():
        n = 1000 if data.kind == "points" else 64
        fake = run.sample(n, seed=tcfg.seed)
        png = plots.samples_figure(
            fake, data.train[:20000].cpu(), f"{model_name} samples", data.log_prob
        )
        plots.write(run_dir / SAMPLES, png)
    dist.barrier()
    return run


def train(
    model: str,
    data: str | None = None,
    out: str | Path | None = None,
    *,
    config_file: str | None = None,
    sets: list[str] | tuple[str, ...] = (),
    overwrite: bool = False,
    progress: bool = True,
    **options: Any,
) -> Run:
    """Train from Python with the CLI's options as keywords, e.g.
    ``pushforward.train("gmm", data="ring8", components=8)``."""
    cls = _model_class(model)
    if data is not None:
        options["data"] = data
    tcfg, mcfg = resolve((TrainConfig, cls.Config), options, config_file, list(sets))
    return fit(model, tcfg, mcfg, out, overwrite=overwrite, progress=progress)
