"""Outages and attacks: hub down, broker down, Redis down; forged claims, borrowed tokens.

Every outage ends in a clear refusal (stable code + message reaching the chat client) in
bounded time, never a hang; every attack is refused and lands in the audit trail.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from servers import free_port

from .chat import chat, error_of, text_of
from .harness import BODY, BROKER_ADMIN, BROKER_TIMEOUT, HUB_TIMEOUT, IDENTITY_CACHE, Hub

pytestmark = pytest.mark.xdist_group("hub")

#: What "bounded" means here: the configured wait plus a margin for a loaded 2-core box.
MARGIN = 6.0


def _audit(hub: Hub, query: str) -> list[dict[str, Any]]:
    # A broker admin: refused logins (no user) are in no course, so no instructor's view.
    url = hub.broker_url + "api/audit?" + query
    status, body = hub.request("GET", url, hub.login(BROKER_ADMIN))
    assert status == 200, body
    return list(body["events"])


def test_broker_down_the_student_gets_a_clear_error_not_a_hang(hub: Hub) -> None:
    token = hub.login("alice")
    assert error_of(chat(hub.url, "alice", token, "warm up")) is None
    with hub.frozen(hub.broker_pid()):
        t0 = time.monotonic()
        events = chat(hub.url, "alice", token, "hello", timeout=BROKER_TIMEOUT + MARGIN)
        elapsed = time.monotonic() - t0
        status, body = hub.request(
            "POST", hub.user_url("alice", "/aiide/api/complete"), token,
            {"path": "a.py", "prefix": "import ", "suffix": ""},
        )  # fmt: skip
    error = error_of(events)
    assert error is not None, events
    assert error["code"] == "broker_unavailable", hub.log("hub")[-6000:]
    assert "broker is not answering" in error["message"]
    assert elapsed < BROKER_TIMEOUT + MARGIN
    assert (status, body["code"]) == (503, "broker_unavailable")
    # Back: the next chat works again without restarting anything.
    assert text_of(chat(hub.url, "alice", token, "again")) == "Hello from the model"


def test_hub_down_mid_session_the_student_gets_a_clear_error_not_a_hang(hub: Hub) -> None:
    token = hub.login("alice")
    assert error_of(chat(hub.url, "alice", token, "warm up")) is None  # session open
    with hub.frozen(hub.hub_pid()):
        time.sleep(IDENTITY_CACHE + 0.2)  # the broker's cached identity runs out
        t0 = time.monotonic()
        events = chat(hub.url, "alice", token, "hello", timeout=HUB_TIMEOUT + MARGIN)
        elapsed = time.monotonic() - t0
        status, body = hub.request("GET", hub.broker_url + "api/me", token, timeout=10)
    error = error_of(events)
    assert error is not None, events
    assert error["code"] == "hub_unavailable"
    assert "hub" in error["message"]
    assert elapsed < HUB_TIMEOUT + MARGIN
    assert (status, body["code"]) == (503, "hub_unavailable")
    assert text_of(chat(hub.url, "alice", token, "again")) == "Hello from the model"


def test_redis_down_model_calls_fail_closed_with_a_clear_message(hub: Hub) -> None:
    token = hub.login("alice")
    with hub.redis_down():
        t0 = time.monotonic()
        events = chat(hub.url, "alice", token, "hello", timeout=10 + MARGIN)
        elapsed = time.monotonic() - t0
        status, body = hub.request("POST", hub.broker_url + "anthropic/v1/messages", token, BODY)
    error = error_of(events)
    assert error is not None, events
    assert error["code"] == "broker_unavailable"
    assert "usage limits cannot be checked" in error["message"]
    assert elapsed < 10 + MARGIN
    assert (status, body["code"]) == (503, "broker_unavailable")
    refused = _audit(hub, "action=model.refused&outcome=broker_unavailable&actor=alice")
    assert refused, "the refusal is audited"
    again = chat(hub.url, "alice", token, "again")
    assert text_of(again) == "Hello from the model", (error_of(again), hub.log("hub")[-3000:])


def test_redis_down_fail_open_is_a_choice(hub: Hub) -> None:
    port = free_port()
    dead = f"redis://127.0.0.1:{free_port()}/0"
    proc = hub.start_broker(
        "broker-open", port, redis_url=dead, redis_failure_mode="open", redis_timeout=0.5,
        db_path=str(hub.dir / "broker-open.sqlite"),
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/services/aiide-broker/anthropic/v1/messages"
        status, body = hub.request("POST", url, hub.login("alice"), BODY)
        assert status == 200, hub.log("broker-open")[-3000:]
        assert body["content"][0]["text"] == "Hello from the model"
    finally:
        hub.stop_process(proc)


def test_a_forged_group_claim_is_refused_and_audited(hub: Hub) -> None:
    token = hub.login("alice")
    forged = {"X-Aiide-Groups": "instructors", "X-Forwarded-User": "ian"}
    status, body = hub.request(
        "PATCH", hub.broker_url + "api/courses/ds101", token, {"exam": {"enabled": True}},
        headers=forged,
    )  # fmt: skip
    assert (status, body["code"]) == (403, "forged_claim")
    event = _audit(hub, "action=identity.forged&actor=alice")[-1]
    assert event["outcome"] == "refused"
    assert event["detail"]["claims"] == {"x-aiide-groups": "instructors", "x-forwarded-user": "ian"}
    assert event["detail"]["hub_groups"] == ["students"]
    # The student's own server takes groups from the hub only, whatever is sent.
    status, me = hub.request(
        "GET", hub.user_url("alice", "/aiide/api/auth/me"), token, headers=forged
    )
    assert (status, me["groups"], me["roles"]) == (200, ["students"], ["student"])
    _, course = hub.request("GET", hub.broker_url + "api/courses/ds101", hub.login("ian"))
    assert course["exam"]["enabled"] is False


def test_another_students_token_is_refused_and_audited(hub: Hub) -> None:
    # Alice presents Bob's token as her own: the claim and the token disagree.
    status, body = hub.request(
        "POST", hub.broker_url + "anthropic/v1/messages", hub.login("bob"), BODY,
        headers={"X-Aiide-User": "alice"},
    )  # fmt: skip
    assert (status, body["code"]) == (403, "forged_claim")
    event = _audit(hub, "action=identity.forged&actor=bob")[-1]
    assert event["detail"]["claims"] == {"x-aiide-user": "alice"}
    # A token that is no longer valid (revoked) identifies nobody: refused, audited by
    # fingerprint (never the token itself).
    status, reply = hub.hub_api("POST", "/users/bob/tokens", {"note": "to revoke"})
    assert status == 201, reply
    stolen = reply["token"]
    assert hub.hub_api("DELETE", f"/users/bob/tokens/{reply['id']}")[0] == 204
    status, body = hub.request("POST", hub.broker_url + "anthropic/v1/messages", stolen, BODY)
    assert (status, body["code"]) == (401, "unauthenticated")
    event = _audit(hub, "action=auth.refused")[-1]
    assert event["outcome"] == "unauthenticated"
    assert event["detail"]["token"] and stolen not in str(event)


def test_a_token_in_use_is_looked_up_ahead_and_a_revoked_one_is_refused_in_time(
    hub: Hub,
) -> None:
    """Refresh ahead: a token used in the last quarter of ``identity_cache_seconds`` is
    looked up again in the background, so the hub frozen right after its first answer
    expired does not stop the student. Revocation is still bounded by the cache time."""
    cache, port = 6.0, free_port()
    proc = hub.start_broker(
        "broker-ahead", port, identity_cache_seconds=cache,
        db_path=str(hub.dir / "broker-ahead.sqlite"),
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/services/aiide-broker/api/me"
        status, reply = hub.hub_api("POST", "/users/bob/tokens", {"note": "refresh ahead"})
        assert status == 201, reply
        token = reply["token"]
        t0 = time.monotonic()
        assert hub.request("GET", url, token)[0] == 200  # looked up: until >= t0 + cache
        time.sleep(max(0.0, t0 + 0.8 * cache - time.monotonic()))
        assert hub.request("GET", url, token)[0] == 200  # from the cache; looked up ahead
        time.sleep(1.5)  # the look-up ahead answered
        with hub.frozen(hub.hub_pid()):
            time.sleep(max(0.0, t0 + cache + 0.3 - time.monotonic()))  # first answer expired
            status, body = hub.request("GET", url, token, timeout=10)
        assert status == 200, body  # the hub was not needed: the answer was refreshed
        assert hub.hub_api("DELETE", f"/users/bob/tokens/{reply['id']}")[0] == 204
        time.sleep(cache + 0.5)
        status, body = hub.request("GET", url, token)
        assert (status, body["code"]) == (401, "unauthenticated")
    finally:
        hub.stop_process(proc)
