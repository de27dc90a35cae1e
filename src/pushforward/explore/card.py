"""How a run and its numbers show themselves in a notebook, where Jupyter calls ``_repr_html_``:
a run is a card (its model and what it is, the data, how long it trained, its key numbers beside
their floors, the samples picture training drew, and how to replay its training); its scores are
a table, the key numbers first as the metrics declare them; its explorer is the same
self-contained page as ``pushforward explore`` writes, inline in the cell; an experiment's results
are its summary's tables above its figures. Nothing is fetched.

May import the metric and model registries, the run folder's names and the file I/O; imported
by run.py and by the reports (reports/page.py draws its cells with ``value_html``).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from ..files import atomic_write_bytes, read_json
from ..metrics import key_numbers
from ..models import MODELS
from ..run_folder import EVAL, EXPLORER, SAMPLES, SNAPSHOTS, WEIGHTS_META

_STYLE = (
    "<style>.pf-card td,.pf-card th{padding:2px 8px;text-align:right;border-bottom:1px solid #ddd}"
    ".pf-card th:first-child{text-align:left} .pf-card small{color:#666}</style>"
)


def value_html(v: Any) -> str:
    """One number (or list of numbers) as a table cell shows it."""
    if isinstance(v, bool) or v is None:
        return html.escape("" if v is None else str(v))
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):  # kl_per_dim: a line, not a tall cell
        shown = " ".join(value_html(x) for x in v[:6])
        return html.escape(f"{len(v)} values: {shown}{' …' if len(v) > 6 else ''}")
    return html.escape(str(v))


def scores_table(scores: dict[str, Any]) -> str:
    """The key numbers (as each metric declares them) with their floors, then every other
    number folded underneath."""
    keys = key_numbers()
    rows = []
    for key, (label, floor) in keys.items():
        if key in scores:
            bound = scores.get(floor) if floor else None
            extra = f" <small>(floor {value_html(bound)})</small>" if bound is not None else ""
            rows.append(
                f"<tr><th>{html.escape(label)}</th><td>{value_html(scores[key])}{extra}</td></tr>"
            )
    shown = set(keys) | {f for _, f in keys.values() if f}
    rest = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{value_html(v)}</td></tr>"
        for k, v in scores.items()
        if k not in shown
    )
    return (
        f"{_STYLE}<table class=pf-card>{''.join(rows)}</table>"
        f"<details><summary>all {len(scores)} numbers</summary><table class=pf-card>{rest}"
        "</table></details>"
    )


class Scores(dict):  # type: ignore[type-arg]
    """What ``Run.evaluate`` returns: the flat eval.json dict, shown as a table in a notebook."""

    def _repr_html_(self) -> str:
        return scores_table(self)


def _trained(path: Path) -> str:
    """How long the run trained, as model.json records it."""
    meta = read_json(path / WEIGHTS_META) if (path / WEIGHTS_META).exists() else {}
    info = meta.get("info", {}) if isinstance(meta, dict) else {}
    if not isinstance(info, dict):
        return ""
    steps = info.get("steps", info.get("iterations"))
    seconds = info.get("seconds")
    parts = [f"{steps:,} steps" if isinstance(steps, int) else ""]
    parts.append(f"{seconds:.0f} s" if isinstance(seconds, (int, float)) else "")
    return ", ".join(p for p in parts if p)


def run_card(run: Any) -> str:
    """A run (``pushforward.Run``) as one HTML card."""
    path, name, data = Path(run.path), run.model_name, run.train_config.data
    explain = MODELS[name].explain if name in MODELS else ""
    head = (
        f"<b>{html.escape(name)}</b> on <b>{html.escape(data)}</b> "
        f"<small>({html.escape(_trained(path))}; {html.escape(str(path))})</small><br>"
        f"<small>{html.escape(explain)}</small>"
    )
    scores = read_json(path / EVAL) if (path / EVAL).exists() else None
    numbers = (
        scores_table(scores)
        if isinstance(scores, dict)
        else "<p><small>No eval.json yet: <code>run.evaluate()</code> scores it.</small></p>"
    )
    picture = _png(path / SAMPLES, "max-height:300px") if (path / SAMPLES).exists() else ""
    replay = ""
    if (path / SNAPSHOTS).is_dir():
        page = " (or open explore.html)" if (path / EXPLORER).exists() else ""
        replay = (
            f"<p><small><code>run.explore()</code> replays its training here{page}.</small></p>"
        )
    warning = run.warning()
    warn = f"<p style='color:#a00'>warning: {html.escape(warning)}</p>" if warning else ""
    return (
        f"<div class=pf-card>{head}{warn}<div style='display:flex;gap:1em;align-items:flex-start'>"
        f"<div>{numbers}</div>{picture}</div>{replay}</div>"
    )


def _markdown_html(text: str) -> str:
    """The Markdown an experiment's summary holds (headings, pipe tables, paragraphs) as HTML."""
    out: list[str] = []
    rows: list[list[str]] = []

    def flush() -> None:
        if rows:
            head, body = rows[0], [r for r in rows[1:] if not set("".join(r)) <= set("-: ")]
            cells = "".join(f"<th>{html.escape(c)}</th>" for c in head)
            trs = "".join(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body
            )
            out.append(f"<table class=pf-card><tr>{cells}</tr>{trs}</table>")
            rows.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
            continue
        flush()
        if line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")) + 2, 6)
            out.append(f"<h{level}>{html.escape(line.lstrip('#').strip())}</h{level}>")
        elif line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    flush()
    return "".join(out)


def _png(path: Path, style: str) -> str:
    b64 = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.stem)}" style="{style}" src="data:image/png;base64,{b64}">'


def results_card(name: str, folder: Path, seconds: Any) -> str:
    """An experiment's results: its summary's tables, then every figure it drew."""
    summary = folder / "summary.md"
    tables = _markdown_html(summary.read_text()) if summary.exists() else ""
    figures = "".join(
        f"<figure>{_png(f, 'max-width:100%')}<figcaption><small>{html.escape(f.name)}"
        "</small></figcaption></figure>"
        for f in sorted(folder.glob("*.png"))
    )
    return (
        f"{_STYLE}<div class=pf-card><b>{html.escape(name)}</b> <small>({seconds} s; "
        f"{html.escape(str(folder))})</small>{tables}{figures}</div>"
    )


class Explorer:
    """A run's explorer page shown inline in a notebook cell (an iframe holding the whole
    page: its script and data travel with it, nothing is fetched); ``save`` writes it."""

    def __init__(self, page: str, height: int = 900) -> None:
        self.page, self.height = page, height

    def _repr_html_(self) -> str:
        doc = html.escape(self.page, quote=True)
        return (
            f'<iframe srcdoc="{doc}" style="width:100%;height:{self.height}px;border:0" '
            'title="pushforward explorer"></iframe>'
        )

    def save(self, path: str | Path) -> Path:
        atomic_write_bytes(Path(path), self.page.encode())
        return Path(path)
