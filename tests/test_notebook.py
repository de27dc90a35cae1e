"""A run shows itself in a notebook: the run as a card (model, data, training length, key
numbers beside their floors, its samples), its scores as a table, its explorer inline, its
training as a progress widget; an experiment's results as its tables and figures."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pushforward


def test_a_run_its_scores_and_its_explorer_display_as_html(tmp_path: Path) -> None:
    run = pushforward.train(
        "gmm", data="ring8", components=8, snapshots=3, out=str(tmp_path / "m"), progress=False
    )
    before = run._repr_html_()
    assert "<b>gmm</b> on <b>ring8</b>" in before and "run.evaluate()" in before
    assert "data:image/png;base64," in before and "run.explore()" in before
    scores = run.evaluate(["nll", "modes"])
    assert isinstance(scores, dict) and scores["modes"] == 8
    table = scores._repr_html_()
    assert "modes captured" in table and f"{scores['nll_nats']:.4g}" in table
    card = run._repr_html_()  # now with the eval.json it wrote
    assert "NLL, nats (lower is better)" in card and f"{scores['nll_nats']:.4g}" in card
    assert json.loads((tmp_path / "m" / "eval.json").read_text()) == dict(scores)

    explorer = run.explore()
    shown = explorer._repr_html_()
    assert shown.startswith('<iframe srcdoc="')
    page = html.unescape(shown.split('srcdoc="')[1].split('" style=')[0])
    assert page == explorer.page and "EM iteration" in page
    assert "http://" not in page and "https://" not in page and "<script src" not in page
    saved = explorer.save(tmp_path / "page.html")
    assert saved.read_text() == page


def test_a_run_displays_itself_in_a_jupyter_kernel(tmp_path: Path) -> None:
    import nbformat

    from .notebooks import execute, outputs

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import pushforward\n"
            "run = pushforward.train('gmm', data='ring8', components=8, out='m', snapshots=2)\n"
            "run"
        ),
        nbformat.v4.new_code_cell("run.evaluate(['modes'])"),
        nbformat.v4.new_code_cell("run.explore(height=500)"),
    ]
    done = execute(nb, tmp_path, timeout=300)
    html_out = outputs(done, "text/html")
    assert len(html_out) == 3
    assert "<b>gmm</b> on <b>ring8</b>" in html_out[0] and "data:image/png" in html_out[0]
    assert "modes captured" in html_out[1]
    assert html_out[2].startswith("<iframe srcdoc=") and "height:500px" in html_out[2]
    # training in a cell draws no terminal control codes into the cell's text
    streams = "".join(
        o.get("text", "") for c in done.cells for o in c.get("outputs", []) if o.get("name")
    )
    assert "\x1b[" not in streams and "\r" not in streams
    # but a notebook progress bar: tqdm's widget
    assert outputs(done, "application/vnd.jupyter.widget-view+json")


def test_an_experiments_results_show_their_tables_and_figures(tmp_path: Path) -> None:
    from pushforward.experiments import Results
    from pushforward.experiments.base import md_table

    (tmp_path / "summary.md").write_text(
        "## Mode coverage\n\n" + md_table(["config", "modes"], [["plain", 3.5], ["r1", 8.0]])
    )
    import matplotlib.pyplot as plt

    plt.imsave(tmp_path / "modes.png", [[0.0, 1.0], [1.0, 0.0]])  # a figure the experiment drew
    shown = Results({"experiment": "mode-collapse", "seconds": 1.5}, tmp_path / "results.json")
    page = shown._repr_html_()
    assert "<h4>Mode coverage</h4>" in page
    assert "<th>config</th><th>modes</th>" in page and "<td>r1</td><td>8.000</td>" in page
    assert "---" not in page  # the table's rule is not a row
    assert page.count("data:image/png;base64,") == 1 and "modes.png" in page
    assert shown["seconds"] == 1.5 and shown.path.name == "results.json"
