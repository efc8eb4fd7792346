"""The issue's bad input for aiide's routes, over the real server: each is refused with its
status and a ``code`` (never a 500, never a traceback), and the audit records it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from aiide_server_ext.gateway.audit import AuditQuery

from .helpers import Call
from .test_approvals import APPROVALS, _insert, _key, _notebook, _pending
from .test_body_limits import BIG, _announce

#: (status, body) of one bad request; the case's own setup runs inside it.
Send = Callable[[Call, Any, Path, Any, int], Awaitable[tuple[int, dict[str, Any]]]]


async def _unknown_route(call: Call, *_: Any) -> tuple[int, dict[str, Any]]:
    r = await call("GET", "/aiide/api/no/such/route", jupyter=True)
    return r.status, r.json()


async def _malformed_approval(call: Call, new_key: Any, *_: Any) -> tuple[int, dict[str, Any]]:
    approver = await _key(new_key, "carol", "agent:approve")
    r = await call("POST", f"{APPROVALS}/ap_0123", token=approver, raw=b'{"decision": ')
    return r.status, r.json()


async def _someone_elses_call(
    call: Call, new_key: Any, root: Path, *_: Any
) -> tuple[int, dict[str, Any]]:
    _notebook(root)
    agent = await _key(new_key, "carol", "agent:run")
    mallory = await _key(new_key, "mallory", "agent:run", "agent:approve")
    waiting = _insert(call, agent, "print('carol')")
    pending = await _pending(call, token=agent)
    url = f"{APPROVALS}/{pending['id']}"
    r = await call("POST", url, token=mallory, body={"decision": "approve"})
    waiting.cancel()
    return r.status, r.json()


async def _a_600_mb_body(
    call: Call, new_key: Any, root: Path, server: Any, port: int
) -> tuple[int, dict[str, Any]]:
    return await _announce(port, server.base_url.rstrip("/") + APPROVALS, BIG)


@pytest.mark.parametrize(
    ("send", "status", "code", "action"),
    [
        (_unknown_route, 404, "not_found", "route.unknown"),
        (_malformed_approval, 400, "invalid_json", "mcp.approval"),
        (_someone_elses_call, 404, "unknown_approval", "mcp.approval"),
        (_a_600_mb_body, 413, "body_too_large", "route.refused"),
    ],
    ids=["unknown-route", "malformed-approval", "someone-elses-call", "600-mb-body"],
)
async def test_bad_input_is_refused_with_a_code_and_audited(
    call: Call,
    new_key: Any,
    jp_root_dir: Path,
    jp_serverapp: Any,
    jp_http_port: int,
    gate: Any,
    send: Send,
    status: int,
    code: str,
    action: str,
) -> None:
    got, body = await send(call, new_key, jp_root_dir, jp_serverapp, jp_http_port)
    assert (got, body.get("code")) == (status, code), body
    assert set(body) == {"code", "message"} and "Traceback" not in body["message"]
    events = await gate.audit_log.query(AuditQuery(action=action))
    assert [e for e in events if e["detail"] and e["detail"].get("code") == code], events
