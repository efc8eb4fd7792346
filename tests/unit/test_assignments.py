"""assignments.py: nbgrader cells and regions read, redacted, and broken metadata failing safe."""

from __future__ import annotations

from typing import Any

from aiide_server_ext.assignments import (
    DEFAULT_MARKERS,
    cursor_in_solution,
    inspect,
    redact,
    redact_source,
)


def cell(source: str, nbgrader: Any = None, cell_type: str = "code", **meta: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = dict(meta)
    if nbgrader is not None:
        metadata["nbgrader"] = nbgrader
    out: dict[str, Any] = {"cell_type": cell_type, "id": f"c{abs(hash(source)) % 10_000}",
                           "metadata": metadata, "source": source}  # fmt: skip
    if cell_type == "code":
        out["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "out of " + source}]
    return out


SOLUTION = {
    "solution": True,
    "grade": False,
    "locked": False,
    "grade_id": "sq",
    "schema_version": 3,
}
TESTS = {"solution": False, "grade": True, "locked": True, "points": 2, "grade_id": "t_sq",
         "schema_version": 3}  # fmt: skip
HIDDEN = (
    "assert square(2) == 4\n### BEGIN HIDDEN TESTS\nassert square(7) == 49\n### END HIDDEN TESTS\n"
)


def notebook(*cells: dict[str, Any]) -> dict[str, Any]:
    return {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def test_roles_from_nbgrader_metadata() -> None:
    nb = notebook(
        cell(
            "intro",
            {"locked": True, "solution": False, "grade": False, "grade_id": "i"},
            "markdown",
        ),
        cell("def square(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()", SOLUTION),
        cell(HIDDEN, TESTS),
        cell("x = 1"),
    )
    found = inspect(nb)
    assert found.graded and not found.notices
    intro, sol, tests, plain = found.cells
    assert intro.locked and not intro.solution and not intro.hidden
    assert sol.solution and not sol.locked and sol.grade_id == "sq"
    assert tests.tests and tests.locked and tests.hidden_regions and tests.points == 2.0
    assert not (plain.solution or plain.locked or plain.hidden)


def test_a_plain_notebook_is_not_an_assignment() -> None:
    assert not inspect(notebook(cell("x = 1"), cell("# Title", cell_type="markdown"))).graded


def test_hidden_tests_and_their_outputs_are_withheld() -> None:
    nb = notebook(cell(HIDDEN, TESTS), cell("y = 2"))
    shown, notices = redact(nb)
    text = shown["cells"][0]["source"]
    assert "square(7)" not in text and "square(2) == 4" in text
    assert "withheld from the assistant: hidden tests" in text
    assert shown["cells"][0]["outputs"] == []  # a failing hidden test's traceback quotes it
    assert shown["cells"][1]["outputs"]  # other cells keep theirs
    assert "square(7)" in nb["cells"][0]["source"]  # the original is untouched
    assert notices == []


def test_an_unclosed_hidden_region_is_withheld_to_the_end() -> None:
    text = "a = 1\n### BEGIN HIDDEN TESTS\nsecret = 42\nmore = 43\n"
    out = redact_source(text)
    assert "secret" not in out and "more" not in out and out.startswith("a = 1\n")


def test_instructor_tag_and_course_markers() -> None:
    markers = DEFAULT_MARKERS.plus(
        {"hidden": [["# <instructor>", "# </instructor>"]], "hidden_tags": ["staff"]}
    )
    nb = notebook(
        cell("answer = 42", tags=["staff"]),
        cell("x = 1\n# <instructor>\nkey = 7\n# </instructor>\ny = 2"),
    )
    shown, _ = redact(nb, markers)
    assert "42" not in shown["cells"][0]["source"]
    assert "key = 7" not in shown["cells"][1]["source"] and "y = 2" in shown["cells"][1]["source"]
    # Without the course's markers the same notebook shows both.
    plain, _ = redact(nb)
    assert "key = 7" in plain["cells"][1]["source"]


def test_broken_metadata_is_locked_and_hidden_with_a_notice() -> None:
    broken = [
        "not a mapping",
        {"solution": "yes", "grade_id": "a"},
        {"grade": True, "solution": False, "locked": True, "grade_id": "g"},  # no points
        {"grade": True, "points": "ten", "grade_id": "g"},
        {"solution": True},  # no grade_id
        {"locked": True, "points": -1, "grade_id": "g"},
    ]
    for meta in broken:
        nb = notebook(cell("answer = 42", meta), cell("ok = 1"))
        found = inspect(nb)
        role = found.cells[0]
        assert role.locked and role.hidden, meta
        assert found.notices and "cell 1" in found.notices[0] and "locked" in found.notices[0]
        shown, notices = redact(nb)
        assert "42" not in shown["cells"][0]["source"], meta
        assert "broken nbgrader metadata" in shown["cells"][0]["source"]
        assert notices == found.notices
        assert shown["cells"][1]["source"] == "ok = 1"


def test_malformed_notebooks_never_raise() -> None:
    samples: list[Any] = [None, [], {"cells": "x"}, {"cells": [None, 3, {"source": ["a", 1]}]}]
    for nb in samples:
        found = inspect(nb)
        redact(nb if isinstance(nb, dict) else {})
        assert isinstance(found.cells, list)
    found = inspect({"cells": [None, {"metadata": "x", "source": 5}]})
    assert found.cells[0].hidden and found.cells[0].locked
    shown, _ = redact({"cells": [None]})
    assert "withheld" in shown["cells"][0]["source"]


def test_cursor_in_solution() -> None:
    assert cursor_in_solution("def f():\n    ### BEGIN SOLUTION\n    ret", "\n    ### END SOLUTION")
    assert not cursor_in_solution("### BEGIN SOLUTION\nx\n### END SOLUTION\nprint(", ")")
    released = "import math\n\ndef square(x):\n    # YOUR CODE HERE\n    "
    assert cursor_in_solution(released, "\n    raise NotImplementedError()")
    assert not cursor_in_solution("import math\n\nprint(", ")")
