"""``pushforward explore RUN``: one self-contained HTML page (inline script and data, nothing
fetched, opens from disk) with a timeline over the run's training snapshots, and the same
timeline as a GIF for slides (gif.py).

May import, of this package: errors, explore/gif, files, models, run_folder, training/frames.
"""

from __future__ import annotations

import base64
import html
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from ..errors import PushforwardError
from ..files import atomic_write_bytes, read_json, read_jsonl, script_json
from ..models import MODELS, Model
from ..run_folder import CONFIG, EXPLORER, HISTORY  # RUN/explore.html unless --out names another
from ..training.frames import read_snapshots

_TYPES = {torch.float32: "f4", torch.int32: "i4", torch.uint8: "u1"}


def _tensor(t: torch.Tensor) -> dict[str, Any]:
    """A tensor as the page reads it: its type, shape and little-endian bytes in base64."""
    if t.dtype not in _TYPES:
        t = t.to(torch.int32 if not t.is_floating_point() else torch.float32)
    raw = t.contiguous().numpy().tobytes()
    return {"t": _TYPES[t.dtype], "s": list(t.shape), "b": base64.b64encode(raw).decode()}


def _history(run: Path, names: tuple[str, ...]) -> dict[str, Any]:
    """The logged series the model plots (``Model.curves``), per logged step."""
    rows = read_jsonl(run / HISTORY) if (run / HISTORY).exists() else []
    num = lambda v: v if isinstance(v, (int, float)) and v == v and abs(v) < 1e30 else None  # noqa: E731
    rows = [r for r in rows if isinstance(r.get("step"), int)]
    return {
        "step": [r["step"] for r in rows],
        "series": {n: [num(r.get(n)) for r in rows] for n in names},
    }


def model_of(run: Path) -> tuple[str, type[Model]]:
    """The name and class of the model a run folder's config.json names."""
    config = read_json(run / CONFIG)
    name = config.get("model") if isinstance(config, dict) else None
    if name not in MODELS:
        raise PushforwardError(f"{run / CONFIG}: not a pushforward run's config; restore it")
    return name, MODELS[name]


def page(run: Path) -> str:
    """The explorer of ``run`` as one HTML string: the frames, and the model's panels that say
    how to draw them (models/drawing.py)."""
    name, cls = model_of(run)
    info, inputs, frames = read_snapshots(run, cls.panels)
    data = {
        "model": name,
        "unit": cls.step_unit,
        "info": info,
        "panels": cls.panels(info),
        "inputs": {k: _tensor(v) for k, v in inputs.items()},
        "frames": [
            {k: _tensor(v) if torch.is_tensor(v) else v for k, v in f.items()} for f in frames
        ],
        "history": _history(run, cls.curves),
    }
    blob = script_json(data)
    script = resources.files(__package__).joinpath("explorer.js").read_text()
    title = f"{name} on {info.get('data', '?')}: {len(frames)} frames of training"
    return _PAGE.format(
        title=html.escape(title),
        lead=html.escape(cls.lead),
        run=html.escape(str(run)),
        data=blob,
        script=script,
    )


def write_explorer(
    run: str | Path, out: str | Path | None = None, gif: str | Path | None = None
) -> list[Path]:
    """Write the explorer of ``run`` to ``out`` (default RUN/explore.html) and, if asked, its
    timeline to ``gif``; returns the paths written. Both names are checked before either is."""
    run = Path(run)
    path = Path(out) if out else run / EXPLORER
    if path.suffix.lower() not in (".html", ".htm"):
        raise PushforwardError(f"--out {path}: the explorer is a web page; name a FILE.html")
    if gif is not None and Path(gif).suffix.lower() != ".gif":
        raise PushforwardError(f"--gif {gif}: name a FILE.gif")
    if not run.is_dir():
        raise PushforwardError(f"{run}: run folder not found; pass the --out folder of a train run")
    atomic_write_bytes(path, page(run).encode())
    if gif is None:
        return [path]
    from .gif import write_gif

    return [path, write_gif(run, gif)]


_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:1180px;margin:1.5em auto;color:#222;padding:0 1em}}
h1{{font-size:1.4em;margin-bottom:.2em}} h3{{font-size:1em;margin:.2em 0}} figure h3{{min-height:2.5em}}
.bar{{display:flex;gap:1em;align-items:center;position:sticky;top:0;background:#fff;padding:.5em 0;z-index:1}}
#timeline{{flex:1}} button{{font-size:1em;padding:.3em 1em}}
#panels{{display:flex;flex-wrap:wrap;gap:1em}} figure{{margin:0;width:340px}}
canvas{{border:1px solid #ccc}} figcaption{{font-size:85%;color:#444}}
.legend{{display:flex;align-items:center;gap:.4em;font-size:80%}} .legend i{{flex:1;height:10px;border:1px solid #ccc}}
#latent-tools canvas{{image-rendering:pixelated}}
</style></head><body>
<h1>{title}</h1><p>{lead}. Drag the timeline or press Play; run folder <code>{run}</code>.</p>
<div class="bar"><button id="play">Play</button><input id="timeline" type="range" min="0" value="0"
aria-label="training frame"><span id="where"></span></div>
<div id="panels"></div>
<div id="latent-tools" hidden><h3>Decoded at the pointer <span id="zpos"></span></h3>
<canvas id="decoded" width="112" height="112"></canvas>
<h3>The path between the two points you clicked (10 steps)</h3>
<canvas id="path" width="680" height="72"></canvas></div>
<h3>Training curve (red: this frame)</h3><canvas id="curve" width="700" height="180"></canvas>
<script id="data" type="application/json">{data}</script>
<script>{script}</script></body></html>"""
