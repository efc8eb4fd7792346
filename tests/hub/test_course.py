"""Instructors change the course at run time: exam mode and budgets, audited, no restarts."""

from __future__ import annotations

import pytest

from .chat import chat, error_of, text_of
from .harness import Hub

pytestmark = pytest.mark.xdist_group("hub")


def test_exam_mode_refuses_the_students_next_run_with_the_reason(course: Hub) -> None:
    hub = course
    message = "Midterm until 12:00: no assistant."
    status, body = hub.request(
        "PATCH",
        hub.user_url("ian", "/aiide/api/course/ds101"),
        hub.login("ian"),
        {"exam": {"enabled": True, "message": message}},
    )
    assert status == 200, body
    assert body["exam"]["enabled"] is True
    events = chat(hub.url, "alice", hub.login("alice"), "Solve question 1", task="agent")
    error = error_of(events)
    assert error is not None, events
    assert (error["code"], error["message"]) == ("exam_mode", f"ds101: {message}")
    assert text_of(events) == ""
    # Calling the broker directly with the student's own hub token does not get around it.
    status, reply = hub.request(
        "POST",
        hub.broker_url + "anthropic/v1/messages",
        hub.login("alice"),
        {
            "model": "claude-haiku-4-5",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "x"}],
        },
    )
    assert (status, reply["code"]) == (403, "exam_mode")


def test_every_course_change_is_audited_with_the_instructors_identity(course: Hub) -> None:
    hub = course
    token = hub.login("ian")
    change = {"exam": {"enabled": True, "disable": ["complete"]}}
    status, _ = hub.request("PATCH", hub.user_url("ian", "/aiide/api/course/ds101"), token, change)
    assert status == 200
    status, audit = hub.request("GET", hub.broker_url + "api/audit?action=course.changed", token)
    assert status == 200, audit
    last = audit["events"][-1]
    assert (last["actor"], last["target"], last["outcome"]) == ("ian", "course:ds101", "applied")
    assert last["detail"]["changes"] == change
    # Students may not read it.
    status, _ = hub.request("GET", hub.broker_url + "api/audit", hub.login("alice"))
    assert status == 403


def test_exam_mode_only_turns_off_the_chosen_features(course: Hub) -> None:
    hub = course
    change = {"exam": {"enabled": True, "disable": ["complete"]}}
    status, _ = hub.request(
        "PATCH", hub.user_url("ian", "/aiide/api/course/ds101"), hub.login("ian"), change
    )
    assert status == 200
    events = chat(hub.url, "alice", hub.login("alice"), "hello")
    assert error_of(events) is None, events
    status, body = hub.request(
        "POST",
        hub.user_url("alice", "/aiide/api/complete"),
        hub.login("alice"),
        {"path": "a.py", "prefix": "import ", "suffix": ""},
    )
    assert (status, body.get("code")) == (403, "exam_mode"), body


def test_a_spent_budget_refuses_the_next_chat_with_a_clear_message(course: Hub) -> None:
    hub = course
    token = hub.login("bob")
    assert error_of(chat(hub.url, "bob", token, "first")) is None
    status, _ = hub.request(
        "PATCH",
        hub.user_url("ian", "/aiide/api/course/ds101"),
        hub.login("ian"),
        {"budget": {"daily_tokens": 1}},
    )
    assert status == 200
    error = error_of(chat(hub.url, "bob", token, "second"))
    assert error is not None
    assert error["code"] == "budget_exceeded"
    assert "token budget for today (1 tokens) is used up" in error["message"]
    _, me = hub.request("GET", hub.broker_url + "api/me", token)
    assert me["remaining"]["daily_tokens"] == 0
