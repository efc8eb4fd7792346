"""aiide's MCP endpoint with the official ``mcp`` SDK as the outside agent: tools listed,
read tools answer, an edit waits for a user's approval, a refused scope is an MCP error."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from agent.conftest import (  # noqa: F401  (fixtures shared with the agent suite)
    aiide_kernelspec,
    fake_anthropic,
    fake_openai,
    jp_server_config,
)
from gateway.helpers import browser_login
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.exceptions import McpError

from aiide_server_ext.agent.tool_policy import ToolPolicy
from aiide_server_ext.mcp.tools import McpTools
from aiide_server_ext.seams import Caller, GateRefusal, OpenGate

pytestmark = pytest.mark.xdist_group("mcp")


def _nb(root: Path) -> None:
    cell: dict[str, Any] = {
        "id": "c1",
        "cell_type": "code",
        "metadata": {},
        "source": "x = 6 * 7",
        "outputs": [],
        "execution_count": None,
    }
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [cell]}
    (root / "nb.ipynb").write_text(json.dumps(nb))


def _url(server: Any) -> tuple[str, dict[str, str]]:
    url = f"http://127.0.0.1:{server.port}{server.base_url}aiide/api/mcp"
    return url, {"Authorization": f"token {server.identity_provider.token}"}


@asynccontextmanager
async def outside_agent(server: Any, root: Path, **session: Any) -> AsyncIterator[ClientSession]:
    """The official SDK's client, initialized against the server's MCP endpoint, with
    ``nb.ipynb`` in the server's root."""
    _nb(root)
    url, headers = _url(server)
    async with (
        streamablehttp_client(url, headers=headers) as (read, write, _),
        ClientSession(read, write, **session) as client,
    ):
        await client.initialize()
        yield client


async def test_outside_agent_lists_reads_and_edits_after_approval(
    jp_serverapp: Any, jp_fetch: Any, jp_root_dir: Path
) -> None:
    async with outside_agent(jp_serverapp, jp_root_dir) as session:
        names = {t.name for t in (await session.list_tools()).tools}
        assert {"list_cells", "read_cell", "insert_cell", "run_cell"} <= names
        got = await session.call_tool("read_cell", {"path": "nb.ipynb", "cell_id": "c1"})
        assert not got.isError and "x = 6 * 7" in got.content[0].text  # type: ignore[union-attr]

        call = asyncio.ensure_future(
            session.call_tool("insert_cell", {"path": "nb.ipynb", "source": "print(x)"})
        )
        pending = await _wait_pending(jp_fetch)
        assert pending[0]["tool"] == "insert_cell" and not call.done()
        # The agent's own credential (the server token) may not approve: the person does,
        # from the browser (cookie + XSRF).
        refused = await _approve(jp_fetch, pending[0]["id"], raise_error=False)
        assert refused.code == 403 and json.loads(refused.body)["code"] == "self_approval"
        await _approve(jp_fetch, pending[0]["id"], headers=await _browser(jp_serverapp))
        done = await asyncio.wait_for(call, 10)
        assert not done.isError, done
    cells = json.loads((jp_root_dir / "nb.ipynb").read_text())["cells"]
    assert "".join(cells[0]["source"]) == "print(x)"


async def _wait_pending(jp_fetch: Any) -> list[dict[str, Any]]:
    for _ in range(200):
        r = await jp_fetch("aiide", "api", "mcp", "approvals")
        pending: list[dict[str, Any]] = json.loads(r.body)["pending"]
        if pending:
            return pending
        await asyncio.sleep(0.05)
    raise AssertionError("the call never waited for approval")


async def _approve_late(jp_serverapp: Any, jp_fetch: Any, pending_id: str) -> Any:
    """The person approves from the browser, after the agent stopped waiting."""
    for _ in range(100):  # the server notices the agent left
        r = await jp_fetch("aiide", "api", "mcp", "approvals")
        if not json.loads(r.body)["pending"]:
            break
        await asyncio.sleep(0.05)
    return await _approve(
        jp_fetch, pending_id, headers=await _browser(jp_serverapp), raise_error=False
    )


async def _browser(jp_serverapp: Any) -> dict[str, str]:
    """The person's browser: its session cookie and XSRF header, and no token."""
    browser = await browser_login(
        jp_serverapp.port, jp_serverapp.base_url, jp_serverapp.identity_provider.token
    )
    return {**browser, "Authorization": ""}


async def _approve(jp_fetch: Any, pending_id: str, **request: Any) -> Any:
    """POST an approval of a waiting call (by default with the agent's own token)."""
    return await jp_fetch(
        "aiide",
        "api",
        "mcp",
        "approvals",
        pending_id,
        method="POST",
        body=json.dumps({"decision": "approve"}),
        **request,
    )


async def test_an_approval_after_the_agent_timed_out_and_left_applies_nothing(
    jp_serverapp: Any, jp_fetch: Any, jp_root_dir: Path
) -> None:
    async with outside_agent(
        jp_serverapp, jp_root_dir, read_timeout_seconds=timedelta(seconds=1)
    ) as session:
        call = asyncio.ensure_future(
            session.call_tool("insert_cell", {"path": "nb.ipynb", "source": "print(x)"})
        )
        (pending,) = await _wait_pending(jp_fetch)
        with pytest.raises(McpError, match="Timed out"):
            await call
    # the agent gave up and closed its session: the person's approval comes too late
    late = await _approve_late(jp_serverapp, jp_fetch, pending["id"])
    assert late.code == 409 and json.loads(late.body)["code"] == "approval_expired"
    cells = json.loads((jp_root_dir / "nb.ipynb").read_text())["cells"]
    assert ["".join(c["source"]) for c in cells] == ["x = 6 * 7"]


async def test_a_call_the_agent_cancelled_is_never_applied(
    jp_serverapp: Any, jp_fetch: Any, jp_root_dir: Path
) -> None:
    """A client that stays connected but gives up on the request (the TypeScript SDK
    sends ``notifications/cancelled`` when its timeout passes)."""
    _nb(jp_root_dir)
    url, headers = _url(jp_serverapp)
    body = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": "insert_cell", "arguments": {"path": "nb.ipynb", "source": "y"}},
    }
    cancel = {
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {"requestId": 7, "reason": "timed out"},
    }
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        call = asyncio.ensure_future(http.post(url, json=body))
        (pending,) = await _wait_pending(jp_fetch)
        assert (await http.post(url, json=cancel)).status_code == 202
        answer = (await asyncio.wait_for(call, 10)).json()["result"]
    assert answer["isError"] and "approval_expired" in answer["content"][0]["text"]
    late = await _approve_late(jp_serverapp, jp_fetch, pending["id"])
    assert late.code == 409 and json.loads(late.body)["code"] == "approval_expired"
    cells = json.loads((jp_root_dir / "nb.ipynb").read_text())["cells"]
    assert ["".join(c["source"]) for c in cells] == ["x = 6 * 7"]


class ScopedGate(OpenGate):
    async def admit(self, caller: Caller, route_class: str, scope: str | None = None) -> None:
        if scope and not caller.has_scope(scope):
            raise GateRefusal(403, "missing_scope", f"this token lacks the '{scope}' scope")


@pytest.mark.asyncio
async def test_a_tool_outside_the_token_scopes_is_refused(tmp_path: Path) -> None:
    from aiide_server_ext.mcp.protocol import handle

    tools = McpTools(ScopedGate(), ToolPolicy(), None, str(tmp_path))  # type: ignore[arg-type]
    caller = Caller("bob", scopes=frozenset({"agent:run"}))
    msg = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "run_cell", "arguments": {"path": "nb.ipynb", "cell_id": "c1"}},
    }
    reply = await handle(tools, caller, msg)
    assert reply is not None and reply["result"]["isError"]
    assert "missing_scope" in reply["result"]["content"][0]["text"]


class Knowledge:
    """The knowledge part's service as the tools see it: ``search(caller, query, k)``."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, int]] = []

    async def search(self, caller: Caller, query: str, k: int) -> list[dict[str, Any]]:
        self.asked.append((caller.username, query, k))
        return [{"citation": "notes.md:3", "text": "The answer is 42."}]


@pytest.mark.asyncio
async def test_search_knowledge_is_exposed_when_the_server_has_an_index(tmp_path: Path) -> None:
    from aiide_server_ext.mcp.protocol import handle

    settings: dict[str, Any] = {}
    tools = McpTools(
        OpenGate(),
        ToolPolicy(),
        None,  # type: ignore[arg-type]
        str(tmp_path),
        knowledge=lambda: settings.get("aiide_knowledge"),
    )
    caller = Caller("bob")

    async def names() -> set[str]:
        msg = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        reply = await handle(tools, caller, msg)
        assert reply is not None
        return {t["name"] for t in reply["result"]["tools"]}

    assert "search_knowledge" not in await names()
    knowledge = settings["aiide_knowledge"] = Knowledge()  # the knowledge part loads later
    assert "search_knowledge" in await names()
    call = {"name": "search_knowledge", "arguments": {"query": "answer", "k": 2}}
    reply = await handle(
        tools, caller, {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": call}
    )
    assert reply is not None and not reply["result"]["isError"]
    assert "[notes.md:3]" in reply["result"]["content"][0]["text"]
    assert knowledge.asked == [("bob", "answer", 2)]
