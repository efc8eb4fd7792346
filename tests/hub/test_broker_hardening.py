"""The broker against a student holding their own hub token (issue 14 item 6, issue 21
finding 2): exam mode per feature, users in no course, instructors' audit scoped to their
courses, bodies bounded before they are read, audited addresses, provider headers and
tools on an allow-list, upstream error bodies kept in the broker's log."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from servers import free_port

from aiide_server_ext.agent.complete import SYSTEM

from .harness import BODY, BROKER_ADMIN, COURSE, PROVIDER_KEY, Hub

pytestmark = pytest.mark.xdist_group("hub")

#: A second course with its own instructor and student, and a default course for users
#: in none: only the extra broker below has them.
ART = {"course": "art201", "groups": ["artists"], "instructors": ["art-staff"],
       "models": ["claude-haiku-4-5"]}  # fmt: skip
OPEN_LAB = {"course": "open-lab", "groups": ["open-lab"], "instructors": ["instructors"],
            "models": ["claude-haiku-4-5"], "budget": {"daily_tokens": 5000}}  # fmt: skip
COMPLETION = {
    "model": "claude-haiku-4-5",
    "max_tokens": 64,
    "system": SYSTEM,
    "messages": [{"role": "user", "content": "```python\nimport <CURSOR>\n```"}],
}


def _user(hub: Hub, name: str, group: str | None = None) -> str:
    status, reply = hub.hub_api("POST", f"/users/{name}")
    assert status in (201, 409), reply
    if group is not None:
        status, reply = hub.hub_api("POST", f"/groups/{group}")
        assert status in (201, 409), reply
        status, reply = hub.hub_api("POST", f"/groups/{group}/users", {"users": [name]})
        assert status == 200, reply
    return hub.login(name)


@pytest.fixture(scope="module")
def extra(hub: Hub) -> Iterator[str]:
    """A second broker (service ``aiide-broker-2``, the same database and Redis) with the
    courses above, ``default_course`` and the loopback proxy trusted."""
    courses = hub.dir / "courses-extra"
    courses.mkdir(exist_ok=True)
    for course in (COURSE, ART, OPEN_LAB):
        (courses / f"{course['course']}.json").write_text(json.dumps(course))
    port = free_port()
    proc = hub.start_broker(
        "broker-extra", port, course_dir=str(courses), default_course="open-lab",
        trusted_proxies=["127.0.0.1"],
    )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}/services/aiide-broker/"
    finally:
        hub.stop_process(proc)


def _exam(hub: Hub, exam: dict[str, Any]) -> None:
    status, body = hub.request(
        "PATCH", hub.broker_url + "api/courses/ds101", hub.login("ian"), {"exam": exam}
    )
    assert status == 200, body


def _audit(hub: Hub, url: str, token: str, query: str) -> dict[str, Any]:
    status, body = hub.request("GET", url + "api/audit?" + query, token)
    assert status == 200, body
    return dict(body)


# -- exam mode per feature --------------------------------------------------------------


def _complete(hub: Hub, token: str) -> tuple[int, Any]:
    return hub.request(
        "POST", hub.user_url("alice", "/aiide/api/complete"), token,
        # A comment: the harness's fake answers prose, which code would not show.
        {"path": "a.py", "prefix": "# ", "suffix": ""},
    )  # fmt: skip


def test_a_partial_exam_refuses_a_direct_chat_at_the_broker(hub: Hub) -> None:
    token = hub.login("alice")
    _complete(hub, token)  # warm: the server's first completion loads the SDK (seconds)
    _exam(hub, {"enabled": True, "disable": ["chat", "agent"], "message": "Midterm"})
    try:
        url = hub.broker_url + "anthropic/v1/messages"
        status, body = hub.request("POST", url, token, BODY)
        assert (status, body["code"]) == (403, "exam_mode"), body
        assert "Midterm" in body["message"] and "only inline completion" in body["message"]
        # A chat that copies the completer's instruction but brings a conversation or
        # tools is still a chat.
        dressed = {**COMPLETION, "tools": [{"name": "x", "input_schema": {"type": "object"}}]}
        status, body = hub.request("POST", url, token, dressed)
        assert (status, body["code"]) == (403, "exam_mode"), body
        openai = {"model": "gpt-4o-mini", "max_tokens": 50,
                  "messages": [{"role": "user", "content": "Answer question 3"}]}  # fmt: skip
        status, body = hub.request("POST", hub.broker_url + "openai/v1/chat/completions",
                                   token, openai)  # fmt: skip
        assert (status, body["code"]) == (403, "exam_mode"), body
        # What completion is, passes: directly, and through the student's own server.
        status, body = hub.request("POST", url, token, COMPLETION)
        assert status == 200, body
        status, body = _complete(hub, token)
        assert status == 200 and body["completion"], body
    finally:
        _exam(hub, {"enabled": False, "disable": ["chat", "agent", "complete"]})
    status, _ = hub.request("POST", hub.broker_url + "anthropic/v1/messages", token, BODY)
    assert status == 200


# -- users in no course -----------------------------------------------------------------


def test_a_user_in_no_course_is_refused_by_default(hub: Hub) -> None:
    token = _user(hub, "dave")
    status, body = hub.request("POST", hub.broker_url + "anthropic/v1/messages", token, BODY)
    assert (status, body["code"]) == (403, "no_course"), body
    assert "c.BrokerApp.default_course" in body["message"]
    # Their server asks before a chat: refused with the same words.
    status, body = hub.request("GET", hub.broker_url + "api/me?feature=chat", token)
    assert (status, body["code"]) == (403, "no_course"), body
    status, me = hub.request("GET", hub.broker_url + "api/me", token)
    assert status == 200 and me["refusal"]["code"] == "no_course"
    events = _audit(hub, hub.broker_url, hub.login(BROKER_ADMIN),
                    "action=model.refused&actor=dave")["events"]  # fmt: skip
    assert events and events[-1]["outcome"] == "no_course"


def test_a_named_default_course_applies_to_users_in_no_course(hub: Hub, extra: str) -> None:
    token = _user(hub, "dave")
    status, body = hub.request("POST", extra + "anthropic/v1/messages", token, BODY)
    assert status == 200, body
    other = {**BODY, "model": "claude-sonnet-4-5"}
    status, body = hub.request("POST", extra + "anthropic/v1/messages", token, other)
    assert (status, body["code"]) == (403, "model_not_allowed"), body
    status, me = hub.request("GET", extra + "api/me", token)
    assert me["courses"] == ["open-lab"] and me["budget"] == {"daily_tokens": 5000}


# -- audit scoped to the instructor's courses -------------------------------------------


def test_an_instructor_reads_only_their_courses_audit(hub: Hub, extra: str) -> None:
    since = f"since={time.time() - 1}&limit=1000"
    tess = _user(hub, "tess", "art-staff")
    erin = _user(hub, "erin", "artists")
    assert hub.request("POST", extra + "anthropic/v1/messages", erin, BODY)[0] == 200
    assert hub.request("POST", hub.broker_url + "anthropic/v1/messages",
                       hub.login("alice"), BODY)[0] == 200  # fmt: skip
    time.sleep(1.2)  # the broker's list of who is in which group is cached 1 s here
    mine = _audit(hub, extra, tess, "action=model.used&" + since)
    actors = {e["actor"] for e in mine["events"]}
    assert "erin" in actors and "alice" not in actors, actors
    assert _audit(hub, extra, tess, "actor=alice")["events"] == []
    everything = _audit(hub, extra, tess, since)["events"]
    assert all(e["actor"] in ("tess", "erin") or e["target"] == "course:art201"
               for e in everything), everything  # fmt: skip
    assert not any(e["target"] == "course:ds101" for e in everything)
    # ds101's instructor sees alice, not erin; a broker admin sees both.
    ian = {e["actor"] for e in _audit(hub, extra, hub.login("ian"), since)["events"]}
    assert "alice" in ian and "erin" not in ian
    admin = _audit(hub, extra, hub.login(BROKER_ADMIN), "action=model.used&" + since)
    assert {"alice", "erin"} <= {e["actor"] for e in admin["events"]}
    assert {"next_after", "more"} <= set(admin)


# -- bodies bounded before they are read ------------------------------------------------


def _raw(url: str, head: str, body: bytes = b"", chunks: int = 0) -> tuple[int, dict[str, Any]]:
    """Sends the request line and headers (and what of the body is given), then reads
    the answer: a broker that waits for the rest of a declared body times out here."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(head.encode() + b"\r\n" + body)
        try:
            for _ in range(chunks):  # a chunked body that never ends
                s.sendall(b"100000\r\n" + b"x" * 0x100000 + b"\r\n")
        except OSError:
            pass  # the broker closed the connection after answering
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < int(
            _header(data, "content-length") or 0
        ):
            got = s.recv(65536)
            if not got:
                break
            data += got
    status = int(data.split(b" ", 2)[1])
    return status, json.loads(data.split(b"\r\n\r\n", 1)[1])


def _header(data: bytes, name: str) -> str | None:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        key, _, value = line.decode().partition(":")
        if key.strip().lower() == name:
            return value.strip()
    return None


def test_big_bodies_are_refused_before_they_are_read(hub: Hub) -> None:
    token = hub.login("alice")
    path = "/services/aiide-broker/anthropic/v1/messages"
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: token {token}\r\n"
            "Content-Type: application/json\r\nContent-Length: {n}\r\n")  # fmt: skip
    t0 = time.monotonic()
    status, body = _raw(hub.broker_url, head.format(n=100 * 1024 * 1024), b'{"model": ')
    assert (status, body["code"]) == (413, "body_too_large"), body
    status, body = _raw(hub.broker_url, head.format(n=600 * 1024 * 1024), b"{")
    assert (status, body["code"]) == (413, "body_too_large"), body
    assert time.monotonic() - t0 < 5  # answered from the headers, not after a body
    # A course change is small: 2 MB, chunked (no declared length), is cut off as it passes.
    ian = hub.login("ian")
    chunked = (f"PATCH /services/aiide-broker/api/courses/ds101 HTTP/1.1\r\nHost: x\r\n"
               f"Authorization: token {ian}\r\nTransfer-Encoding: chunked\r\n")  # fmt: skip
    status, body = _raw(hub.broker_url, chunked, chunks=3)
    assert (status, body["code"]) == (413, "body_too_large"), body
    # Unknown routes neither read a body nor answer without a code.
    head404 = "POST /services/aiide-broker/nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: {n}\r\n"
    status, body = _raw(hub.broker_url, head404.format(n=600 * 1024 * 1024))
    assert (status, body["code"]) == (404, "not_found"), body
    # The broker still answers the next call.
    assert hub.request("POST", hub.broker_url + "anthropic/v1/messages", token, BODY)[0] == 200


# -- audited client address -------------------------------------------------------------


def test_the_audited_address_is_believed_only_from_trusted_proxies(hub: Hub, extra: str) -> None:
    admin = hub.login(BROKER_ADMIN)
    since = f"action=auth.refused&limit=1000&since={time.time() - 1}"
    forged = {"X-Forwarded-For": "203.0.113.9"}
    for url, expected in ((hub.broker_url, "127.0.0.1"), (extra, "203.0.113.9")):
        status, _ = hub.request("GET", url + "api/me", "not-a-token-" + expected, headers=forged)
        assert status == 401
        event = _audit(hub, url, admin, since)["events"][-1]
        assert event["detail"]["ip"] == expected, (url, event)
    # Behind a trusted proxy, what the student wrote left of the proxy's entry is theirs.
    chained = {"X-Forwarded-For": "6.6.6.6, 203.0.113.7"}
    hub.request("GET", extra + "api/me", "not-a-token-chained", headers=chained)
    event = _audit(hub, extra, admin, since)["events"][-1]
    assert event["detail"]["ip"] == "203.0.113.7"


# -- provider headers and tools ----------------------------------------------------------


def _fake_requests(hub: Hub) -> list[dict[str, Any]]:
    with urllib.request.urlopen(hub.fake_url + "/_fake/requests", timeout=10) as r:
        return list(json.loads(r.read())["requests"])


def test_betas_and_provider_run_tools_are_refused(hub: Hub) -> None:
    token = hub.login("alice")
    url = hub.broker_url + "anthropic/v1/messages"
    before = len(_fake_requests(hub))
    status, body = hub.request(
        "POST", url, token, BODY, headers={"anthropic-beta": "web-search-2025-03-05"}
    )
    assert (status, body["code"]) == (400, "header_not_allowed"), body
    search = {**BODY, "tools": [{"type": "web_search_20250305", "name": "web_search"}]}
    status, body = hub.request("POST", url, token, search)
    assert (status, body["code"]) == (400, "tool_not_allowed"), body
    assert len(_fake_requests(hub)) == before  # neither reached the provider
    status, _ = hub.request("POST", url, token, BODY, headers={"anthropic-version": "2023-06-01"})
    assert status == 200
    sent = _fake_requests(hub)[-1]["headers"]
    assert {k.lower() for k in sent} & {"anthropic-beta", "authorization"} == set()


# -- upstream errors ---------------------------------------------------------------------


def test_upstream_error_bodies_stay_in_the_brokers_log(hub: Hub) -> None:
    detail = f"org org-7731 quota; key {PROVIDER_KEY} rejected at shard eu-3"
    script = [{"status": 400, "error_type": "invalid_request_error", "message": detail}]
    req = urllib.request.Request(
        hub.fake_url + "/_fake/script", data=json.dumps(script).encode(), method="POST"
    )
    urllib.request.urlopen(req, timeout=10).close()
    status, body = hub.request(
        "POST", hub.broker_url + "anthropic/v1/messages", hub.login("alice"), BODY
    )
    assert (status, body["code"]) == (400, "provider_rejected"), body
    assert body["error"]["type"] == "invalid_request_error"
    assert "org-7731" not in json.dumps(body) and PROVIDER_KEY not in json.dumps(body)
    event = _audit(hub, hub.broker_url, hub.login(BROKER_ADMIN),
                   "action=model.failed&actor=alice&limit=1000")["events"][-1]  # fmt: skip
    assert "org-7731" in event["detail"]["upstream"]
    assert PROVIDER_KEY not in json.dumps(event)
    assert PROVIDER_KEY not in hub.log("hub")
