"""A chat over the student's WebSocket, through the hub's proxy, until the run ends."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect


async def _chat(
    url: str,
    token: str,
    text: str,
    task: str,
    timeout: float,
    stop_at: frozenset[str],
    model: str | None = None,
    context: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    request = HTTPRequest(url, headers={"Authorization": f"token {token}"})
    ws = await websocket_connect(request)
    events: list[dict[str, Any]] = []
    try:
        message = {"type": "chat", "id": "m1", "text": text, "task": task}
        if model is not None:
            message["model"] = model
        if context is not None:
            message["context"] = context
        ws.write_message(json.dumps(message))
        while True:
            frame = await asyncio.wait_for(ws.read_message(), timeout)
            if frame is None:
                break
            event = json.loads(frame)
            events.append(event)
            if (
                event["type"] in stop_at
                or (event["type"] == "error" and event.get("reply_to") == "m1")
                or (event["type"] == "error" and event.get("run_id"))
            ):
                break
    finally:
        ws.close()
    return events


def chat(
    hub_url: str,
    user: str,
    token: str,
    text: str = "hi",
    task: str = "chat",
    timeout: float = 30,
    stop_at: frozenset[str] = frozenset({"run_finished"}),
    model: str | None = None,
    context: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The events until the run finishes (or one of ``stop_at``) or an error; ``model``:
    the agent's model name to use; ``context``: the chat frame's (notebook, cell_id)."""
    url = hub_url.replace("http", "ws", 1) + f"/user/{user}/aiide/api/chat/ws"
    return asyncio.run(_chat(url, token, text, task, timeout, stop_at, model, context))


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(e.get("text", "") for e in events if e["type"] == "token")


def error_of(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((e for e in events if e["type"] == "error"), None)
