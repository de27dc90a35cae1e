"""The course (docs/course/): every lesson runs top to bottom in a fresh kernel, its cells
asserting what the text claims, and draws its pictures; a lesson that went stale fails here."""

from __future__ import annotations

from pathlib import Path

import pytest

from .notebooks import execute, outputs

COURSE = Path(__file__).parent.parent / "docs" / "course"
LESSONS = sorted(COURSE.glob("[0-9][0-9]_*.py"))


def test_the_course_has_its_lessons() -> None:
    assert [p.name[:2] for p in LESSONS] == [f"{i:02d}" for i in range(1, len(LESSONS) + 1)]
    assert LESSONS  # numbered from 01, none missing


@pytest.mark.heavy
@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_a_lesson_runs_and_draws(lesson: Path, tmp_path: Path) -> None:
    import jupytext

    nb = jupytext.read(lesson)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and "By the end of this lesson you will" in first.source
    checks = [c for c in nb.cells if "check" in c.metadata.get("tags", [])]
    assert len(checks) >= 2  # two or more exercises, each answer checked
    # run where a reader opens it, docs/course/, beside the docs' figures; its runs land in a
    # scratch copy of that folder
    here = tmp_path / "docs" / "course"
    here.mkdir(parents=True)
    (tmp_path / "docs" / "experiments").symlink_to(COURSE.parent / "experiments")
    done = execute(nb, here, timeout=300)  # under 5 minutes on 2 cores
    assert len(outputs(done, "image/png")) >= 2
