"""A small MCP server written with the official SDK, the peer of aiide's MCP client.

    python mcp_peer.py stdio MODE
    python mcp_peer.py http MODE PORT

MODE ``ok``: tools ``add`` and ``shout``; ``hang``: never answers ``tools/list``;
``malformed``: ``add`` plus ``broken`` whose input schema is not a JSON schema; ``slow``:
as ``ok``, but it starts 3 s late (a healthy server on a loaded machine) and then writes
``slow-peer.ready`` in its working directory.
"""

from __future__ import annotations

import sys
from typing import Any

import anyio
import mcp.types as types
from mcp.server.lowlevel import Server

ADD = types.Tool(
    name="add",
    description="Add two integers.",
    inputSchema={
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
        "additionalProperties": False,
    },
)
SHOUT = types.Tool(
    name="shout",
    description="Upper-case a text.",
    inputSchema={"type": "object", "properties": {"text": {"type": "string"}}},
)
BROKEN = types.Tool(
    name="broken",
    description="A tool whose schema is malformed.",
    inputSchema={"type": "object", "properties": {"x": {"type": 5}}},
)


def build(mode: str) -> Server[Any, Any]:
    server: Server[Any, Any] = Server("aiide-test-peer")

    @server.list_tools()  # type: ignore[untyped-decorator,no-untyped-call,misc]
    async def list_tools() -> list[types.Tool]:
        if mode == "hang":
            await anyio.sleep_forever()
        return [ADD, BROKEN] if mode == "malformed" else [ADD, SHOUT]

    @server.call_tool(validate_input=False)  # type: ignore[untyped-decorator,misc]
    async def call_tool(name: str, arguments: dict[str, Any]) -> list[types.TextContent]:
        if name == "add":
            text = str(int(arguments["a"]) + int(arguments["b"]))
        elif name == "shout":
            text = str(arguments.get("text", "")).upper()
        else:
            raise ValueError(f"no tool {name}")
        return [types.TextContent(type="text", text=text)]

    return server


async def stdio(mode: str) -> None:
    from mcp.server.stdio import stdio_server

    server = build(mode)
    if mode == "slow":
        await anyio.sleep(3)
    async with stdio_server() as (read, write):
        if mode == "slow":
            await anyio.Path("slow-peer.ready").write_text("serving")
        await server.run(read, write, server.create_initialization_options())


def http(mode: str, port: int) -> None:
    import contextlib
    from collections.abc import AsyncIterator

    import uvicorn
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.types import Receive, Scope, Send

    manager = StreamableHTTPSessionManager(app=build(mode), json_response=True, stateless=True)

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        await manager.handle_request(scope, receive, send)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with manager.run():
            yield

    app = Starlette(routes=[Mount("/mcp", app=endpoint)], lifespan=lifespan)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        anyio.run(stdio, sys.argv[2])
    else:
        http(sys.argv[2], int(sys.argv[3]))
