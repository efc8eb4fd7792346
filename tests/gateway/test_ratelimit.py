"""Sliding-window rate limits: exact under concurrency, headers, roles, WebSocket messages."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketHandler, websocket_connect

from aiide_server_ext.gateway.ratelimit import Decision, MemoryRateLimiter, RateLimit, RateLimits
from aiide_server_ext.seams import GateRefusal, gate_of

from .helpers import Call, claims, forge

LIMITED = {"resource_route_classes": {"aiide:auth": "api"}, "rate_limits": {"api": "100/minute"}}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limits_parse() -> None:
    assert RateLimit.parse("60/minute") == RateLimit(60, 60.0)
    assert RateLimit.parse("20/min") == RateLimit(20, 60.0)
    assert RateLimit.parse("100/10s") == RateLimit(100, 10.0)
    assert RateLimit.parse("1000/hour") == RateLimit(1000, 3600.0)
    for bad in ("", "ten/minute", "5/fortnight", "0/minute", "-1/s"):
        with pytest.raises(ValueError, match="COUNT"):
            RateLimit.parse(bad)


def test_window_slides_without_a_boundary_burst() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock=clock)
    limit = RateLimit(3, 10.0)
    for t in (0.0, 1.0, 2.0):
        clock.now = 1000 + t
        assert limiter.hit_now("k", limit).allowed
    clock.now = 1005.0
    refused = limiter.hit_now("k", limit)
    assert (refused.allowed, refused.retry_after) == (False, 5.0)
    clock.now = 1010.5
    assert limiter.hit_now("k", limit).allowed
    clock.now = 1010.6
    assert not limiter.hit_now("k", limit).allowed
    assert limiter.hit_now("other", limit).allowed


def test_decision_headers() -> None:
    assert Decision(False, 30, 0, 12.2, 12.2).headers() == {
        "X-RateLimit-Limit": "30",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "13",
        "Retry-After": "13",
    }


def test_the_most_generous_role_limit_wins() -> None:
    limits = RateLimits.from_config(
        {"chat": "30/minute"},
        {"student": {"chat": "10/minute"}, "ta": {"chat": "120/minute"}},
    )
    assert limits.for_caller(frozenset({"student"}), "chat") == RateLimit(10, 60)
    assert limits.for_caller(frozenset({"student", "ta"}), "chat") == RateLimit(120, 60)
    assert limits.for_caller(frozenset({"user"}), "chat") == RateLimit(30, 60)
    assert limits.for_caller(frozenset({"user"}), "search") is None


@pytest.mark.asyncio
async def test_memory_limiter_is_exact_under_concurrency() -> None:
    limiter = MemoryRateLimiter()
    decisions = await asyncio.gather(*(limiter.hit("u", RateLimit(60, 60)) for _ in range(250)))
    assert sum(d.allowed for d in decisions) == 60


@pytest.mark.gateway_config(**LIMITED)
async def test_exactly_the_limit_passes_under_250_concurrent_requests(call: Call) -> None:
    token = forge(claims("kate"))
    replies = await asyncio.gather(
        *(call("GET", "/aiide/api/auth/me", token=token) for _ in range(250))
    )
    statuses = [r.status for r in replies]
    assert statuses.count(200) == 100
    assert statuses.count(429) == 150
    ok = next(r for r in replies if r.status == 200)
    assert ok.headers["X-RateLimit-Limit"] == "100"
    refused = next(r for r in replies if r.status == 429)
    assert refused.json()["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["X-RateLimit-Remaining"] == "0"


@pytest.mark.gateway_config(
    resource_route_classes={"kernels": "api"}, rate_limits={"api": "2/minute"}
)
async def test_limits_and_their_headers_apply_to_jupyters_own_routes(call: Call) -> None:
    token = forge(claims("kate", scopes=["kernels"]))
    replies = [await call("GET", "/api/kernels", token=token) for _ in range(3)]
    assert [r.status for r in replies] == [200, 200, 429]
    assert replies[2].code == "rate_limited"
    assert "Retry-After" in replies[2].headers


@pytest.mark.gateway_config(**LIMITED)
async def test_the_owner_is_not_limited(call: Call) -> None:
    replies = [await call("GET", "/aiide/api/auth/me", jupyter=True) for _ in range(120)]
    assert {r.status for r in replies} == {200}


class ChatLikeSocket(JupyterHandler, WebSocketHandler):  # type: ignore[misc]
    """How the agent's chat socket uses the gate: admit each message, refuse with an event."""

    auth_resource = "aiide:chat"

    async def prepare(self, *args: Any, **kwargs: Any) -> None:
        await super().prepare(_redirect_to_login=False)

    async def on_message(self, message: str | bytes) -> None:
        gate = gate_of(self.settings)
        try:
            await gate.admit(gate.caller(self), "chat", "chat")
        except GateRefusal as e:
            await self.write_message({"type": "error", **e.as_dict()})
            return
        await self.write_message({"type": "ok"})


@pytest.mark.gateway_config(
    rate_limits={"chat": "3/minute"},
    route_scopes={"/aiide/api/test/ws": {"read": "chat"}},  # unmapped routes need admin
)
async def test_limited_websocket_messages_get_an_error_event_not_a_closed_socket(
    jp_serverapp: Any, http_server_client: Any, jp_http_port: int, jp_base_url: str
) -> None:
    path = url_path_join(jp_base_url, "/aiide/api/test/ws")
    jp_serverapp.web_app.add_handlers(".*$", [(path, ChatLikeSocket)])
    token = forge(claims("liam", scopes=["chat"]))
    request = HTTPRequest(
        f"ws://127.0.0.1:{jp_http_port}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    ws = await websocket_connect(request)
    events = []
    for _ in range(5):
        await ws.write_message("hello")
        events.append(json.loads(str(await ws.read_message())))
    assert [e["type"] for e in events] == ["ok", "ok", "ok", "error", "error"]
    assert events[3]["code"] == "rate_limited"
    await ws.write_message("still there?")
    assert json.loads(str(await ws.read_message()))["type"] == "error"
    ws.close()
