"""The course's agent tool policy reaches the student's agent runs (fake model, real hub).

The harness lets the student role run edits without asking (``ToolPolicy``), so whatever
asks or refuses here is the course.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .chat import chat
from .harness import COURSE, Hub

pytestmark = pytest.mark.xdist_group("hub")
STOP = frozenset({"run_finished", "approval_required"})


@pytest.fixture
def course(hub: Hub) -> Iterator[Hub]:
    yield hub
    hub.request("DELETE", hub.fake_url + "/_fake/script", "")
    status, body = hub.request(
        "PATCH", hub.broker_url + "api/courses/ds101", hub.login("ian"), {"tools": COURSE["tools"]}
    )
    assert status == 200, body


def _set_tools(hub: Hub, tools: dict[str, Any]) -> None:
    status, body = hub.request(
        "PATCH", hub.user_url("ian", "/aiide/api/course/ds101"), hub.login("ian"), {"tools": tools}
    )
    assert status == 200, body


def _agent_calls(hub: Hub, name: str, arguments: dict[str, Any]) -> list[dict[str, Any]]:
    """One agent run in which the model asks for one tool call."""
    script = [{"tools": [{"name": name, "input": arguments}]}, {"text": "Done."}]
    status, _ = hub.request("POST", hub.fake_url + "/_fake/script", "", script)
    assert status == 200
    return chat(hub.url, "alice", hub.login("alice"), "Fix my notebook", task="agent", stop_at=STOP)


def _call(events: list[dict[str, Any]]) -> dict[str, Any]:
    found = [e for e in events if e["type"] == "tool_call"]
    assert found, events
    return found[0]


def test_course_edits_need_approval_makes_the_students_edit_wait(course: Hub) -> None:
    hub = course
    _set_tools(hub, {"edits_need_approval": True})
    events = _agent_calls(hub, "insert_cell", {"source": "x = 1"})
    assert _call(events)["decision"] == "approve", events
    _set_tools(hub, {"edits_need_approval": False})  # the role alone would let it run
    events = _agent_calls(hub, "insert_cell", {"source": "x = 1"})
    assert _call(events)["decision"] == "auto", events


def test_course_execution_deny_refuses_the_agents_code_with_the_reason(course: Hub) -> None:
    hub = course
    _set_tools(hub, {"execution": "deny"})
    events = _agent_calls(hub, "execute_code", {"code": "print(1)"})
    assert _call(events)["decision"] == "deny"
    result = next(e for e in events if e["type"] == "tool_result")
    assert result["ok"] is False
    assert result["error"]["code"] == "denied"
    assert "your course does not allow the agent to run code" in result["content"]
    assert events[-1]["type"] == "run_finished"
