"""``pushforward demo``: fit the GMM, the VAE and the GAN on embedded data, evaluate them, and
write a self-contained HTML report (figures inlined as base64) plus summary.json."""

from __future__ import annotations

import base64
import html
import time
from pathlib import Path
from typing import Any

import torch

from . import plots
from .data import Dataset, load_dataset
from .errors import PushforwardError
from .experiments.base import Settings
from .experiments.runner import Job, run_jobs
from .explore import write_explorer
from .files import atomic_write_bytes, atomic_write_json, safe_name
from .metrics import METRICS
from .models import MODELS, Encoder, ExactDensity
from .run import Run
from .training.frames import SNAPSHOTS
from .version import __version__

DEMO_DATA = ("ring8", "digits")  # the demo's sets: a 2-D mode set and the bundled digits
# (data, model, options): what the demo fits, each model on each set it declares options for
# (``Model.demo``). Budgets are sized for 2 CPU cores (< 3 minutes in all).
DEMO_PLAN: list[tuple[str, str, dict[str, Any]]] = [
    (data, name, dict(cls.demo[data]))
    for data in DEMO_DATA
    for name, cls in MODELS.items()
    if data in cls.demo
]

DEMO_IWAE_K = 250  # importance samples of the VAE's bound in the demo (eval's default: 1000)


def _img(png: bytes, alt: str) -> str:
    b64 = base64.b64encode(png).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}"><figcaption>{html.escape(alt)}</figcaption></figure>'


# the numbers a reader compares first, as each metric declares them, with the floor each has
# (what a perfect model scores); the rest are folded under "all numbers"
KEY_NUMBERS: dict[str, tuple[str, str | None]] = {
    key: (label, floor) for m in METRICS.values() for key, label, floor in m.key_numbers
}


def _value(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return html.escape("" if v is None else str(v))
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):  # kl_per_dim: a line, not a tall cell
        shown = " ".join(_value(x) for x in v[:6])
        return html.escape(f"{len(v)} values: {shown}{' …' if len(v) > 6 else ''}")
    return html.escape(str(v))


def _table(rows: dict[str, dict[str, Any]]) -> str:
    """The key numbers as rows, one column per model, each with its floor; every other number
    in a folded table of the same shape (three columns wide, whatever the number of metrics)."""
    models = list(rows)
    head = "".join(f"<th>{html.escape(m)}</th>" for m in models)

    def row(label: str, key: str, floor: str | None = None) -> str:
        cells = []
        for m in models:
            v, f = rows[m].get(key), rows[m].get(floor) if floor else None
            extra = (
                f" <small>(floor {_value(f)})</small>" if f is not None and v is not None else ""
            )
            cells.append(f"<td>{_value(v)}{extra}</td>")
        return f"<tr><th>{html.escape(label)}</th>{''.join(cells)}</tr>"

    present = {k for r in rows.values() for k in r}
    key = "".join(row(label, k, floor) for k, (label, floor) in KEY_NUMBERS.items() if k in present)
    skip = {"split", "data", "warning"} | set(KEY_NUMBERS)
    rest = "".join(
        row(k, k) for k in dict.fromkeys(k for r in rows.values() for k in r) if k not in skip
    )
    return (
        f"<table><tr><th></th>{head}</tr>{key}</table>"
        f"<details><summary>All numbers</summary><table><tr><th></th>{head}</tr>{rest}</table></details>"
    )


def _warnings(evals: dict[str, dict[str, Any]]) -> str:
    """The line training printed for each model that visibly failed, beside its numbers."""
    lines = [
        f"<p class=warn>warning: {html.escape(r['warning'])}</p>"
        for r in evals.values()
        if r.get("warning")
    ]
    return "".join(lines)


def _curves(run: Run) -> bytes | None:
    hist = run.history()
    if not hist:
        return None
    keys = [k for k in hist[-1] if k.endswith("loss") and k != "loss"] or ["loss"]
    series = {k: [h.get(k, float("nan")) for h in hist] for k in keys}
    ylabel = MODELS[run.model_name].curve_label
    return plots.curve_bytes(
        [h["step"] for h in hist], series, ylabel, f"{run.model_name}: training"
    )


def _explorers(out: Path, runs: dict[str, Run]) -> str:
    """Each run's explorer (``pushforward explore``) beside the report, and links to them."""
    links = []
    for name, run in runs.items():
        if (run.path / SNAPSHOTS).is_dir():
            page = out / "explore" / f"{name}-{safe_name(run.train_config.data, keep='-_')}.html"
            write_explorer(run.path, page)
            links.append(f'<a href="{html.escape(page.relative_to(out).as_posix())}">{name}</a>')
    if not links:
        return ""
    return f"<p class=explore>Replay the training, frame by frame: {' · '.join(links)}</p>"


def _section(
    ds: Dataset, runs: dict[str, Run], evals: dict[str, dict[str, Any]], explorers: str
) -> str:
    ref = ds.train[:20000]
    points = ds.kind == "points"
    figs = []
    shown = ds.test if ds.test is not None else ds.train
    if points:
        figs.append(
            _img(
                plots.scatter_bytes(shown[:1000], ref, "data (test)", ds.log_prob),
                "data: 1,000 test points",
            )
        )
    else:
        figs.append(_img(plots.grid_figure(shown[:64], "data"), "data: 64 test images"))
    for name, run in runs.items():
        x = run.sample(1000 if points else 64, seed=0)
        figs.append(
            _img(
                plots.samples_figure(x, ref, f"{name} samples", ds.log_prob),
                f"{name}: samples — {MODELS[name].explain}",
            )
        )
        if points and isinstance(run.model, ExactDensity):
            lp = lambda z, m=run.model: m.log_prob(z.to(m.device))  # noqa: E731
            figs.append(
                _img(plots.density_bytes(lp, ref, f"{name} density"), f"{name}: its density")
            )
        if isinstance(run.model, Encoder):
            z, labels = run.latents()
            figs.append(
                _img(
                    plots.latent_bytes(z, labels, f"{name}: latent means"),
                    f"{name}: encoder means of test data",
                )
            )
        curve = _curves(run)
        if curve:
            figs.append(_img(curve, f"{name}: training curve"))
    source = f"source: {ds.source}" if ds.source != "generated" else "generated (seeded)"
    return (
        f"<h2>{html.escape(ds.name)}</h2><p>{len(ds.train):,} training examples of shape "
        f"{'x'.join(map(str, ds.shape))}; {html.escape(source)}.</p>{explorers}"
        f"<div class=figs>{''.join(figs)}</div>{_warnings(evals)}{_table(evals)}"
    )


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title><style>
body{{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}}
.figs{{display:flex;flex-wrap:wrap}} figure{{margin:4px}} .figs img{{height:260px;border:1px solid #ddd}}
figcaption{{font-size:80%;max-width:300px}} .warn{{color:#a00;font-weight:bold}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}
th:first-child{{text-align:left}} small{{color:#666}} details{{margin-bottom:2em}} .explore{{font-size:110%}}
</style></head><body><h1>{title}</h1>
<p>A simple Gaussian base distribution pushed forward through a map approximates complex data
(arXiv 2503.01898). The Gaussian mixture is the explicit baseline: its density is written down and
fitted by EM. The VAE and the GAN push z ~ N(0, I) through a neural network; their densities are
never written down. All numbers are on each set's held-out test split.</p>
<ul><li><code>nll_nats</code>: average negative log-likelihood (exact, GMM; lower is better).</li>
<li><code>elbo</code>: the VAE's evidence lower bound on log p(x), nats per example (higher is
better), = <code>recon_nats</code> - <code>kl_nats</code>. On digits it is a bound for binarized
pixels, not comparable to the GMM's continuous density.</li>
<li><code>true_nll_nats</code>: model samples scored under the true density (2-D sets with a known
density); <code>true_entropy_nats</code> is what real test points score, the floor.</li>
<li><code>modes</code>, <code>hq_fraction</code>, <code>reverse_kl_modes</code>: modes captured,
fraction of samples within 3 standard deviations of a mode, KL of the mode histogram from uniform
(PacGAN's definitions, 2,500 samples).</li>
<li>For the VAE <code>nll_nats</code> is the importance-weighted bound with <code>iwae_k</code>
samples (an upper bound on the true NLL).</li>
<li><code>mmd</code> (squared, Gaussian kernel, median bandwidth) and <code>w2</code> (exact
2-Wasserstein): distances between samples and test points, on 2-D data.</li>
<li><code>fd</code>, <code>precision</code>, <code>recall</code>, <code>density</code>,
<code>coverage</code>, <code>class_kl</code>: in the features of a classifier trained on the
data set (accuracy in <code>classifier_accuracy</code>); the <code>_floor</code> columns score a
training sample against the test sample, what a perfect model would reach.</li>
<li><code>active_units</code>, <code>kl_per_dim</code>, <code>mutual_info</code>,
<code>agg_posterior_kl</code>, <code>prior_holes</code>: how the VAE uses its latent space and how
far its aggregate posterior is from the N(0, I) prior; <code>prior_holes</code> is the fraction of
prior samples landing where the aggregate posterior is thinner than at 99% of its own samples.</li></ul>
{sections}<p>pushforward {version}, torch {torch}, {seconds:.0f} s on {device}.</p></body></html>"""


def _fit_all(
    out: Path,
    plan: list[tuple[str, str, dict[str, Any]]],
    eval_options: dict[str, Any],
    settings: Settings,
) -> tuple[dict[str, dict[str, Run]], dict[str, dict[str, Any]]]:
    """Train and evaluate every (data, model, options) of the plan into out/runs/, afresh."""
    jobs = [
        # the folder's name is the data's name made safe: a path in it ("../x") cannot leave out/
        Job(
            model,
            str(out / "runs" / f"{model}-{safe_name(data, keep='-_@')}"),
            {**o, "data": data},
            "all",
            eval_options,
        )
        for data, model, o in plan
    ]
    scores = run_jobs(jobs, settings, "models", reuse=False)
    summary: dict[str, dict[str, Any]] = {}
    runs: dict[str, dict[str, Run]] = {}
    for (data, model, _), job, res in zip(plan, jobs, scores, strict=True):
        summary.setdefault(data, {})[model] = res
        runs.setdefault(data, {})[model] = Run.load(job.folder, settings.device)
    return runs, summary


def _write(
    out: Path,
    title: str,
    runs: dict[str, dict[str, Run]],
    summary: dict[str, Any],
    json_name: str,
    seconds: float,
) -> Path:
    sections = "".join(
        _section(
            next(iter(runs[d].values())).raw_data, runs[d], summary[d], _explorers(out, runs[d])
        )
        for d in runs
    )
    threads = torch.get_num_threads()
    page = PAGE.format(
        title=html.escape(title),
        sections=sections,
        version=__version__,
        torch=torch.__version__,
        seconds=seconds,
        device=f"CPU, {threads} thread{'s' if threads > 1 else ''}"
        if not torch.cuda.is_available()
        else torch.cuda.get_device_name(),
    )
    atomic_write_bytes(out / "report.html", page.encode())
    atomic_write_json(out / json_name, summary)
    return out / "report.html"


def run_demo(out: Path, plan: list[tuple[str, str, dict[str, Any]]] | None = None) -> Path:
    """Fit, evaluate and report every (data, model) of the plan into ``out``; returns report.html."""
    start = time.perf_counter()
    runs, summary = _fit_all(out, plan or DEMO_PLAN, {"k": DEMO_IWAE_K}, Settings(device="cpu"))
    return _write(
        out, "pushforward demo", runs, summary, "summary.json", time.perf_counter() - start
    )


def run_bench(
    out: Path,
    data: str,
    models: list[str],
    minutes: float,
    *,
    seed: int = 0,
    k: int = 1000,
    n_real: int | None = None,
    device: str = "auto",
    data_dir: str | None = None,
    test_data: str | None = None,
) -> Path:
    """Train each model for the same wall-clock budget on ``data``, evaluate all that applies,
    and write report.html and report.json."""
    start = time.perf_counter()
    ds = load_dataset(data, data_dir, test_data)
    if ds.test is None:  # checked now, not after every model has trained
        raise PushforwardError(
            f"--data {data}: bench scores each model on held-out data, and this set has none; "
            "name it with --test-data DATA"
        )
    held = {"test_data": test_data} if test_data else {}
    plan = [
        (data, m, {**MODELS[m].bench_options(ds), "minutes": minutes, "seed": seed, **held})
        for m in models
    ]
    settings = Settings(device=device, data_dir=data_dir)
    runs, summary = _fit_all(out, plan, {"seed": seed, "k": k, "n_real": n_real}, settings)
    title = f"pushforward bench: {data}, {minutes:g} minute(s) per model"
    return _write(out, title, runs, summary, "report.json", time.perf_counter() - start)
