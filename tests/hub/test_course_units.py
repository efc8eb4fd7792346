"""Course files and run-time changes, without a hub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aiide_server_ext.hub.broker.relay import UsageCounter
from aiide_server_ext.hub.course import (
    Course,
    CourseError,
    effective,
    load_courses,
    validate_changes,
)

from .harness import COURSE

pytestmark = pytest.mark.xdist_group("hub")


def test_a_course_loads_from_yaml_and_json_files(tmp_path: Path) -> None:
    (tmp_path / "ds101.json").write_text(json.dumps(COURSE))
    (tmp_path / "ml200.yaml").write_text("groups: [ml]\ninstructors: [staff]\nmodels: [claude]\n")
    courses = load_courses(str(tmp_path))
    assert sorted(courses) == ["ds101", "ml200"]
    assert courses["ml200"].groups == {"ml"}
    assert courses["ds101"].budget == {"daily_tokens": 100000, "weekly_tokens": 400000}


def test_a_bad_course_file_names_the_file_and_field(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("groups: [a]\nbudget: {daily_tokens: lots}\n")
    with pytest.raises(CourseError, match=r"bad.yaml: budget.daily_tokens"):
        load_courses(str(tmp_path))


def test_only_runtime_fields_change_at_run_time() -> None:
    with pytest.raises(CourseError, match="cannot change at run time"):
        validate_changes({"groups": ["everyone"]})
    with pytest.raises(CourseError, match=r"exam\.disable"):
        validate_changes({"exam": {"disable": ["kernels"]}})


def test_exam_mode_refuses_only_the_disabled_features_with_the_message() -> None:
    course = Course.parse("ds101", COURSE).with_changes(
        {"exam": {"enabled": True, "disable": ["chat"], "message": "Exam until noon"}}
    )
    policy = effective([course], ["students"])
    assert policy.refusal("chat") == ("exam_mode", "ds101: Exam until noon")
    assert policy.refusal("complete") is None
    assert effective([course], ["instructors"]).refusal("chat") is None


def test_the_strictest_course_wins_for_budgets_and_models() -> None:
    a = Course.parse("a", {"groups": ["g1"], "budget": {"daily_tokens": 10}, "models": ["m1"]})
    b = Course.parse("b", {"groups": ["g2"], "budget": {"daily_tokens": 5}})
    policy = effective([a, b], ["g1", "g2"])
    assert policy.budget() == {"daily_tokens": 5}
    assert policy.model_allowed("m1") and not policy.model_allowed("m2")


def test_usage_is_read_from_sse_split_across_chunks() -> None:
    stream = (
        b'event: message_start\ndata: {"type":"message_start","message":{"usage":'
        b'{"input_tokens":12,"output_tokens":1}}}\n\nevent: message_delta\ndata: {"type":'
        b'"message_delta","usage":{"output_tokens":7}}\n\n'
    )
    counter = UsageCounter()
    for i in range(0, len(stream), 7):
        counter.feed(stream[i : i + 7])
    assert (counter.input_tokens, counter.output_tokens) == (12, 7)


def test_input_read_from_or_written_to_the_prompt_cache_counts_as_input() -> None:
    """Anthropic's input_tokens leaves cached input out; the budget counts all of it."""
    start = {
        "type": "message_start",
        "message": {
            "usage": {
                "input_tokens": 40,
                "cache_read_input_tokens": 3000,
                "cache_creation_input_tokens": 500,
                "output_tokens": 1,
            }
        },
    }
    counter = UsageCounter()
    counter.feed(f"event: message_start\ndata: {json.dumps(start)}\n\n".encode())
    assert counter.input_tokens == 3540
