"""The broker's OpenAI-compatible route: same hub token, courses, budgets, metering, audit;
the provider key stays in the broker. Also the student's agent going through it."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from .chat import chat, error_of, text_of
from .harness import COURSE, OPENAI_KEY, PROVIDER_KEY, Hub

pytestmark = pytest.mark.xdist_group("hub")

MODEL = "gpt-4o-mini"
BODY: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello"}]}


def _route(hub: Hub) -> str:
    return hub.broker_url + "openai/v1/chat/completions"


def _stream(hub: Hub, token: str, body: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    """POST a streaming request; the ``data:`` chunks as they arrived (``[DONE]`` last)."""
    req = urllib.request.Request(_route(hub), data=json.dumps(body).encode(), method="POST")
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", "application/json")
    chunks: list[dict[str, Any]] = []
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        for raw in r:
            line = raw.decode().strip()
            if line == "data: [DONE]":
                chunks.append({"done": True})
            elif line.startswith("data:"):
                chunks.append(json.loads(line[5:]))
        return r.status, chunks


def _used(hub: Hub, user: str) -> int:
    status, me = hub.request("GET", hub.broker_url + "api/me", hub.login(user))
    assert status == 200, me
    return int(me["used"]["daily_tokens"])


def _last_fake_request(hub: Hub) -> dict[str, Any]:
    with urllib.request.urlopen(hub.openai_url + "/_fake/requests", timeout=10) as r:
        return dict(json.loads(r.read())["requests"][-1])


def test_a_streamed_answer_comes_through_with_usage_metered_and_audited(hub: Hub) -> None:
    before = _used(hub, "bob")
    status, chunks = _stream(hub, hub.login("bob"), {**BODY, "stream": True})
    assert status == 200
    text = "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")
    )
    assert text == "Hello from the OpenAI model"
    assert chunks[-1] == {"done": True}
    # The client did not ask for usage; the broker did (that is how it meters), and the
    # provider saw the broker's key, never the student's token.
    usage = next(c["usage"] for c in chunks if c.get("usage"))
    sent = _last_fake_request(hub)
    assert sent["body"]["stream_options"] == {"include_usage": True}
    assert sent["auth"] == "bearer"  # the fake refuses anything but the broker's key
    assert _used(hub, "bob") == before + usage["prompt_tokens"] + usage["completion_tokens"]
    status, audit = hub.request(
        "GET", hub.broker_url + f"api/audit?action=model.used&actor=bob&target=model:{MODEL}",
        hub.login("ian"),
    )  # fmt: skip
    assert status == 200, audit
    detail = audit["events"][-1]["detail"]
    assert detail == {
        "input_tokens": usage["prompt_tokens"],
        "output_tokens": usage["completion_tokens"],
    }


def test_a_non_streaming_answer_is_metered_from_its_usage(hub: Hub) -> None:
    before = _used(hub, "bob")
    status, reply = hub.request("POST", _route(hub), hub.login("bob"), BODY)
    assert status == 200, reply
    assert reply["choices"][0]["message"]["content"] == "Hello from the OpenAI model"
    assert OPENAI_KEY not in json.dumps(reply) and PROVIDER_KEY not in json.dumps(reply)
    assert _used(hub, "bob") == before + reply["usage"]["total_tokens"]


def test_the_course_applies_models_budget_and_identity(hub: Hub) -> None:
    token = hub.login("bob")
    status, reply = hub.request("POST", _route(hub), token, {**BODY, "model": "gpt-5"})
    assert (status, reply["code"]) == (403, "model_not_allowed")
    assert "not allowed" in reply["error"]["message"]  # what OpenAI clients show
    status, reply = hub.request("POST", _route(hub), "not-a-token", BODY)
    assert (status, reply["code"]) == (401, "unauthenticated")
    ian = hub.login("ian")
    used = _used(hub, "bob")
    status, _ = hub.request(
        "PATCH", hub.broker_url + "api/courses/ds101", ian, {"budget": {"daily_tokens": used}}
    )
    assert status == 200
    try:
        status, reply = hub.request("POST", _route(hub), token, {**BODY, "stream": True})
        assert (status, reply["code"]) == (402, "budget_exceeded")
        assert "token budget for today" in reply["error"]["message"]
    finally:
        restore = {"budget": COURSE["budget"]}
        assert hub.request("PATCH", hub.broker_url + "api/courses/ds101", ian, restore)[0] == 200


def test_the_students_agent_uses_the_openai_provider_through_the_broker(hub: Hub) -> None:
    before = _used(hub, "alice")
    events = chat(hub.url, "alice", hub.login("alice"), "Say hello", model="gpt-mini")
    assert error_of(events) is None, events
    assert text_of(events) == "Hello from the OpenAI model", json.dumps(
        [e for e in events if e["type"] != "token"]
    )
    finished = next(e for e in events if e["type"] == "run_finished")
    assert finished["usage"]["output_tokens"] > 0
    assert _used(hub, "alice") > before  # metered by the broker, so the budget holds
    # The student's server has no OpenAI key; it sent its hub token, the broker the key.
    _, model = hub.hub_api("GET", "/users/alice")
    with open(f"/proc/{model['servers']['']['state']['pid']}/environ", "rb") as f:
        env = f.read()
    assert OPENAI_KEY.encode() not in env and b"OPENAI_API_KEY" not in env


def test_chunks_pass_as_they_come_and_a_student_hanging_up_ends_the_call(hub: Hub) -> None:
    """The provider sends three words, then nothing (it stalls): the student must get those
    three through the broker meanwhile (nothing is held back), and when they hang up the
    broker hangs up on the provider and meters what was generated (no usage came: an
    estimate)."""
    import http.client
    import time

    stalled = {"text": "one two three four five", "stall_after": 3}
    hub.request("POST", hub.openai_url + "/_fake/script", "", [stalled])
    audit_query = f"api/audit?action=model.used&actor=alice&target=model:{MODEL}"
    ian = hub.login("ian")
    before = len(hub.request("GET", hub.broker_url + audit_query, ian)[1]["events"])
    host, port = hub.broker_url.split("//")[1].split("/")[0].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)  # bounds a failure only
    conn.request(
        "POST", "/services/aiide-broker/openai/v1/chat/completions",
        json.dumps({**BODY, "stream": True}),
        {"Authorization": f"Bearer {hub.login('alice')}", "Content-Type": "application/json"},
    )  # fmt: skip
    response = conn.getresponse()
    assert response.status == 200
    words = ""
    while len(words.split()) < 3:
        line = response.fp.readline().decode()
        if line.startswith("data:") and "[DONE]" not in line:
            for choice in json.loads(line[5:]).get("choices") or []:
                words += choice["delta"].get("content") or ""
    assert words.split() == ["one", "two", "three"]
    conn.close()  # the student goes away while the provider is still "thinking"
    deadline = time.monotonic() + 30
    events: list[dict[str, Any]] = []
    while time.monotonic() < deadline and len(events) <= before:
        events = hub.request("GET", hub.broker_url + audit_query, ian)[1]["events"]
        time.sleep(0.2)
    assert len(events) == before + 1, "the broker did not end the call"
    assert events[-1]["detail"]["estimated"] is True
    assert events[-1]["detail"]["output_tokens"] > 0
