"""Approvals come from a person: an outside agent cannot answer its own paused calls.

``carol`` runs an outside agent on an API key with ``agent:run``; it calls ``insert_cell``
over ``/aiide/api/mcp`` and the call waits for approval. The key that made the call may
list it but not approve it; the same user's browser session (cookie + XSRF) or another of
her credentials holding ``agent:approve`` may. Each outside agent's notebook requests go
to its own conversation: another user's socket never receives them.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from aiide_server_ext.gateway.audit import AuditQuery

from .helpers import Call, Reply, browser_login, error

APPROVALS = "/aiide/api/mcp/approvals"


def _notebook(root: Path) -> None:
    cell: dict[str, Any] = {"id": "c1", "cell_type": "code", "metadata": {}, "source": "x = 1"}
    cell.update(outputs=[], execution_count=None)
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [cell]}
    (root / "nb.ipynb").write_text(json.dumps(nb))


def _sources(root: Path) -> list[str]:
    return ["".join(c["source"]) for c in json.loads((root / "nb.ipynb").read_text())["cells"]]


def _insert(call: Call, key: str, source: str) -> asyncio.Future[Reply]:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "insert_cell", "arguments": {"path": "nb.ipynb", "source": source}},
    }
    return asyncio.ensure_future(call("POST", "/aiide/api/mcp", token=key, body=body))


async def _pending(call: Call, **auth: Any) -> dict[str, Any]:
    for _ in range(200):
        r = await call("GET", APPROVALS, **auth)
        assert r.status == 200, r.body
        pending = r.json()["pending"]
        if pending:
            return dict(pending[0])
        await asyncio.sleep(0.05)
    raise AssertionError("the call never waited for approval")


def _result(reply: Reply) -> dict[str, Any]:
    assert reply.status == 200, reply.body
    return dict(reply.json()["result"])


async def _key(new_key: Any, user: str | None, *scopes: str) -> str:
    body: dict[str, Any] = {"scopes": list(scopes)}
    if user:
        body["user"] = user
    return str((await new_key(**body))["key"])


async def test_the_key_that_made_a_call_cannot_approve_it(
    call: Call, new_key: Any, jp_root_dir: Path, gate: Any
) -> None:
    _notebook(jp_root_dir)
    agent = await _key(new_key, "carol", "agent:run")
    pending_call = _insert(call, agent, "print('self-approved')")
    pending = await _pending(call, token=agent)
    r = await call(
        "POST", f"{APPROVALS}/{pending['id']}", token=agent, body={"decision": "approve"}
    )
    error(r, 403, "self_approval")
    assert not pending_call.done()
    assert _sources(jp_root_dir) == ["x = 1"]
    events = await gate.audit_log.query(AuditQuery(action="mcp.approval"))
    assert [(e["actor"], e["outcome"], e["detail"]["code"]) for e in events] == [
        ("carol", "refused", "self_approval")
    ]
    pending_call.cancel()


async def test_another_credential_of_the_user_with_agent_approve_approves(
    call: Call, new_key: Any, jp_root_dir: Path, gate: Any
) -> None:
    _notebook(jp_root_dir)
    agent = await _key(new_key, "carol", "agent:run")
    other_run_key = await _key(new_key, "carol", "agent:run")
    approver = await _key(new_key, "carol", "agent:approve")
    pending_call = _insert(call, agent, "print('approved')")
    pending = await _pending(call, token=approver)  # the approver sees it too
    url = f"{APPROVALS}/{pending['id']}"
    r = await call("POST", url, token=other_run_key, body={"decision": "approve"})
    error(r, 403, "approval_scope_required")
    r = await call("POST", url, token=approver, body={"decision": "approve"})
    assert r.status == 204, r.body
    result = _result(await asyncio.wait_for(pending_call, 10))
    assert not result["isError"], result
    assert sorted(_sources(jp_root_dir)) == ["print('approved')", "x = 1"]
    events = await gate.audit_log.query(AuditQuery(action="mcp.insert_cell"))
    assert events[-1]["outcome"] == "ok"
    assert events[-1]["detail"]["approved_by"].startswith("carol (apikey:")


async def test_someone_elses_call_and_bad_bodies_are_refused_with_a_code(
    call: Call, new_key: Any, jp_root_dir: Path
) -> None:
    _notebook(jp_root_dir)
    agent = await _key(new_key, "carol", "agent:run")
    mallory = await _key(new_key, "mallory", "agent:run", "agent:approve")
    pending_call = _insert(call, agent, "print('not yours')")
    pending = await _pending(call, token=agent)
    url = f"{APPROVALS}/{pending['id']}"
    assert (await call("GET", APPROVALS, token=mallory)).json() == {"pending": []}
    error(
        await call("POST", url, token=mallory, body={"decision": "approve"}),
        404,
        "unknown_approval",
    )
    error(await call("POST", url, token=mallory, raw=b"{not json"), 400, "invalid_json")
    error(await call("POST", url, token=mallory, body={"decision": "yes"}), 400, "bad_decision")
    error(await call("POST", url, token=mallory, body=["approve"]), 400, "bad_decision")
    error(await call("POST", url, token=mallory, raw=b" " * 5000), 413, "body_too_large")
    error(
        await call("POST", f"{APPROVALS}/ap_nosuch", token=mallory, body={"decision": "reject"}),
        404,
        "unknown_approval",
    )
    assert not pending_call.done()
    pending_call.cancel()


@pytest.mark.gateway_config(owner="carol")
async def test_the_users_browser_session_approves(
    call: Call, new_key: Any, jp_root_dir: Path, jp_serverapp: Any, jp_http_port: int
) -> None:
    """carol owns the server here, so Jupyter's login form logs her in."""
    _notebook(jp_root_dir)
    agent = await _key(new_key, None, "agent:run")
    pending_call = _insert(call, agent, "print('from the browser')")
    browser = await browser_login(
        jp_http_port, jp_serverapp.base_url, jp_serverapp.identity_provider.token
    )
    pending = await _pending(call, headers=browser)
    url = f"{APPROVALS}/{pending['id']}"
    # Jupyter's token is a credential like any other: not a person's session.
    r = await call("POST", url, jupyter=True, body={"decision": "approve"})
    assert r.status == 204, r.body  # another credential of carol's, holding every scope
    assert not _result(await asyncio.wait_for(pending_call, 10))["isError"]

    pending_call = _insert(call, agent, "print('again')")
    pending = await _pending(call, headers=browser)
    url = f"{APPROVALS}/{pending['id']}"
    no_xsrf = {"Cookie": browser["Cookie"]}
    r = await call("POST", url, headers=no_xsrf, body={"decision": "approve"})
    assert r.status == 403, r.body
    r = await call("POST", url, headers=browser, body={"decision": "approve"})
    assert r.status == 204, r.body
    assert not _result(await asyncio.wait_for(pending_call, 10))["isError"]
    assert sorted(_sources(jp_root_dir)) == ["print('again')", "print('from the browser')", "x = 1"]


@pytest.mark.gateway_config(owner="carol")
async def test_jupyters_token_cannot_approve_a_call_it_made(call: Call, jp_root_dir: Path) -> None:
    """A plain single-user setup: an outside agent configured with the server's token."""
    _notebook(jp_root_dir)
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "insert_cell", "arguments": {"path": "nb.ipynb", "source": "y"}},
    }
    pending_call = asyncio.ensure_future(call("POST", "/aiide/api/mcp", jupyter=True, body=body))
    pending = await _pending(call, jupyter=True)
    r = await call(
        "POST", f"{APPROVALS}/{pending['id']}", jupyter=True, body={"decision": "approve"}
    )
    error(r, 403, "self_approval")
    pending_call.cancel()


async def _socket(port: int, base_url: str, key: str) -> WebSocketClientConnection:
    url = f"ws://127.0.0.1:{port}{base_url.rstrip('/')}/aiide/api/chat/ws"
    ws = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"Bearer {key}"}))
    hello = json.loads(str(await ws.read_message()))
    assert hello["type"] == "hello"
    await ws.write_message(json.dumps({"type": "notebook_open", "id": "o1", "path": "nb.ipynb"}))
    return ws


async def _next_frame(ws: WebSocketClientConnection, timeout: float) -> dict[str, Any] | None:
    try:
        text = await asyncio.wait_for(ws.read_message(), timeout)
    except asyncio.TimeoutError:
        return None
    return json.loads(str(text)) if text is not None else None


async def _edit_through_browser(
    call: Call, ws: WebSocketClientConnection, agent: str, approver: str, source: str
) -> dict[str, Any]:
    """An outside agent's edit, approved, sent to the user's open notebook and applied."""
    pending_call = _insert(call, agent, source)
    pending = await _pending(call, token=approver)
    r = await call(
        "POST", f"{APPROVALS}/{pending['id']}", token=approver, body={"decision": "approve"}
    )
    assert r.status == 204, r.body
    while True:
        frame = await _next_frame(ws, 10)
        assert frame is not None, "the user's socket got no notebook request"
        if frame["type"] == "notebook_patch":
            break
    answer = {
        "type": "notebook_result",
        "id": "r1",
        "conversation_id": frame["conversation_id"],
        "run_id": frame["run_id"],
        "request_id": frame["request_id"],
        "status": "applied",
    }
    await ws.write_message(json.dumps(answer))
    assert not _result(await asyncio.wait_for(pending_call, 10))["isError"]
    return frame


async def test_one_users_socket_never_receives_another_users_mcp_requests(
    call: Call, new_key: Any, jp_root_dir: Path, jp_serverapp: Any, jp_http_port: int
) -> None:
    _notebook(jp_root_dir)
    keys = {}
    for user in ("alice", "bob"):
        keys[user] = (
            await _key(new_key, user, "chat"),
            await _key(new_key, user, "agent:run"),
            await _key(new_key, user, "agent:approve"),
        )
    sockets = {
        user: await _socket(jp_http_port, jp_serverapp.base_url, chat)
        for user, (chat, _, _) in keys.items()
    }
    _, agent, approver = keys["alice"]
    alices = await _edit_through_browser(call, sockets["alice"], agent, approver, "a = 1")
    _, agent, approver = keys["bob"]
    bobs = await _edit_through_browser(call, sockets["bob"], agent, approver, "b = 2")
    while (frame := await _next_frame(sockets["alice"], 0.5)) is not None:
        assert frame["type"] != "notebook_patch", f"alice's socket got bob's edit: {frame}"
        assert frame.get("conversation_id") != bobs["conversation_id"], frame
    assert alices["conversation_id"] != bobs["conversation_id"]
    assert alices["conversation_id"].startswith("mcp-")
    for ws in sockets.values():
        ws.close()


async def _waiting(call: Call, key: str, count: int) -> None:
    for _ in range(200):
        if len((await call("GET", APPROVALS, token=key)).json()["pending"]) == count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} calls never waited for approval")


def _refused_text(reply: Reply) -> str:
    result = _result(reply)
    assert result["isError"], result
    return str(result["content"][0]["text"])


@pytest.mark.gateway_config(Agent={"mcp_max_pending_per_client": 2, "mcp_max_pending_per_user": 3})
async def test_waiting_calls_are_capped_per_credential_and_per_user(
    call: Call, new_key: Any, jp_root_dir: Path, gate: Any
) -> None:
    _notebook(jp_root_dir)
    first = await _key(new_key, "carol", "agent:run")
    second = await _key(new_key, "carol", "agent:run")
    waiting = [_insert(call, first, f"a{i} = 1") for i in range(2)]
    await _waiting(call, first, 2)
    text = _refused_text(await _insert(call, first, "a2 = 1"))
    assert "too_many_pending" in text and "mcp_max_pending_per_client" in text
    waiting.append(_insert(call, second, "b0 = 1"))  # another agent of carol's still may
    await _waiting(call, first, 3)
    text = _refused_text(await _insert(call, second, "b1 = 1"))
    assert "too_many_pending" in text and "mcp_max_pending_per_user" in text
    events = await gate.audit_log.query(AuditQuery(action="mcp.insert_cell"))
    assert [e["detail"]["code"] for e in events if e["outcome"] == "refused"] == [
        "too_many_pending",
        "too_many_pending",
    ]
    for pending in waiting:
        pending.cancel()


async def test_a_rejection_with_a_reason_tells_the_agent_why(
    call: Call, new_key: Any, jp_root_dir: Path
) -> None:
    _notebook(jp_root_dir)
    agent = await _key(new_key, "carol", "agent:run")
    approver = await _key(new_key, "carol", "agent:approve")
    waiting = _insert(call, agent, "import os")
    url = f"{APPROVALS}/{(await _pending(call, token=agent))['id']}"
    bad = {"decision": "reject", "reason": 5}
    error(await call("POST", url, token=approver, body=bad), 400, "bad_decision")
    body = {"decision": "reject", "reason": "no os in this notebook"}
    assert (await call("POST", url, token=approver, body=body)).status == 204
    text = _refused_text(await asyncio.wait_for(waiting, 10))
    assert "rejected" in text and "no os in this notebook" in text
    assert _sources(jp_root_dir) == ["x = 1"]
