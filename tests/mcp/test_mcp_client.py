"""aiide as an MCP client, with a test MCP server written with the official SDK as the peer
(``mcp_peer.py``, over stdio and streamable HTTP): its tools are agent tools in a real chat
run against the fake model (policy and approval included); a hanging server or a malformed
schema is reported and skipped while the run goes on."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent.chat import connect
from agent.conftest import (  # noqa: F401  (fixtures shared with the agent suite)
    aiide_kernelspec,
    fake_anthropic,
    fake_openai,
    server_config,
)
from fakes import FakeAnthropic, FakeOpenAI, Reply, ToolUse
from traitlets.config import Config

from aiide_server_ext.agent.tools.mcp_client import McpClients, ServerSpec, tool_name

pytestmark = pytest.mark.xdist_group("mcp")

PEER = str(Path(__file__).with_name("mcp_peer.py"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


HTTP_PORT = _free_port()


def stdio(mode: str, **extra: Any) -> dict[str, Any]:
    return {"transport": "stdio", "command": sys.executable, "args": [PEER, "stdio", mode], **extra}


@pytest.fixture
def mcp_agent() -> dict[str, Any]:
    """``c.Agent.*`` for the MCP client (tests parametrize it)."""
    return {}


@pytest.fixture
def jp_server_config(
    jp_root_dir: Path,
    fake_anthropic: FakeAnthropic,  # noqa: F811
    fake_openai: FakeOpenAI,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    mcp_agent: dict[str, Any],
) -> Config:
    return server_config(jp_root_dir, fake_anthropic, fake_openai, monkeypatch, **mcp_agent)


@pytest.fixture
def http_peer() -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, PEER, "http", "ok", str(HTTP_PORT)])
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", HTTP_PORT), 0.1).close()
                break
            except OSError:
                assert proc.poll() is None, "the HTTP peer exited"
                import time

                time.sleep(0.05)
        yield f"http://127.0.0.1:{HTTP_PORT}/mcp/"
    finally:
        proc.terminate()
        proc.wait(10)


def tool_names(fake: FakeAnthropic, i: int = 0) -> set[str]:
    return {t["name"] for t in fake.requests[i].body["tools"]}


async def listed(jp_fetch: Any) -> dict[str, Any]:
    """The servers listed now (and their state): a chat does not wait for a server past
    its timeout (one starting slowly joins later), these tests want them all first."""
    r = await jp_fetch("aiide/api/mcp/servers/refresh", method="POST", body="{}")
    return {s["name"]: s for s in json.loads(r.body)["servers"]}


WEB = {"transport": "http", "url": f"http://127.0.0.1:{HTTP_PORT}/mcp/", "risk": "low"}


@pytest.mark.parametrize(
    "mcp_agent", [{"mcp_servers": {"peer": stdio("ok", risk="medium"), "web": WEB}}]
)
async def test_agent_calls_stdio_and_http_mcp_tools_with_approval(
    http_peer: str,
    jp_fetch: Any,
    jp_ws_fetch: Any,
    fake_anthropic: FakeAnthropic,  # noqa: F811
) -> None:
    assert {s["state"] for s in (await listed(jp_fetch)).values()} == {"ok"}
    fake_anthropic.push(
        Reply(tools=[ToolUse("mcp__peer__add", {"a": 2, "b": 40}, id="toolu_add")]),
        Reply(tools=[ToolUse("mcp__web__shout", {"text": "hi"}, id="toolu_shout")]),
        Reply(tools=[ToolUse("mcp__peer__add", {"a": "two"}, id="toolu_bad")]),
        Reply(text="Done."),
    )
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text="use the tools")
    ask = await chat.until("approval_required")  # medium risk: the default roles approve
    assert ask["name"] == "mcp__peer__add" and ask["risk"] == "medium"
    await chat.decide(ask, "approve")
    first = await chat.until("tool_result", call_id="toolu_add")
    assert first["ok"] and first["content"] == "42"
    call = await chat.until("tool_call", call_id="toolu_shout")
    assert call["risk"] == "low" and call["decision"] == "auto"
    second = await chat.until("tool_result", call_id="toolu_shout")
    assert second["ok"] and second["content"] == "HI"
    bad = await chat.until("tool_result", call_id="toolu_bad")
    assert bad["error"]["code"] == "validation_error"  # checked against the server's schema
    assert (await chat.until("run_finished"))["status"] == "completed"
    assert {"mcp__peer__add", "mcp__peer__shout", "mcp__web__add"} <= tool_names(fake_anthropic)


BROKEN = {
    "stuck": stdio("hang", timeout=1.0),
    "odd": stdio("malformed", risk="low"),
    "gone": {"command": "/nonexistent/mcp-server"},
}


@pytest.mark.parametrize("mcp_agent", [{"mcp_servers": BROKEN, "mcp_refresh_seconds": 0}])
async def test_hanging_and_malformed_servers_are_reported_and_skipped(
    jp_fetch: Any,
    jp_ws_fetch: Any,
    fake_anthropic: FakeAnthropic,  # noqa: F811
) -> None:
    fake_anthropic.push(
        Reply(tools=[ToolUse("mcp__odd__add", {"a": 1, "b": 1}, id="toolu_odd")]),
        Reply(text="Done."),
    )
    await listed(jp_fetch)
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text="add one and one")
    result = await chat.until("tool_result", call_id="toolu_odd")
    assert result["ok"] and result["content"] == "2"
    assert (await chat.until("run_finished"))["status"] == "completed"
    names = tool_names(fake_anthropic)
    assert "mcp__odd__add" in names and "mcp__odd__broken" not in names
    assert not any(n.startswith(("mcp__stuck", "mcp__gone")) for n in names)

    status = await listed(jp_fetch)
    assert status["stuck"]["state"] == "failed" and "1s" in status["stuck"]["error"]
    assert status["gone"]["state"] == "failed" and "FileNotFoundError" in status["gone"]["error"]
    assert status["odd"]["state"] == "ok" and "malformed" in status["odd"]["skipped"][0]
    r = await jp_fetch(
        "aiide/api/mcp/servers/refresh", method="POST", body=json.dumps({"name": "odd"})
    )
    (odd,) = json.loads(r.body)["servers"][1:2]
    assert odd["name"] == "odd" and odd["tools"] == ["mcp__odd__add"]


def test_config_entries_are_checked() -> None:
    clients = McpClients.from_config(
        {"ok": stdio("ok"), "x": {"transport": "ftp"}, "y": {"url": "file:///"}, "b d": {}}
    )
    assert list(clients.servers) == ["ok"] and len(clients.problems()) == 3
    spec = ServerSpec.parse("h", {"url": "https://e/mcp", "headers": {"A": "${NOPE:-d}"}}, 5)
    assert spec.transport == "http" and spec.headers == {"A": "d"} and spec.risk == "high"
    assert tool_name("s", "a.b/c") == "mcp__s__a_b_c"


@pytest.mark.asyncio
async def test_a_server_that_hangs_during_a_call_times_out() -> None:
    clients = McpClients.from_config({"p": stdio("ok", timeout=20.0)}, refresh_seconds=0)
    try:
        await clients.ready()
        conn = clients.servers["p"]
        spec, conn.spec = conn.spec, ServerSpec.parse("p", stdio("ok", timeout=1.0), 1.0)

        async def never(session: Any) -> None:
            await asyncio.sleep(30)

        with pytest.raises(asyncio.TimeoutError):
            await conn.do(never)
        conn.spec = spec
        ok = await clients.tools()["mcp__p__add"].run(None, {"a": 1, "b": 2})  # type: ignore[arg-type]
        assert ok.content == "3"  # a fresh session
    finally:
        await clients.close()
