"""Described providers through the key broker: a student's chat and completion reach each
shipped descriptor's fake through the broker, which holds the key and runs the provider;
the course's models, budget, metering and audit apply as on the other routes, and the
student never sees the credential."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from .chat import chat, error_of, text_of
from .harness import COURSE, DESCRIBED, GATEWAY_KEY, Hub

pytestmark = pytest.mark.xdist_group("hub")
MODELS = [model for _, model in DESCRIBED.values()]


def _course(hub: Hub, models: Any) -> None:
    status, body = hub.request(
        "PATCH", hub.broker_url + "api/courses/ds101", hub.login("ian"), {"models": models}
    )
    assert status == 200, body


@pytest.fixture
def allowed(hub: Hub) -> Iterator[Hub]:
    """The course allows the described models too (then as ``harness.py`` set it)."""
    _course(hub, [*COURSE["models"], *MODELS])
    yield hub
    _course(hub, COURSE["models"])


def _fake(hub: Hub, path: str, body: Any = None, method: str = "GET") -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(hub.gateways_url + path, data=data, method=method)
    with urllib.request.urlopen(req, timeout=10) as r:
        raw = r.read()
    return json.loads(raw) if raw else None


def _used(hub: Hub, user: str) -> int:
    status, me = hub.request("GET", hub.broker_url + "api/me", hub.login(user))
    assert status == 200, me
    return int(me["used"]["daily_tokens"])


@pytest.mark.parametrize("name", list(DESCRIBED))
def test_the_students_chat_reaches_each_described_provider_through_the_broker(
    allowed: Hub, name: str
) -> None:
    hub = allowed
    model = DESCRIBED[name][1]
    _fake(hub, "/_fake/script", method="DELETE")
    before = _used(hub, "alice")
    events = chat(hub.url, "alice", hub.login("alice"), "Say hello", model=f"gw-{name}")
    assert error_of(events) is None, events
    assert text_of(events) == "Hello from the gateway model"
    started = next(e for e in events if e["type"] == "run_started")
    assert started["model"] == f"gw-{name}"
    finished = next(e for e in events if e["type"] == "run_finished")
    used = finished["usage"]["input_tokens"] + finished["usage"]["output_tokens"]
    assert finished["usage"]["output_tokens"] > 0
    assert _used(hub, "alice") == before + used  # the broker metered what the provider said
    # The provider was called in its own wire format with the broker's key (the fake
    # refuses any other); the student's server sent only its hub token.
    sent = _fake(hub, "/_fake/requests")["requests"]
    assert len(sent) == 1 and sent[0]["auth"] not in ("refused", "none"), sent
    assert "Say hello" in json.dumps(sent[0]["body"])
    assert GATEWAY_KEY not in json.dumps(events)
    status, audit = hub.request(
        "GET", hub.broker_url + f"api/audit?action=model.used&actor=alice&target=model:{model}",
        hub.login("ian"),
    )  # fmt: skip
    assert status == 200 and audit["events"], audit
    assert audit["events"][-1]["detail"]["output_tokens"] == finished["usage"]["output_tokens"]


def test_the_broker_exchanges_a_token_once_per_student_and_keeps_it(allowed: Hub) -> None:
    """The "sso" provider has an OAuth client-credentials pre-flight: the client secret and
    the tokens stay in the broker; each student's token is cached there."""
    hub = allowed
    before = _fake(hub, "/_fake/tokens")["token_requests"]
    for text in ("first", "second"):
        events = chat(hub.url, "bob", hub.login("bob"), text, model="gw-sso")
        assert error_of(events) is None, events
        assert text_of(events) == "Hello from the gateway model"
    assert _fake(hub, "/_fake/tokens")["token_requests"] == before + 1
    sent = _fake(hub, "/_fake/requests")["requests"]
    assert sent[-1]["auth"] == "bearer" and sent[-1]["headers"]["authorization"] == "<redacted>"
    assert "tok-" not in json.dumps(events) and GATEWAY_KEY not in json.dumps(events)


def test_a_described_providers_tool_call_comes_back_through_the_broker(allowed: Hub) -> None:
    hub = allowed
    _fake(hub, "/_fake/script", method="DELETE")
    call = {"name": "list_files", "input": {"path": "."}, "id": "call_ls"}
    _fake(hub, "/_fake/script", [{"text": "Looking.", "tools": [call]},
                                 {"text": "Two files."}], "POST")  # fmt: skip
    events = chat(
        hub.url, "alice", hub.login("alice"), "which files?", task="agent", model="gw-gemini"
    )
    assert error_of(events) is None, events
    assert [e["name"] for e in events if e["type"] == "tool_call"] == ["list_files"]
    assert text_of(events).endswith("Two files.")
    sent = _fake(hub, "/_fake/requests")["requests"]
    assert len(sent) == 2
    function = sent[1]["body"]["contents"][-1]["parts"][0]["functionResponse"]
    assert function["name"] == "list_files"  # Gemini's own shape, made at the broker


def test_completion_goes_through_the_broker_to_a_described_provider(hub: Hub) -> None:
    _course(hub, [DESCRIBED["textapi"][1]])  # the only model: completion must use it
    try:
        _fake(hub, "/_fake/script", method="DELETE")
        _fake(hub, "/_fake/script", [{"text": "1 + 1"}], "POST")
        status, body = hub.request(
            "POST", hub.user_url("alice", "/aiide/api/complete"), hub.login("alice"),
            {"prefix": "x = "},
        )  # fmt: skip
        assert status == 200, body
        assert body["completion"] == "1 + 1" and body["model"] == "gw-textapi"
        sent = _fake(hub, "/_fake/requests")["requests"]
        assert sent[-1]["path"] == "/generate" and "x = " in sent[-1]["body"]["prompt"]
    finally:
        _course(hub, COURSE["models"])


def test_a_providers_error_reaches_the_student_as_a_code_without_its_detail(
    allowed: Hub,
) -> None:
    hub = allowed
    _fake(hub, "/_fake/script", method="DELETE")
    failure = {"status": 400, "message": f"bad request, key {GATEWAY_KEY} internal-host-7"}
    _fake(hub, "/_fake/script", [failure], "POST")
    events = chat(hub.url, "alice", hub.login("alice"), "hi", model="gw-bedrock")
    error = error_of(events)
    assert error is not None and error["code"] == "provider_bad_request", events
    assert GATEWAY_KEY not in json.dumps(events) and "internal-host-7" not in json.dumps(events)


def test_the_route_refuses_without_a_hub_token_and_for_a_model_the_course_lacks(
    hub: Hub,
) -> None:
    url = hub.broker_url + "described/gemini/v1/messages"
    body = {"model": "gemini-2.0-flash", "max_tokens": 5,
            "messages": [{"role": "user", "content": "x"}]}  # fmt: skip
    status, reply = hub.request("POST", url, "not-a-token", body)
    assert (status, reply["code"]) == (401, "unauthenticated")
    status, reply = hub.request("POST", url, hub.login("bob"), body)
    assert (status, reply["code"]) == (403, "model_not_allowed")
    status, reply = hub.request("POST", hub.broker_url + "described/nope/v1/messages",
                                hub.login("bob"), body)  # fmt: skip
    assert status == 400 and reply["code"] in ("no_provider", "model_not_allowed")
