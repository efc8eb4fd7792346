"""Issue 21, finding 5 with the real hub: the student's server takes the course's models
from the broker. The instructor narrows the course to one model at run time; the model the
server was configured with first is no longer offered or tried, so no message says "X is
unavailable; using Y" and "Who hit limits" gets no refusal the student did not cause."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from .chat import chat, error_of, text_of
from .harness import COURSE, Hub

pytestmark = pytest.mark.xdist_group("hub")


@pytest.fixture
def narrowed(hub: Hub) -> Iterator[Hub]:
    ian = hub.login("ian")
    change = {"models": ["gpt-4o-mini"]}  # the servers' first model (claude-haiku) is out
    status, body = hub.request("PATCH", hub.broker_url + "api/courses/ds101", ian, change)
    assert status == 200, body
    yield hub
    reset = {"models": COURSE["models"]}
    status, body = hub.request("PATCH", hub.broker_url + "api/courses/ds101", ian, reset)
    assert status == 200, body


def _not_allowed(hub: Hub, user: str) -> int:
    _, body = hub.request("GET", hub.broker_url + "api/limits?days=1", hub.login("ian"))
    return sum(
        r["count"] for r in body["limits"] if r["user"] == user and r["code"] == "model_not_allowed"
    )


def test_the_student_is_offered_and_served_only_the_courses_models(narrowed: Hub) -> None:
    hub = narrowed
    before = _not_allowed(hub, "bob")
    for text in ("first question", "second question"):
        events = chat(hub.url, "bob", hub.login("bob"), text)
        assert error_of(events) is None, events
        assert text_of(events) == "Hello from the OpenAI model", events
        assert "is unavailable" not in json.dumps(events), events
    models_url = hub.user_url("bob", "/aiide/api/agent/models")
    status, body = hub.request("GET", models_url, hub.login("bob"))
    assert status == 200, body
    assert [m["name"] for m in body["models"]] == ["gpt-mini"]
    assert _not_allowed(hub, "bob") == before  # nothing counted against him
