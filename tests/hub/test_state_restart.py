"""Issue 21, finding 3 end to end: Redis restarted (empty, no persistence) and a broker
restarted in the middle of an exam change nothing a student or an instructor sees.

Real JupyterHub, the hub-managed broker (which lives through the Redis restart) and a
second broker process (restarted too), one real redis-server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .chat import chat, error_of
from .harness import BODY, COURSE, Hub

pytestmark = pytest.mark.xdist_group("hub")

EXAM = {
    "exam": {"enabled": True, "disable": ["chat"], "message": "Midterm: chat is off until 11:00"},
    "budget": {"daily_tokens": 99_999, "weekly_tokens": 400_000},
    "student_budgets": {"bob": {"daily_tokens": 123_456}},
}


@pytest.fixture
def exam(hub: Hub) -> Iterator[Hub]:
    ian = hub.login("ian")
    status, reply = hub.request(
        "POST", hub.broker_url + "anthropic/v1/messages", hub.login("alice"), BODY
    )
    assert status == 200, reply  # alice has used tokens before the exam starts
    status, body = hub.request("PATCH", hub.broker_url + "api/courses/ds101", ian, EXAM)
    assert status == 200, body
    yield hub
    reset = {"exam": COURSE["exam"], "budget": COURSE["budget"], "student_budgets": {"bob": None}}
    status, body = hub.request("PATCH", hub.broker_url + "api/courses/ds101", ian, reset)
    assert status == 200, body


def _views(hub: Hub, broker: str) -> dict[str, Any]:
    """What students and the dashboard read from a broker."""
    out: dict[str, Any] = {}
    for user in ("alice", "bob"):
        status, me = hub.request("GET", broker + "api/me", hub.login(user))
        assert status == 200, me
        out[user] = {k: me[k] for k in ("exam", "budget", "used", "remaining", "own_budget")}
    ian = hub.login("ian")
    for path in ("api/courses/ds101", "api/usage?days=2", "api/limits?days=2"):
        status, body = hub.request("GET", broker + path, ian)
        assert status == 200, body
        out[path] = body
    return out


def test_a_redis_and_broker_restart_mid_exam_changes_nothing_for_students_or_the_dashboard(
    exam: Hub,
) -> None:
    hub = exam
    refused = error_of(chat(hub.url, "alice", hub.login("alice"), "help me with question 2"))
    assert refused is not None and refused["code"] == "exam_mode", refused
    if hub.broker2 is None:
        hub.start_broker2()
    before = _views(hub, hub.broker_url)
    assert before["alice"]["exam"]["enabled"] and before["alice"]["used"]["daily_tokens"] > 0
    assert before["bob"]["budget"]["daily_tokens"] == 123_456
    assert before["api/limits?days=2"]["limits"], before

    with hub.redis_down():
        assert hub.broker2 is not None
        hub.stop_process(hub.broker2)
    hub.start_broker2()  # the restarted broker finds Redis empty too

    assert _views(hub, hub.broker_url) == before
    assert _views(hub, hub.broker2_url) == before
    again = error_of(chat(hub.url, "alice", hub.login("alice"), "and question 3?"))
    assert again is not None and again["code"] == "exam_mode", again
    assert again["message"] == refused["message"]
    assert "rebuilt from the database" in hub.log("broker2") + hub.log("hub")
