"""helpuse.summary: the dashboard's rows from the broker's per-cell counts."""

from __future__ import annotations

from aiide_server_ext.hub.broker.helpuse import CSV_COLUMNS, summary
from aiide_server_ext.hub.course import Course


def test_rows_per_student_and_assignment_with_levels_capped() -> None:
    course = Course.parse("ds101", {"groups": ["s"], "help": {"hint_levels": 3}})
    rows = [
        ("alice", "ps1", "squares", 5, 0, 100),  # asked five times: level 3 of 3
        ("alice", "ps1", "why", 1, 1, 50),
        ("alice", "ps1", "", 0, 0, 900),  # tokens of the notebook, no cell
        ("bob", "ps1", "squares", 2, 0, 10),
        ("alice", "ps2", "cell-4", 0, 2, 0),  # fixes only: no hint level
    ]
    out = summary(course, rows)
    assert [(r["assignment"], r["student_id"]) for r in out] == [
        ("ps1", "alice"), ("ps1", "bob"), ("ps2", "alice"),
    ]  # fmt: skip
    alice = out[0]
    assert alice["help_hints"] == 6 and alice["help_max_hint_level"] == 3
    assert alice["cells"] == {"squares": 3, "why": 1} and alice["help_cells"] == 2
    assert alice["help_fixes"] == 1 and alice["help_tokens"] == 1050
    assert out[1]["help_max_hint_level"] == 2
    assert out[2]["help_max_hint_level"] == 0 and out[2]["help_fixes"] == 2
    assert out[2]["cells"] == {}
    assert CSV_COLUMNS[:2] == ["student_id", "assignment"]  # what nbgrader's export has
    assert set(CSV_COLUMNS) <= set(alice)
