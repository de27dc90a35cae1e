"""The HTML report ``demo`` and ``bench`` write: per data set, the data, each model's samples
(its density, latent means and training curve where it has them), links to the explorers, and
the numbers as a table, the key numbers first (as each metric declares them) with their floors.
Every figure is inlined as base64: the page opens from disk, alone.

May import the models' and metrics' registries, the Run handle, the explorer (and the cells
of a run's card, explore/card.py) and plots; imported by reports/__init__.py.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import torch

from .. import plots
from ..data import Dataset
from ..explore import write_explorer
from ..explore.card import value_html
from ..files import atomic_write_bytes, atomic_write_json, safe_name
from ..metrics import METRICS, key_numbers
from ..models import MODELS, Encoder, ExactDensity
from ..run import Run
from ..run_folder import SNAPSHOTS
from ..version import __version__


def _img(png: bytes, alt: str) -> str:
    b64 = base64.b64encode(png).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}"><figcaption>{html.escape(alt)}</figcaption></figure>'


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
                f" <small>(floor {value_html(f)})</small>"
                if f is not None and v is not None
                else ""
            )
            cells.append(f"<td>{value_html(v)}{extra}</td>")
        return f"<tr><th>{html.escape(label)}</th>{''.join(cells)}</tr>"

    present = {k for r in rows.values() for k in r}
    keys = key_numbers()
    key = "".join(row(label, k, floor) for k, (label, floor) in keys.items() if k in present)
    skip = {"split", "data", "warning"} | set(keys)
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
(arXiv 2503.01898). An explicit model writes its density down; an implicit one pushes z through a
neural network and never does. The models here:</p><ul>{models}</ul>
<p>All numbers are on each set's held-out test split:</p><ul>{glossary}</ul>
{sections}<p>pushforward {version}, torch {torch}, {seconds:.0f} s on {device}.</p></body></html>"""


def write_report(
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
    names = dict.fromkeys(m for r in runs.values() for m in r)
    page = PAGE.format(
        title=html.escape(title),
        models="".join(f"<li><b>{m}</b>: {html.escape(MODELS[m].explain)}.</li>" for m in names),
        glossary="".join(f"<li>{m.glossary}</li>" for m in METRICS.values() if m.glossary),
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
