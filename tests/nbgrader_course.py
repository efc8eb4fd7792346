"""A small nbgrader course made by the real nbgrader (its own cached venv, never .venv:
it brings notebook 7 and server extensions of its own that would change every lab the
tests start): one assignment ``ps1`` with a solution cell, visible and hidden tests, a
locked cell and a manually graded answer, released by ``nbgrader generate_assignment``."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optional import IN_CI, require

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "tools" / "install_nbgrader.sh"
#: Words of the hidden tests that must never reach a model.
HIDDEN_MARK = "assert squares(7)[6] == 49  # hidden-sentinel"
SOLUTION_MARK = "return [i * i for i in range(1, n + 1)]  # solution-sentinel"
MARK_SCHEME = "mark-scheme-sentinel"


def _venv() -> Path | None:
    """The cached nbgrader venv, made by tools/install_nbgrader.sh (under CI: made now)."""
    from glob import glob

    done = sorted(glob(str(Path.home() / ".cache" / "aiide" / "nbgrader" / "*" / ".complete")))
    if done:
        return Path(done[-1]).parent
    if IN_CI:
        out = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True, timeout=900)
        if out.returncode == 0:
            return Path(out.stdout.strip().splitlines()[-1])
    return None


def nbgrader_bin() -> Path:
    """The ``nbgrader`` command; skips (fails under CI) when it is not installed."""
    venv = _venv()
    require("nbgrader", venv is not None, "nbgrader is not installed in its cached venv")
    assert venv is not None
    return venv / "bin" / "nbgrader"


def _cell(cell_type: str, source: str, **nbgrader: Any) -> dict[str, Any]:
    cell: dict[str, Any] = {"cell_type": cell_type, "metadata": {}, "source": source}
    if nbgrader:
        cell["metadata"]["nbgrader"] = {"schema_version": 3, **nbgrader}
    if cell_type == "code":
        cell.update(outputs=[], execution_count=None)
    return cell


def source_notebook() -> dict[str, Any]:
    cells = [
        _cell("markdown", "# Problem set 1\nWrite `squares(n)`.", locked=True, solution=False,
              grade=False, grade_id="intro"),
        _cell("code", "def squares(n):\n    \"\"\"The squares of 1..n.\"\"\"\n"
              "    ### BEGIN SOLUTION\n    " + SOLUTION_MARK + "\n    ### END SOLUTION",
              solution=True, grade=False, locked=False, grade_id="squares"),
        _cell("code", "assert squares(1) == [1]\n### BEGIN HIDDEN TESTS\n" + HIDDEN_MARK
              + "\n### END HIDDEN TESTS", solution=False, grade=True, locked=True, points=2,
              grade_id="test_squares"),
        _cell("markdown", "Why is it O(n)?\n\n=== BEGIN MARK SCHEME ===\n" + MARK_SCHEME
              + "\n=== END MARK SCHEME ===", solution=False, grade=False, locked=True,
              task=True, points=1, grade_id="why_q"),
        _cell("markdown", "YOUR ANSWER HERE", solution=True, grade=True, locked=False,
              points=1, grade_id="why"),
        _cell("code", "print(squares(3))"),
    ]  # fmt: skip
    for i, cell in enumerate(cells):
        cell["id"] = f"cell-{i + 1}"
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


@dataclass
class Released:
    course: Path
    source: Path
    release: Path

    def notebook(self) -> dict[str, Any]:
        return dict(json.loads(self.release.read_text()))


def generate(course: Path) -> Released:
    """``nbgrader generate_assignment ps1`` in a new course directory."""
    nbgrader = nbgrader_bin()
    source = course / "source" / "ps1" / "squares.ipynb"
    source.parent.mkdir(parents=True)
    source.write_text(json.dumps(source_notebook(), indent=1))
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\nc.CourseDirectory.course_id = 'ds101'\n"
    )
    # nbgrader runs its venv's ``alembic`` by name for the gradebook.
    env = {**os.environ, "PATH": f"{nbgrader.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    out = subprocess.run(
        [str(nbgrader), "generate_assignment", "ps1", "--force"],
        cwd=course,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    release = course / "release" / "ps1" / "squares.ipynb"
    if out.returncode != 0 or not release.exists():
        raise RuntimeError(f"nbgrader generate_assignment failed:\n{out.stdout}\n{out.stderr}")
    return Released(course, source, release)
