"""helpmodes.py and the course file's ``help`` section: modes per assignment, deadlines that
switch them by the clock, and every bad value refused at load with the field named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aiide_server_ext.hub.course import Course, CourseError, effective, load_courses
from aiide_server_ext.hub.helpmodes import HelpPolicy, strictest
from aiide_server_ext.hub.schedule import moment

DEADLINE = "2026-12-10T12:00:00+01:00"
AT = float(moment(DEADLINE, "t") or 0)


def course(help: Any) -> Course:
    return Course.parse("c1", {"groups": ["students"], "help": help})


def test_modes_per_assignment_and_course_wide() -> None:
    c = course(
        {
            "mode": "open",
            "assignments": [
                {"name": "ps1", "mode": "tutor", "deadline": DEADLINE},
                {"name": "final", "path": "exams/final*.ipynb", "mode": "exam"},
            ],
        }
    )
    h = c.help
    assert h.mode_for("ps1/squares.ipynb", AT - 1) == ("tutor", "ps1")
    assert h.mode_for("/ps1/squares.ipynb", AT - 1) == ("tutor", "ps1")
    assert h.mode_for("exams/final-a.ipynb") == ("exam", "final")
    assert h.mode_for("notes/scratch.ipynb") == ("open", "")
    assert h.mode_for("") == ("open", "")
    # The deadline switches the mode, at the second, from the clock alone.
    assert h.mode_for("ps1/squares.ipynb", AT) == ("open", "ps1")
    assert h.assignments[0].public(AT)["mode_now"] == "open"
    assert h.assignments[0].public(AT - 1)["deadline"] == "2026-12-10T11:00:00+00:00"


def test_after_deadline_and_defaults() -> None:
    h = HelpPolicy.parse(
        {
            "mode": "tutor",
            "assignments": [{"name": "ps2", "deadline": DEADLINE, "after_deadline": "exam"}],
        },
        "c",
    )
    assert h.mode_for("ps2/a.ipynb", AT - 1)[0] == "tutor"  # an assignment's default mode
    assert h.mode_for("ps2/a.ipynb", AT + 1)[0] == "exam"
    assert h.mode_for("other.ipynb")[0] == "tutor"  # the course's mode
    assert HelpPolicy.parse(None, "c").mode == "open"


def test_strictest_mode_wins_across_courses() -> None:
    assert strictest([("open", ""), ("tutor", "ps1")]) == ("tutor", "ps1")
    assert strictest([("exam", "final"), ("tutor", "ps1")]) == ("exam", "final")
    a = Course.parse("a", {"groups": ["g"], "help": {"mode": "tutor"}})
    b = Course.parse("b", {"groups": ["g"], "help": {"mode": "open"}})
    public = effective([a, b], ["g"], "s1").public()
    assert [h["course"] for h in public["help"]] == ["a", "b"]
    assert public["help"][0]["mode"] == "tutor"


def test_help_survives_run_time_changes_and_can_be_changed() -> None:
    c = course({"mode": "tutor", "markers": {"hidden": [["# <i>", "# </i>"]]},
                "assignments": [{"name": "ps1", "deadline": DEADLINE}]})  # fmt: skip
    same = c.with_changes({"budget": {"daily_tokens": 5}})
    assert same.help == c.help
    changed = c.with_changes({"help": {"mode": "exam"}})
    assert changed.help.mode == "exam"


@pytest.mark.parametrize(
    ("help", "words"),
    [
        ("tutor", "'help' must be a mapping"),
        ({"mode": "hints"}, "help.mode must be one of ['open', 'tutor', 'exam']"),
        ({"modes": "open"}, "help: unknown fields ['modes']"),
        ({"hint_levels": 0}, "help.hint_levels must be a whole number 1..10"),
        ({"assignments": {"ps1": "tutor"}}, "help.assignments must be a list"),
        ({"assignments": ["ps1"]}, "help.assignments[0] must be a mapping"),
        ({"assignments": [{"mode": "tutor"}]}, "help.assignments[0].name must be"),
        ({"assignments": [{"name": "a/b"}]}, "help.assignments[0].name must be"),
        ({"assignments": [{"name": "a"}, {"name": "a"}]}, "assignment 'a' is listed twice"),
        ({"assignments": [{"name": "a", "path": "/home/x"}]}, "help.assignments[0].path must be"),
        ({"assignments": [{"name": "a", "deadline": "friday"}]}, "not an ISO 8601 time"),
        ({"assignments": [{"name": "a", "mode": "closed"}]}, "help.assignments[0].mode must be"),
        (
            {"assignments": [{"name": "a", "after_deadline": "open"}]},
            "after_deadline needs a deadline",
        ),
        ({"assignments": [{"name": "a", "due": DEADLINE}]}, "unknown fields ['due']"),
        (
            {"markers": {"hidden": ["# BEGIN"]}},
            "help.markers.hidden must be a list of [begin, end]",
        ),
        (
            {"markers": {"hidden_tags": "staff"}},
            "help.markers.hidden_tags must be a list of cell tags",
        ),
        ({"markers": {"colour": []}}, "help.markers: unknown fields ['colour']"),
    ],
)
def test_bad_help_sections_are_refused_with_the_field(help: Any, words: str) -> None:
    with pytest.raises(CourseError) as e:
        course(help)
    assert words in str(e.value)
    assert "course 'c1'" in str(e.value)


def test_bad_help_in_a_course_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "c1.json").write_text(json.dumps({"groups": ["s"], "help": {"mode": "lenient"}}))
    with pytest.raises(CourseError) as e:
        load_courses(str(tmp_path))
    assert str(tmp_path / "c1.json") in str(e.value) and "help.mode" in str(e.value)


def test_the_students_server_reads_the_brokers_help_as_the_course_says_it(tmp_path: Path) -> None:
    """What ``api/me`` sends (``Effective.public``) is what the student's server applies."""
    from aiide_server_ext.hub.singleuser.tutoring import TutorGuard

    a = Course.parse("a", {"groups": ["g"], "help": {"mode": "open", "hint_levels": 4,
        "markers": {"hidden_tags": ["staff"]},
        "assignments": [{"name": "ps1", "deadline": "2020-01-01T00:00:00Z"},
                        {"name": "ps2", "mode": "tutor"}]}})  # fmt: skip
    b = Course.parse(
        "b", {"groups": ["g"], "help": {"assignments": [{"name": "ps2", "mode": "exam"}]}}
    )
    guard = TutorGuard(None, str(tmp_path))
    guard.learn(json.loads(json.dumps(effective([a, b], ["g"], "s1").public())))
    assert len(guard.policies) == 2
    assert guard.mode_for("ps1/x.ipynb") == ("open", "ps1", 4)  # its deadline has passed
    assert guard.mode_for("ps2/x.ipynb")[:2] == ("exam", "ps2")  # the stricter course
    assert "staff" in guard.markers.hidden_tags


def test_edits_refused_by_the_cells_role_and_the_mode(tmp_path: Path) -> None:
    """The tool policy's question, against a notebook on disk: locked cells in any mode,
    solution cells and new code cells in tutor mode, the whole file never."""
    from types import SimpleNamespace

    from aiide_server_ext.hub.singleuser.tutoring import TutorGuard

    nbg = {"schema_version": 3, "grade_id": "g"}
    nb = {"cells": [
        {"id": "s", "cell_type": "code", "source": "# YOUR CODE HERE", "metadata": {"nbgrader": {
            **nbg, "solution": True, "grade": False, "locked": False}}},
        {"id": "t", "cell_type": "code", "source": "assert f()", "metadata": {"nbgrader": {
            **nbg, "solution": False, "grade": True, "locked": True, "points": 1}}},
        {"id": "p", "cell_type": "code", "source": "x = 1", "metadata": {}},
    ]}  # fmt: skip
    (tmp_path / "ps1").mkdir()
    (tmp_path / "ps1" / "a.ipynb").write_text(json.dumps(nb))
    guard = TutorGuard(None, str(tmp_path))

    def why(name: str, **args: Any) -> str:
        return guard.edit_refusal(SimpleNamespace(name=name), {"path": "ps1/a.ipynb", **args}, "u")

    course = {"course": "c", "mode": "open", "assignments": [{"name": "ps1", "mode": "tutor"}]}
    for mode in ("open", "tutor"):
        guard.learn({"help": [{**course, "assignments": [{"name": "ps1", "mode": mode}]}]})
        assert "locked by the assignment" in why("replace_cell", cell_id="t")
        assert "locked by the assignment" in why("delete_cell", cell_id="t")
        assert "does not rewrite it as a file" in why("write_file")
        assert why("replace_cell", cell_id="p") == ""
        assert why("read_cell", cell_id="s") == ""
    assert "solution cell of ps1" in why("replace_cell", cell_id="s")
    assert "no new code cells" in why("insert_cell", after_id="s")
    assert why("insert_cell", after_id="s", cell_type="markdown") == ""
    guard.learn({"help": [{**course, "assignments": [{"name": "ps1", "mode": "open"}]}]})
    assert why("replace_cell", cell_id="s") == "" and why("insert_cell") == ""
    # A plain notebook, or none, is nobody's assignment.
    (tmp_path / "ps1" / "plain.ipynb").write_text(json.dumps({"cells": [nb["cells"][2]]}))
    refusal = guard.edit_refusal(
        SimpleNamespace(name="write_file"), {"path": "ps1/plain.ipynb"}, "u"
    )
    assert refusal == ""


def test_students_are_told_the_help_modes_before_anything_is_refused() -> None:
    from aiide_server_ext.hub.notices import help_lines

    c = course({"mode": "tutor", "assignments": [
        {"name": "ps1", "mode": "tutor", "deadline": DEADLINE, "after_deadline": "open"},
        {"name": "final", "mode": "exam"}]})  # fmt: skip
    assert help_lines(c, AT - 1) == [
        "assistant: tutor mode (hints, not answers)",
        "ps1: tutor mode (hints, not answers) until 2026-12-10T11:00:00+00:00, then open",
        "final: off (exam)",
    ]
    assert help_lines(c, AT)[1] == "ps1: open"
    assert help_lines(course(None)) == []


def test_a_help_change_replaces_the_files_and_null_goes_back_to_it() -> None:
    from aiide_server_ext.hub.course import merge_changes, validate_changes

    file = course({"mode": "tutor"})
    changed = merge_changes(file, {}, validate_changes({"help": {"mode": "open"}}))
    assert file.with_changes(changed).help.mode == "open"
    back = merge_changes(file, changed, validate_changes({"help": None}))
    assert "help" not in back and file.with_changes(back).help.mode == "tutor"
    with pytest.raises(CourseError, match=r"help\.mode"):
        validate_changes({"help": {"mode": "strict"}})
