"""assignments.py against notebooks the real nbgrader made (``nbgrader generate_assignment``
in its own cached venv): the released copy's cells read right, and the instructor's source
version, should it land in a student's folder, keeps its hidden tests and mark scheme
from the model and from the knowledge index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from nbgrader_course import HIDDEN_MARK, MARK_SCHEME, SOLUTION_MARK, Released, generate

from aiide_server_ext.assignments import cursor_in_solution, inspect, redact
from aiide_server_ext.knowledge.chunking import chunk_file


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Released:
    return generate(tmp_path_factory.mktemp("nbgrader") / "course")


def test_the_released_notebook_is_read_as_nbgrader_wrote_it(released: Released) -> None:
    nb = released.notebook()
    found = inspect(nb)
    assert found.graded and not found.notices
    roles = {r.grade_id: r for r in found.cells if r.grade_id}
    assert roles["squares"].solution and not roles["squares"].locked
    assert roles["test_squares"].tests and roles["test_squares"].locked
    assert roles["test_squares"].points == 2.0
    assert roles["intro"].locked and not roles["intro"].solution
    assert roles["why"].solution  # a manually graded answer
    # nbgrader itself took the hidden tests, the mark scheme and the solution out.
    text = json.dumps(nb)
    assert HIDDEN_MARK not in text and MARK_SCHEME not in text and SOLUTION_MARK not in text
    # The released stub is where completion stays off in tutor mode.
    solution = "".join(nb["cells"][1]["source"])
    at = solution.index("raise")
    assert cursor_in_solution(solution[:at], solution[at:])


def test_the_source_version_keeps_its_hidden_parts_from_the_model(released: Released) -> None:
    source = json.loads(released.source.read_text())
    shown, notices = redact(source)
    text = json.dumps(shown)
    assert HIDDEN_MARK not in text and MARK_SCHEME not in text
    assert "assert squares(1) == [1]" in text  # the visible test stays
    assert notices == []
    chunks = chunk_file("ps1/squares.ipynb", released.source.read_text())
    indexed = "\n".join(c.text for c in chunks)
    assert chunks and HIDDEN_MARK not in indexed and MARK_SCHEME not in indexed


def test_broken_metadata_in_a_released_notebook_fails_safe(
    released: Released, tmp_path: Path
) -> None:
    nb = released.notebook()
    nb["cells"][2]["metadata"]["nbgrader"]["points"] = "two"  # a hand edit gone wrong
    nb["cells"][1]["metadata"]["nbgrader"] = ["solution"]
    found = inspect(nb)
    assert len(found.notices) == 2
    assert "cell 2" in found.notices[0] and "cell 3" in found.notices[1]
    assert all(found.cells[i].locked and found.cells[i].hidden for i in (1, 2))
    shown, _ = redact(nb)
    assert "NotImplementedError" not in json.dumps(shown["cells"][1])
