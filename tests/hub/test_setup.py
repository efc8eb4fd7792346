"""Issue 21, finding 9 with the real hub: what an admin setting a course up meets. The
broker's root URL is a health page (not 404); a course-file edit applies without a broker
restart, a broken edit is refused (shown on the health page) with the loaded courses kept;
students' JupyterLab offers no Terminal card that would fail with an authorization error."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import COURSE, DESCRIBED, Hub

pytestmark = pytest.mark.xdist_group("hub")
#: The broker checks course files every 5 s (c.BrokerApp.course_reload_interval).
RELOAD_WAIT = 15.0


def _health(hub: Hub) -> tuple[int, Any]:
    return hub.request("GET", hub.url + "/services/aiide-broker/", "")


def test_the_brokers_root_url_is_a_health_page(hub: Hub) -> None:
    status, body = _health(hub)  # through the hub's proxy, no token
    assert status == 200, body
    assert (body["service"], body["status"], body["courses"]) == ("aiide-broker", "ok", 1)
    assert (body["redis"], body["database"], body["course_file_error"]) == ("ok", "ok", None)
    described = dict.fromkeys(DESCRIBED, True)  # each with its key (issue 17)
    assert body["providers"] == {"anthropic": True, "openai": True, **described}
    assert "sk-" not in json.dumps(body)  # names no key
    status, same = hub.request("GET", hub.broker_url + "health", "")
    assert status == 200 and same["courses"] == 1


@pytest.fixture
def course_file(hub: Hub) -> Iterator[Path]:
    path = hub.dir / "courses" / "ds101.json"
    yield path
    path.write_text(json.dumps(COURSE))
    _wait(lambda: _course(hub)["instructors"] == COURSE["instructors"], "the restored file")


def _course(hub: Hub) -> dict[str, Any]:
    status, body = hub.request("GET", hub.broker_url + "api/courses/ds101", hub.login("ian"))
    assert status == 200, body
    return dict(body)


def _wait(done: Any, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < RELOAD_WAIT:
        if done():
            return time.monotonic() - start
        time.sleep(0.25)
    raise AssertionError(f"{what} did not apply in {RELOAD_WAIT}s")


def test_a_course_file_edit_applies_without_a_broker_restart(course_file: Path, hub: Hub) -> None:
    broker = hub.broker_pid()
    edited = {**COURSE, "instructors": ["instructors", "teaching-assistants"]}
    course_file.write_text(json.dumps(edited))
    took = _wait(lambda: "teaching-assistants" in _course(hub)["instructors"], "the edit")
    print(f"course-file edit applied after {took:.1f} s")
    assert hub.broker_pid() == broker  # the same process: no restart
    # A broken edit is refused, shown on the health page; the loaded course stays.
    course_file.write_text('{"groups": ["students"], "budget": {"daily_tokens": -5}}')
    _wait(lambda: _health(hub)[1]["course_file_error"] is not None, "the refusal")
    status, health = _health(hub)
    assert (status, health["status"]) == (503, "degraded"), health
    assert "budget.daily_tokens" in health["course_file_error"]
    assert "teaching-assistants" in _course(hub)["instructors"]


def test_students_lab_offers_no_terminal_that_would_fail(hub: Hub) -> None:
    status, page = hub.request("GET", hub.user_url("alice", "/lab"), hub.login("alice"))
    assert status == 200
    found = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                      page, re.S)  # fmt: skip
    assert found is not None, page[:500]
    assert json.loads(found.group(1))["terminalsAvailable"] is False
    status, body = hub.request("POST", hub.user_url("alice", "/api/terminals"), hub.login("alice"))
    assert status in (403, 404), body  # no shell outside the sandbox either way


def test_an_instructor_named_only_in_the_course_file_gets_the_instructor_api(
    course_file: Path, hub: Hub
) -> None:
    """The course file's ``instructors`` is the one place: a hub group named there and
    nowhere in the servers' config (no c.Gateway.group_roles entry) teaches the course."""
    for method, path, body in (
        ("POST", "/users/tara", None),
        ("POST", "/groups/tas", None),
        ("POST", "/groups/tas/users", {"users": ["tara"]}),
    ):
        status, reply = hub.hub_api(method, path, body)
        assert status in (200, 201, 409), reply
    course_file.write_text(json.dumps({**COURSE, "instructors": ["instructors", "tas"]}))
    _wait(lambda: "tas" in _course(hub)["instructors"], "the edit")
    hub.spawn("tara")
    try:
        token = hub.login("tara")
        me_url = hub.user_url("tara", "/aiide/api/auth/me")
        _wait(lambda: "course" in hub.request("GET", me_url, token)[1]["scopes"], "the scope")
        status, body = hub.request("GET", hub.user_url("tara", "/aiide/api/course/ds101"), token)
        assert status == 200, body
        status, body = hub.request(
            "GET", hub.user_url("tara", "/aiide/api/course-admin/courses"), token
        )
        assert status == 200 and "ds101" in json.dumps(body), body
    finally:
        hub.hub_api("DELETE", "/users/tara/server")


def _browser_cookies(hub: Hub, user: str) -> str:
    """Log in through the hub's form as a browser does (dummy authenticator) and follow
    the OAuth redirects to the user's server: the Cookie header a browser would send."""
    import http.cookiejar
    import urllib.parse
    import urllib.request

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(hub.url + "/hub/login", timeout=30) as r:
        form = r.read().decode()
    xsrf = re.search(r'name="_xsrf"[^>]*value="([^"]+)"', form)
    assert xsrf is not None, form[:500]
    data = urllib.parse.urlencode({"username": user, "password": "x", "_xsrf": xsrf.group(1)})
    with opener.open(hub.url + "/hub/login?next=/user/" + user + "/lab", data.encode(), 60):
        pass
    with opener.open(hub.user_url(user, "/lab"), timeout=60) as r:
        assert r.status == 200
    return "; ".join(f"{c.name}={c.value}" for c in jar)


def test_a_browser_chat_socket_over_plain_http_logs_no_xsrf_warning(hub: Hub) -> None:
    import asyncio

    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    cookies = _browser_cookies(hub, "alice")
    warning = "Skipping XSRF check for insecure request GET /user/alice/aiide/api/chat/ws"
    before = hub.log("hub").count(warning)

    async def open_sockets() -> None:
        for _ in range(3):  # as a browser without Sec-Fetch-* (plain http, not localhost)
            url = hub.url.replace("http", "ws", 1) + "/user/alice/aiide/api/chat/ws"
            request = HTTPRequest(url, headers={"Cookie": cookies, "Origin": hub.url})
            ws = await websocket_connect(request)
            hello = json.loads(await asyncio.wait_for(ws.read_message(), 10) or "{}")
            assert hello.get("type") == "hello", hello  # cookie-authenticated
            ws.close()

    asyncio.run(open_sockets())
    time.sleep(1.0)  # the server's log lines reach the hub's log
    assert hub.log("hub").count(warning) == before
