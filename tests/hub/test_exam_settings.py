"""Issue 21, finding 8 with the real hub: exam mode while it is on. The instructor changes
which features are off without turning it off (no moment where students have everything),
the message they wrote is kept, a default message never claims more than is true, and with
only code execution off the agent's code call is refused as it is asked for, not put to the
student for an approval the gate then overrules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .chat import chat, error_of
from .harness import COURSE, Hub

pytestmark = pytest.mark.xdist_group("hub")
MESSAGE = "Midterm until 12:00: chat and the agent are off."
STOP = frozenset({"run_finished", "approval_required"})


@pytest.fixture
def course(hub: Hub) -> Iterator[Hub]:
    yield hub
    hub.request("DELETE", hub.fake_url + "/_fake/script", "")
    reset = {"exam": {**COURSE["exam"], "message": None}, "tools": COURSE["tools"]}
    status, body = _change(hub, reset)
    assert status == 200, body


def _change(hub: Hub, change: dict[str, Any]) -> tuple[int, Any]:
    url = hub.user_url("ian", "/aiide/api/course/ds101")
    return hub.request("PATCH", url, hub.login("ian"), change)


def _complete(hub: Hub, user: str) -> tuple[int, Any]:
    body = {"path": "a.py", "prefix": "import ", "suffix": ""}
    return hub.request("POST", hub.user_url(user, "/aiide/api/complete"), hub.login(user), body)


def test_features_change_while_exam_mode_stays_on_and_the_message_is_kept(course: Hub) -> None:
    hub = course
    on = {"enabled": True, "disable": ["chat", "agent", "complete"], "message": MESSAGE}
    status, body = _change(hub, {"exam": on})
    assert status == 200, body
    assert _complete(hub, "alice")[1].get("code") == "exam_mode"
    # Completion goes back on mid-exam: only the features change.
    status, body = _change(hub, {"exam": {"disable": ["chat", "agent"]}})
    assert status == 200, body
    assert body["exam"]["enabled"] is True, body
    assert body["exam"]["disable"] == ["agent", "chat"]
    assert body["exam"]["message"] == MESSAGE
    error = error_of(chat(hub.url, "alice", hub.login("alice"), "Solve question 1"))
    assert error is not None and (error["code"], error["message"]) == (
        "exam_mode",
        f"ds101: {MESSAGE}",
    )
    status, reply = _complete(hub, "alice")
    assert status == 200, reply


def test_the_default_exam_message_names_only_what_is_off(course: Hub) -> None:
    hub = course
    status, body = _change(hub, {"exam": {"enabled": True, "disable": ["chat"], "message": None}})
    assert status == 200, body
    error = error_of(chat(hub.url, "bob", hub.login("bob"), "hello"))
    assert error is not None and error["code"] == "exam_mode", error
    assert "assistant is unavailable" not in error["message"]
    assert error["message"] == (
        "ds101: Exam mode is on: chat is off until the exam ends (the agent's code execution "
        "and inline completion stay on)."
    )
    assert _complete(hub, "bob")[0] == 200  # what the message says is on, is on


def test_with_only_code_execution_off_the_agent_is_refused_before_asking(course: Hub) -> None:
    hub = course
    # The course would have the student approve each code call.
    status, body = _change(hub, {"tools": {"execution": "approve"}})
    assert status == 200, body
    status, body = _change(hub, {"exam": {"enabled": True, "disable": ["agent"], "message": None}})
    assert status == 200, body
    script = [{"tools": [{"name": "execute_code", "input": {"code": "print(1)"}}]}, {"text": "OK"}]
    assert hub.request("POST", hub.fake_url + "/_fake/script", "", script)[0] == 200
    events = chat(hub.url, "alice", hub.login("alice"), "Run it", task="agent", stop_at=STOP)
    assert not [e for e in events if e["type"] == "approval_required"], events
    call = next(e for e in events if e["type"] == "tool_call")
    assert call["decision"] == "deny", events
    result = next(e for e in events if e["type"] == "tool_result")
    assert result["ok"] is False and result["error"]["code"] == "exam_mode", result
    assert "the agent's code execution is off" in result["content"]
    assert events[-1]["type"] == "run_finished", events
