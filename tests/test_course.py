"""The course (docs/course/): every lesson runs top to bottom in a fresh kernel, its cells
asserting what the text claims, and draws its pictures; a lesson that went stale fails here.
The executed lessons are kept for the documentation site's build (tests/test_site.py): each runs
once, in whichever test needs it first."""

from __future__ import annotations

from pathlib import Path

import pytest

from .notebooks import outputs, site_hooks

COURSE = Path(__file__).parent.parent / "docs" / "course"
LESSONS = sorted(COURSE.glob("[0-9][0-9]_*.py"))


def test_the_course_has_its_lessons() -> None:
    assert [p.name[:2] for p in LESSONS] == [f"{i:02d}" for i in range(1, len(LESSONS) + 1)]
    assert LESSONS  # numbered from 01, none missing


@pytest.mark.heavy
@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_a_lesson_runs_and_draws(lesson: Path, lessons: Path) -> None:
    import jupytext
    import nbformat

    nb = jupytext.read(lesson)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and "By the end of this lesson you will" in first.source
    checks = [c for c in nb.cells if "check" in c.metadata.get("tags", [])]
    assert len(checks) >= 2  # two or more exercises, each answer checked
    # run where a reader opens it, docs/course/, beside the docs' figures (its runs land in a
    # scratch copy of that folder), here or by the site's build from the same sources
    done = nbformat.read(site_hooks().executed(lesson, lessons), as_version=4)
    pictures = outputs(done, "image/png") + [
        h for h in outputs(done, "text/html") if "data:image/png;base64," in h
    ]
    assert len(pictures) >= 2
