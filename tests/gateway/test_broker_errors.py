"""The broker's handlers share aiide's one error path (issue 14, item 2): every refusal,
tornado's own errors and an unexpected failure are ``{code, message}`` (with the
Anthropic / OpenAI error shape the SDKs read), never an HTML page or a traceback; every
route of the broker's router authenticates before anything else, so a route added
without a hub token check cannot exist.

The broker runs in this process on a real port, with its real database; no hub is
needed for what is checked here (a request without a token never reaches the hub; the
hub's address is a closed port).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import free_port
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.httpserver import HTTPServer
from tornado.routing import PathMatches

from aiide_server_ext.gateway.audit import AuditQuery
from aiide_server_ext.hub.broker.app import BrokerApp
from aiide_server_ext.hub.broker.handlers import BrokerHandler
from aiide_server_ext.hub.broker.identity import HubCaller
from aiide_server_ext.hub.broker.service import Broker

from .routewalk import sample
from .test_body_limits import BIG, _announce, _stream

PREFIX = "/services/aiide-broker/"
COURSE = {"course": "ds101", "groups": ["students"], "instructors": ["staff"],
          "models": ["claude-haiku-4-5"]}  # fmt: skip


class Running:
    def __init__(self, web_app: Any, broker: Broker, port: int) -> None:
        self.web_app, self.broker, self.port = web_app, broker, port
        self.url = f"http://127.0.0.1:{port}{PREFIX}"

    async def fetch(self, method: str, path: str, **kwargs: Any) -> HTTPResponse:
        client = AsyncHTTPClient(force_instance=True)
        try:
            return await client.fetch(
                self.url + path, method=method, raise_error=False,
                allow_nonstandard_methods=True, **kwargs,
            )  # fmt: skip
        finally:
            client.close()

    async def audit(self, action: str) -> list[tuple[Any, ...]]:
        events = await self.broker.audit.query(AuditQuery(action=action))
        return [(e["actor"], e["target"], e["outcome"]) for e in events]


@pytest.fixture
def broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jp_asyncio_loop: Any
) -> Iterator[Running]:
    """On the loop the tests run in (pytest-jupyter's)."""
    for name in ("JUPYTERHUB_API_URL", "JUPYTERHUB_API_TOKEN", "JUPYTERHUB_SERVICE_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    courses = tmp_path / "courses"
    courses.mkdir()
    (courses / "ds101.json").write_text(json.dumps(COURSE))
    app = BrokerApp(
        course_dir=str(courses),
        db_path=str(tmp_path / "broker.sqlite"),
        hub_api_url=f"http://127.0.0.1:{free_port()}/hub/api",  # nobody listens there
        hub_timeout=1.0,
        upstreams={"anthropic": {"base_url": "http://127.0.0.1:9", "api_key_env": "NO_KEY"}},
    )
    web_app, broker = app.make_app()
    port = free_port()
    server = HTTPServer(web_app, max_body_size=1 << 40)
    server.listen(port, "127.0.0.1")
    try:
        yield Running(web_app, broker, port)
    finally:
        server.stop()
        jp_asyncio_loop.run_until_complete(broker.close())


def _error(r: HTTPResponse, status: int, code: str) -> dict[str, Any]:
    assert r.code == status, (r.code, r.body[:300])
    assert r.headers["Content-Type"] == "application/json", r.body[:300]
    body = json.loads(r.body)
    assert (body["code"], body["error"]["code"], body["type"]) == (code, code, "error"), body
    assert body["message"] and body["error"]["message"] == body["message"]
    assert b"Traceback" not in r.body and b"<html" not in r.body
    return dict(body)


async def test_tornados_own_errors_are_json_with_a_code(broker: Running) -> None:
    """A method tornado refuses before any handler code ran (an HTML page before)."""
    _error(await broker.fetch("PROPFIND", "api/me"), 405, "method_not_allowed")


async def test_an_unexpected_failure_is_a_500_with_a_code_and_no_traceback(
    broker: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(token: str) -> None:
        raise RuntimeError("a bug in the broker")

    monkeypatch.setattr(broker.broker.hub, "identify", broken)
    r = await broker.fetch("GET", "api/me", headers={"Authorization": "token abc"})
    body = _error(r, 500, "internal_error")
    assert "a bug" not in body["message"]


async def test_refusals_raised_in_prepare_keep_their_status_and_code(broker: Running) -> None:
    _error(await broker.fetch("GET", "api/me"), 401, "unauthenticated")
    assert await broker.audit("auth.refused") == [(None, PREFIX + "api/me", "unauthenticated")]
    r = await broker.fetch("GET", "api/courses/ds101", headers={"Authorization": "token abc"})
    _error(r, 503, "hub_unavailable")
    _error(await broker.fetch("GET", "no/such/route"), 404, "not_found")


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("anthropic/v1/messages", 413, "body_too_large"),
        ("api/courses/ds101", 413, "body_too_large"),
        ("nowhere", 404, "not_found"),
    ],
)
async def test_a_600_mb_body_is_refused_before_it_is_read(
    broker: Running, path: str, status: int, code: str
) -> None:
    got, body = await _announce(broker.port, PREFIX + path, BIG)
    assert (got, body["code"], body["error"]["type"]) == (status, code, code)
    refused = await broker.audit("request.refused")
    assert refused == ([(None, PREFIX + path, "body_too_large")] if status == 413 else [])


#: Broker routes meant to answer without a token, each with the reason (none hold secrets).
PUBLIC_ROUTES = {"HealthHandler": "is the broker up and configured: no user data, no keys"}


async def test_every_broker_route_authenticates_before_anything_else(broker: Running) -> None:
    """Walks the broker's own router: a route whose handler is not a ``BrokerHandler``
    (identity from the hub token in ``prepare``) and not listed above fails here; so
    does one that answers an anonymous caller with anything but 401 ``unauthenticated``."""
    walked = 0
    for rule in broker.web_app.default_router.rules:
        for sub in getattr(rule.target, "rules", [rule]):
            if not isinstance(sub.matcher, PathMatches):
                continue
            if sub.target.__name__ in PUBLIC_ROUTES:
                continue
            assert issubclass(sub.target, BrokerHandler), sub.target
            path = sample(sub.matcher.regex.pattern.rstrip("$"))
            assert path.startswith(PREFIX), path
            for method in ("GET", "POST", "PATCH", "DELETE"):
                r = await broker.fetch(method, path[len(PREFIX) :], body=b"{}")
                _error(r, 401, "unauthenticated")
            walked += 1
    assert walked >= 8


async def test_a_chunked_body_past_the_limit_is_refused_as_it_comes_and_audited(
    broker: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A student's token (the hub's answer stands in here: identity is not what is
    tested) streaming a chunked body with no declared length."""

    async def student(token: str) -> HubCaller:
        return HubCaller("alice", frozenset({"students"}))

    monkeypatch.setattr(broker.broker.hub, "identify", student)
    path = PREFIX + "api/courses/ds101"  # 1 MiB limit (course changes)
    status, body, sent = await _stream(broker.port, path, BIG, chunked=True, token="abc")
    # The broker closes the connection right after its answer with the rest of the body
    # unread, so the client's system may reset it before the answer is read (0).
    assert status == 0 or (status, body and body["code"]) == (413, "body_too_large"), body
    assert sent < BIG // 10
    for _ in range(50):  # written after the answer (data_received cannot wait for it)
        if refused := await broker.audit("request.refused"):
            break
        await asyncio.sleep(0.05)
    assert refused == [("alice", path, "body_too_large")]
