"""An outside agent's paused call reaches its person's chat sidebar, pushed over the chat
socket as the events of the agent's own approval cards (docs/protocol.md), and an answer
given anywhere updates the card.

``carol`` has a chat socket open (as her browser would) and an outside agent on an API key
with ``agent:run``; a third key of hers with ``agent:approve`` answers. Every frame the
socket receives is checked against docs/protocol.schema.json (``agent/chat.py``).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from agent.chat import Chat
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from .helpers import Call
from .test_approvals import APPROVALS, _insert, _key, _notebook, _pending, _result, _sources


async def _chat(port: int, base_url: str, key: str, *, open_notebook: bool = False) -> Chat:
    url = f"ws://127.0.0.1:{port}{base_url.rstrip('/')}/aiide/api/chat/ws"
    ws = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"Bearer {key}"}))
    chat = Chat(ws)
    assert (await chat.recv())["type"] == "hello"
    if open_notebook:
        await chat.send(type="notebook_open", id="o1", path="nb.ipynb")
    return chat


async def _silent(chat: Chat, seconds: float) -> None:
    try:
        frame = await chat.recv(seconds)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"this socket should hear nothing, got {frame}")


async def test_a_paused_call_is_pushed_to_the_users_sockets_as_an_approval_card(
    call: Call, new_key: Any, jp_root_dir: Path, jp_serverapp: Any, jp_http_port: int
) -> None:
    _notebook(jp_root_dir)
    base = jp_serverapp.base_url
    carol = await _chat(jp_http_port, base, await _key(new_key, "carol", "chat", "agent:run"))
    dave = await _chat(jp_http_port, base, await _key(new_key, "dave", "chat", "agent:run"))
    agent = await _key(new_key, "carol", "agent:run")
    approver = await _key(new_key, "carol", "agent:approve")

    waiting = _insert(call, agent, "print('from the agent')")
    started = await carol.until("run_started", timeout=10)  # pushed: no resume was sent
    assert started["provider"] == "mcp" and started["task"] == "agent"
    assert started["model"].startswith("outside agent (apikey:")
    cid, run_id = started["conversation_id"], started["run_id"]
    assert cid.startswith("mcp-")
    announced = await carol.until("tool_call", run_id=run_id)
    assert (announced["name"], announced["decision"]) == ("insert_cell", "approve")
    ask = await carol.until("approval_required", run_id=run_id)
    assert ask["call_id"] == announced["call_id"]
    assert ask["arguments"] == {"path": "nb.ipynb", "source": "print('from the agent')"}
    (op,) = ask["patch"]["ops"]  # the cell-level diff the card shows
    assert (op["op"], op["after_id"], op["cell"]["source"]) == (
        "insert",
        None,
        "print('from the agent')",
    )

    pending = await _pending(call, token=approver)
    assert (pending["id"], pending["conversation_id"], pending["run_id"]) == (
        ask["call_id"],
        cid,
        run_id,
    )
    approve = {"decision": "approve"}
    r = await call("POST", f"{APPROVALS}/{pending['id']}", token=approver, body=approve)
    assert r.status == 204, r.body
    resolved = await carol.until("approval_resolved", run_id=run_id)
    assert resolved["decision"] == "approve"
    assert resolved["by"].startswith("carol (apikey:")
    result = await carol.until("tool_result", run_id=run_id)
    assert result["ok"] and result["call_id"] == ask["call_id"]
    finished = await carol.until("run_finished", run_id=run_id)
    assert finished["status"] == "completed"
    assert not _result(await asyncio.wait_for(waiting, 10))["isError"]
    assert sorted(_sources(jp_root_dir)) == ["print('from the agent')", "x = 1"]
    await _silent(dave, 0.3)  # another user's socket hears none of it

    # The conversation is carol's: listed, and a new page replays the card from the store.
    chat_key = await _key(new_key, "carol", "chat", "agent:run")
    listed = (await call("GET", "/aiide/api/agent/conversations", token=chat_key)).json()
    assert cid in json.dumps(listed)
    later = await _chat(jp_http_port, base, chat_key)
    await later.send(type="resume", id="r1", conversation_id=cid, after_seq=0)
    await later.until("resumed", reply_to="r1")
    kinds = [m["type"] for m in later.received if m.get("run_id") == run_id]
    assert kinds == [
        "run_started",
        "tool_call",
        "approval_required",
        "approval_resolved",
        "tool_result",
        "run_finished",
    ]
    for chat in (carol, dave, later):
        chat.ws.close()


async def test_an_approved_edit_of_an_open_notebook_goes_to_the_card_that_approved_it(
    call: Call, new_key: Any, jp_root_dir: Path, jp_serverapp: Any, jp_http_port: int
) -> None:
    """With the notebook open, the approved patch is sent in the same run: the front end
    finds the approved card and applies it without asking a second time."""
    _notebook(jp_root_dir)
    chat_key = await _key(new_key, "carol", "chat", "agent:run")
    carol = await _chat(jp_http_port, jp_serverapp.base_url, chat_key, open_notebook=True)
    agent = await _key(new_key, "carol", "agent:run")
    approver = await _key(new_key, "carol", "agent:approve")
    waiting = _insert(call, agent, "y = 2")
    ask = await carol.until("approval_required", timeout=10)
    approve = {"decision": "approve"}
    r = await call("POST", f"{APPROVALS}/{ask['call_id']}", token=approver, body=approve)
    assert r.status == 204, r.body
    request = await carol.until("notebook_patch", run_id=ask["run_id"])
    assert request["patch"] == ask["patch"]  # what was approved is what is applied
    await carol.send(
        type="notebook_result",
        id="n1",
        conversation_id=request["conversation_id"],
        run_id=request["run_id"],
        request_id=request["request_id"],
        status="applied",
    )
    result = await carol.until("tool_result", run_id=ask["run_id"])
    assert result["ok"] and "applied in the open notebook" in result["content"]
    assert not _result(await asyncio.wait_for(waiting, 10))["isError"]
    carol.ws.close()


async def test_a_rejected_or_expired_call_closes_its_card(
    call: Call, new_key: Any, jp_root_dir: Path, jp_serverapp: Any, jp_http_port: int
) -> None:
    _notebook(jp_root_dir)
    carol = await _chat(
        jp_http_port, jp_serverapp.base_url, await _key(new_key, "carol", "chat", "agent:run")
    )
    agent = await _key(new_key, "carol", "agent:run")
    approver = await _key(new_key, "carol", "agent:approve")
    waiting = _insert(call, agent, "import os")
    ask = await carol.until("approval_required", timeout=10)
    body = {"decision": "reject", "reason": "no os in this notebook"}
    r = await call("POST", f"{APPROVALS}/{ask['call_id']}", token=approver, body=body)
    assert r.status == 204, r.body
    resolved = await carol.until("approval_resolved", run_id=ask["run_id"])
    assert (resolved["decision"], resolved["reason"]) == ("reject", "no os in this notebook")
    result = await carol.until("tool_result", run_id=ask["run_id"])
    assert not result["ok"] and result["error"]["code"] == "rejected"
    assert (await carol.until("run_finished", run_id=ask["run_id"]))["status"] == "completed"
    reply = _result(await asyncio.wait_for(waiting, 10))
    assert reply["isError"], reply
    assert "rejected insert_cell: no os in this notebook" in reply["content"][0]["text"]

    jp_serverapp.web_app.settings["aiide_mcp"].approval_wait = 0.3
    waiting = _insert(call, agent, "import sys")
    ask = await carol.until("approval_required", timeout=10)
    resolved = await carol.until("approval_resolved", run_id=ask["run_id"])
    assert (resolved["decision"], resolved["by"]) == ("expired", None)
    assert (await carol.until("run_finished", run_id=ask["run_id"]))["status"] == "expired"
    reply = _result(await asyncio.wait_for(waiting, 10))
    assert reply["isError"] and "approval_required" in reply["content"][0]["text"]
    assert _sources(jp_root_dir) == ["x = 1"]
    carol.ws.close()
