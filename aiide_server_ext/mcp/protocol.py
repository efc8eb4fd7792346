"""MCP's JSON-RPC over streamable HTTP, stateless with JSON responses (the transport allows
a server that never opens an SSE stream): initialize, ping, tools/list, tools/call."""

from __future__ import annotations

from typing import Any

from .._version import __version__
from ..seams import Caller
from .tools import UNKNOWN, Credential, McpRefusal, McpTools

PROTOCOL_VERSIONS = ("2025-06-18", "2025-03-26", "2024-11-05")


def _error(mid: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": mid, "error": {"code": code, "message": message}}


async def handle(
    tools: McpTools, caller: Caller, message: Any, credential: Credential = UNKNOWN
) -> dict[str, Any] | None:
    """One JSON-RPC message; None for notifications and responses (nothing to answer)."""
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return _error(None, -32600, "invalid JSON-RPC request")
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
            text, is_error = await tools.call(caller, name, arguments, credential), False
        except McpRefusal as e:
            text, is_error = f"error ({e.code}): {e.message}", True
        result = {"content": [{"type": "text", "text": text}], "isError": is_error}
    else:
        return _error(mid, -32601, f"method {method!r} is not supported")
    return {"jsonrpc": "2.0", "id": mid, "result": result}
