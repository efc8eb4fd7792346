"""Issue 21, finding 10: scheduled exam windows and what students are told before a refusal.

Plain logic (no hub): a window in a course file or a run-time change turns exam mode on
exactly from its start to its end; bad windows are refused with the field named; the
window is a run-time change like any other, so it is stored in the broker's database and
is back after Redis restarts empty; the notices a student's ``api/me`` carries."""

from __future__ import annotations

from pathlib import Path

import pytest
from servers import RedisServer

from aiide_server_ext.gateway.store import Store
from aiide_server_ext.hub.broker.durable import DurableState
from aiide_server_ext.hub.broker.state import SharedState
from aiide_server_ext.hub.course import Course, CourseError, effective, validate_changes
from aiide_server_ext.hub.notices import notices
from aiide_server_ext.hub.schedule import iso

from .test_state_durable import redis  # noqa: F401 (a fixture: a redis-server to restart)

START = 1_800_000_000.0  # 2027-01-15T08:00:00+00:00
END = START + 7200
BASE = {"groups": ["students"], "instructors": ["staff"]}


def _course(**fields: object) -> Course:
    return Course.parse("ds101", {**BASE, **fields})


def _window(**exam: object) -> Course:
    return _course(exam={"start": iso(START), "end": iso(END), "disable": ["chat"], **exam})


def test_exam_mode_is_on_exactly_within_the_window() -> None:
    exam = _window().exam
    assert not exam.enabled
    assert [exam.on(t) for t in (START - 1, START, START + 1, END - 0.001, END, END + 60)] == [
        False, True, True, True, False, False,
    ]  # fmt: skip


def test_a_window_with_an_offset_is_the_same_moment() -> None:
    exam = _course(exam={"start": "2027-01-15T09:00:00+01:00", "end": "2027-01-15T10:00Z"}).exam
    assert exam.window.start == START and exam.window.end == START + 7200


def test_the_course_refuses_the_disabled_feature_only_while_the_window_is_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    course = _window()
    policy = effective([course], {"students"}, "alice")
    monkeypatch.setattr("time.time", lambda: START - 5)
    assert policy.refusal("chat") is None and not policy.public()["exam"]["enabled"]
    monkeypatch.setattr("time.time", lambda: START + 5)
    assert policy.refusal("chat") is not None and policy.refusal("complete") is None
    assert policy.public()["exam"]["enabled"]
    monkeypatch.setattr("time.time", lambda: END)
    assert policy.refusal("chat") is None


@pytest.mark.parametrize(
    ("exam", "words"),
    [
        ({"start": "2027-01-15T08:00:00Z"}, "needs both"),
        ({"start": "2027-01-15T10:00:00Z", "end": "2027-01-15T08:00:00Z"}, "after exam.start"),
        ({"start": "2027-01-15T08:00:00Z", "end": "2028-01-15T08:00:00Z"}, "at most 14 days"),
        ({"start": "tomorrow at ten", "end": "2027-01-15T08:00:00Z"}, "not an ISO 8601 time"),
        ({"start": 1800000000, "end": 1800007200}, "must be an ISO 8601 time"),
    ],
)
def test_a_bad_window_is_refused_naming_the_field(exam: dict[str, object], words: str) -> None:
    with pytest.raises(CourseError, match=words):
        validate_changes({"exam": exam})


def test_a_window_set_at_run_time_keeps_the_files_other_exam_fields_and_can_be_cleared() -> None:
    course = _course(exam={"disable": ["chat", "agent"], "message": "Quiz"})
    timed = course.with_changes({"exam": {"start": iso(START), "end": iso(END)}})
    assert timed.exam.window.start == START and timed.exam.message == "Quiz"
    assert timed.exam.disable == {"chat", "agent"}
    assert timed.raw()["exam"]["start"] == "2027-01-15T08:00:00+00:00"
    cleared = timed.with_changes({"exam": {"start": None, "end": None}})
    assert cleared.exam.window.start is None and not cleared.exam.on(START + 1)


async def test_a_scheduled_exam_survives_a_redis_restart(
    redis: RedisServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    store = Store(str(tmp_path / "broker.sqlite"), label="the broker database")
    state = SharedState(redis.url, durable=DurableState(store))
    try:
        window = {"exam": {"start": iso(START), "end": iso(END), "disable": ["chat"]}}
        await state.set_changes("ds101", window)
        redis.stop()
        redis.__enter__()  # the same port, empty
        _, changes = await state.course_changes(["ds101"], refresh=True)
        assert _course().with_changes(changes["ds101"]).exam.on(START + 1)
    finally:
        await state.close()
        store.close()


def test_students_are_told_the_announcement_rules_limits_and_coming_exam() -> None:
    course = _window(message="Midterm: no chat").with_changes(
        {"announcement": "Lab 3 is due Friday", "rules": "Cite the assistant in your answers."}
    )
    policy = effective([course.with_changes({"budget": {"daily_tokens": 5000}})], {"students"})
    before = notices(policy, now=START - 3600)[0]
    assert before["announcement"] == "Lab 3 is due Friday"
    assert before["rules"] == "Cite the assistant in your answers."
    assert "5,000 tokens a day" in before["limits"]
    assert before["exam"] == {
        "on": False, "start": iso(START), "end": iso(END), "off": ["chat"],
        "message": "Midterm: no chat",
    }  # fmt: skip
    assert notices(policy, now=START + 1)[0]["exam"]["on"] is True
    assert notices(policy, now=END)[0]["exam"] is None  # over: nothing to say about it


def test_notices_are_bounded_text() -> None:
    with pytest.raises(CourseError, match="longer than 2000"):
        validate_changes({"announcement": "x" * 2001})
    with pytest.raises(CourseError, match="must be text"):
        validate_changes({"rules": ["no"]})
    assert _course(announcement="  Hi  ").announcement == "Hi"
