"""MCP's JSON-RPC over streamable HTTP, stateless with JSON responses (the transport allows
a server that never opens an SSE stream): initialize, ping, tools/list, tools/call."""

from __future__ import annotations

import asyncio
from typing import Any

from .._version import __version__
from ..seams import Caller
from .tools import UNKNOWN, Credential, McpRefusal, McpTools

PROTOCOL_VERSIONS = ("2025-06-18", "2025-03-26", "2024-11-05")


def _error(mid: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": mid, "error": {"code": code, "message": message}}


async def handle(
    tools: McpTools,
    caller: Caller,
    message: Any,
    credential: Credential = UNKNOWN,
    gone: asyncio.Event | None = None,
) -> dict[str, Any] | None:
    """One JSON-RPC message; None for notifications and responses (nothing to answer).
    ``gone`` is set when the request that carried it is abandoned (connection closed)."""
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return _error(None, -32600, "invalid JSON-RPC request")
    if message.get("method") == "notifications/cancelled" and "id" not in message:
        # the agent gave up on a request (its timeout): a call of it waiting for
        # approval stops waiting, and nothing it asked applies
        params = message.get("params")
        if isinstance(params, dict):
            tools.cancelled(caller, credential, params.get("requestId"))
        return None
    if "method" not in message or "id" not in message:
        return None
    mid, method = message["id"], message["method"]
    params = message.get("params") or {}
    if method == "initialize":
        asked = params.get("protocolVersion")
        result: dict[str, Any] = {
            "protocolVersion": asked if asked in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[0],
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": "aiide", "version": __version__},
        }
    elif method == "ping":
        result = {}
    elif method == "tools/list":
        result = {
            "tools": [
                {
                    "name": d["name"],
                    "description": d["description"],
                    "inputSchema": d["input_schema"],
                }
                for d in tools.definitions()
            ]
        }
    elif method == "tools/call":
        name, arguments = params.get("name"), params.get("arguments") or {}
        if not isinstance(name, str) or not isinstance(arguments, dict):
            return _error(mid, -32602, "tools/call needs 'name' and object 'arguments'")
        try:
            text = await tools.call(caller, name, arguments, credential, request_id=mid, gone=gone)
            is_error = False
        except McpRefusal as e:
            text, is_error = f"error ({e.code}): {e.message}", True
        result = {"content": [{"type": "text", "text": text}], "isError": is_error}
    else:
        return _error(mid, -32601, f"method {method!r} is not supported")
    return {"jsonrpc": "2.0", "id": mid, "result": result}
