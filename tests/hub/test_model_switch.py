"""Issue 21, finding 7 with the real hub: switching the class's model. A model the broker
cannot serve (its provider has no key, or no provider serves it) is refused with why; a
student whose course names a model without a key reads that, not "provider_overloaded";
a switch that leaves no completion model tells the instructor, and the student's
completion says why instead of 'no model is configured'."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from servers import free_port

from aiide_server_ext.agent.providers.base import error_for_status

from .harness import BODY, COURSE, Hub

pytestmark = pytest.mark.xdist_group("hub")
UNSET = "AIIDE_TEST_NO_SUCH_KEY"


@pytest.fixture
def keyless(hub: Hub) -> Iterator[str]:
    """A second broker of the same hub whose openai upstream has no key."""
    port = free_port()
    upstreams = {
        **hub.broker_config()["upstreams"],
        "openai": {"base_url": hub.openai_url + "/v1", "api_key_env": UNSET},
    }
    proc = hub.start_broker("keyless", port, upstreams=upstreams)
    try:
        yield f"http://127.0.0.1:{port}/services/aiide-broker/"
    finally:
        hub.stop_process(proc)


@pytest.fixture
def restore(hub: Hub) -> Iterator[Hub]:
    yield hub
    url, models = hub.broker_url + "api/courses/ds101", {"models": COURSE["models"]}
    status, body = hub.request("PATCH", url, hub.login("ian"), models)
    assert status == 200, body


def _models(hub: Hub) -> list[str]:
    status, body = hub.request("GET", hub.broker_url + "api/courses/ds101", hub.login("ian"))
    assert status == 200, body
    return list(body["models"])


def test_a_switch_to_a_model_without_a_key_is_refused_naming_why(
    restore: Hub, keyless: str
) -> None:
    hub = restore
    before = _models(hub)
    status, body = hub.request(
        "PATCH", keyless + "api/courses/ds101", hub.login("ian"), {"models": ["gpt-4o-mini"]}
    )
    assert (status, body["code"]) == (400, "model_unavailable"), body
    assert "gpt-4o-mini: the broker has no key for openai" in body["message"]
    assert f"{UNSET} is not set in the broker's environment" in body["message"]
    assert _models(hub) == before  # nothing stored


def test_a_switch_to_a_model_no_provider_serves_is_refused_naming_why(restore: Hub) -> None:
    hub = restore
    before = _models(hub)
    status, body = hub.request(
        "PATCH", hub.broker_url + "api/courses/ds101", hub.login("ian"), {"models": ["llama-3-8b"]}
    )
    assert (status, body["code"]) == (400, "model_unavailable"), body
    assert "llama-3-8b: no provider configured at the broker serves it" in body["message"]
    assert "upstreams.<name>.models" in body["message"]
    assert _models(hub) == before
    # The instructor's dashboard route answers the same.
    status, body = hub.request(
        "PATCH", hub.user_url("ian", "/aiide/api/course/ds101"), hub.login("ian"),
        {"models": ["llama-3-8b"]},
    )  # fmt: skip
    assert (status, body["code"]) == (400, "model_unavailable"), body


def test_a_model_without_a_key_is_a_clear_refusal_not_an_overload(keyless: str, hub: Hub) -> None:
    body = {**BODY, "model": "gpt-4o-mini"}
    status, reply = hub.request(
        "POST", keyless + "openai/v1/chat/completions", hub.login("alice"), body
    )
    assert reply["code"] == "no_provider", reply
    assert "tell your instructor" in reply["message"]
    # What the student's server makes of that answer: not a retryable overload.
    seen = error_for_status(status, reply["message"], {})
    assert seen.code != "provider_overloaded" and not seen.retryable, (status, seen.code)


def test_a_switch_leaving_no_completion_model_tells_the_instructor_and_the_student(
    restore: Hub,
) -> None:
    hub = restore
    status, body = hub.request(
        "PATCH", hub.user_url("ian", "/aiide/api/course/ds101"), hub.login("ian"),
        {"models": ["gpt-4o-mini"]},
    )  # fmt: skip
    assert status == 200, body
    warnings = {w["code"]: w["message"] for w in body["warnings"]}
    assert "no_completion_model" in warnings, body
    assert "claude-haiku-4-5" in warnings["no_completion_model"]  # the model that would
    status, reply = hub.request(
        "POST", hub.user_url("alice", "/aiide/api/complete"), hub.login("alice"),
        {"path": "a.py", "prefix": "import ", "suffix": ""},
    )  # fmt: skip
    assert (status, reply["code"]) == (403, "no_completion_model"), reply
    assert "gpt-4o-mini" in reply["message"]
    # Back to a list with a completion model: no warning, completion answers.
    status, body = hub.request(
        "PATCH", hub.user_url("ian", "/aiide/api/course/ds101"), hub.login("ian"),
        {"models": COURSE["models"]},
    )  # fmt: skip
    assert (status, body["warnings"]) == (200, []), body
    status, reply = hub.request(
        "POST", hub.user_url("alice", "/aiide/api/complete"), hub.login("alice"),
        {"path": "a.py", "prefix": "import ", "suffix": ""},
    )  # fmt: skip
    assert status == 200, reply
