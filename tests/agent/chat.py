"""A chat-socket client for tests: every frame it receives is validated against
docs/protocol.schema.json, and it checks each conversation's seq is gap-free and ordered."""

from __future__ import annotations

import asyncio
import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA_PATH = Path(__file__).parents[2] / "docs" / "protocol.schema.json"


@cache
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


@cache
def validator(definition: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"#/$defs/{definition}", "$defs": schema()["$defs"]})


def check(definition: str, message: dict[str, Any]) -> None:
    errors = list(validator(definition).iter_errors(message))
    assert not errors, f"{message} breaks the protocol: {[e.message for e in errors]}"


class Chat:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.received: list[dict[str, Any]] = []
        self.last_seq: dict[str, int] = {}
        self.strict_seq = True

    async def send(self, **message: Any) -> None:
        check("ClientMessage", message)
        await self.ws.write_message(json.dumps(message))

    async def send_raw(self, frame: str | bytes) -> None:
        await self.ws.write_message(frame, binary=isinstance(frame, bytes))

    async def recv(self, timeout: float = 20) -> dict[str, Any]:
        frame = await asyncio.wait_for(self.ws.read_message(), timeout)
        assert frame is not None, "the server closed the socket"
        message = json.loads(frame)
        check("ServerMessage", message)
        if message.get("seq") is not None:
            cid = message["conversation_id"]
            last = self.last_seq.get(cid)
            if last is not None:
                assert message["seq"] > last, f"seq went back: {last} -> {message}"
                if self.strict_seq:
                    assert message["seq"] == last + 1, f"seq gap: {last} -> {message}"
            self.last_seq[cid] = message["seq"]
        self.received.append(message)
        return message

    async def until(self, kind: str, timeout: float = 30, **fields: Any) -> dict[str, Any]:
        """Read until a message of this type (and these field values) arrives."""

        async def loop() -> dict[str, Any]:
            while True:
                message = await self.recv(timeout)
                if message["type"] == kind and all(message.get(k) == v for k, v in fields.items()):
                    return message

        return await asyncio.wait_for(loop(), timeout)

    async def decide(self, ask: dict[str, Any], decision: str = "approve", **kw: Any) -> None:
        """Answer an approval_required event."""
        ids = {k: ask[k] for k in ("conversation_id", "run_id", "call_id")}
        await self.send(**{"type": "approve", **ids, "decision": decision, **kw})

    async def approve_next(self, **match: Any) -> dict[str, Any]:
        """Wait for the next approval_required (matching these fields) and approve it."""
        ask = await self.until("approval_required", **match)
        await self.decide(ask)
        return ask

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.received if m["type"] == kind]

    def text(self, run_id: str) -> str:
        return "".join(
            m["text"] for m in self.received if m["type"] == "token" and m["run_id"] == run_id
        )


async def connect(jp_ws_fetch: Any) -> Chat:
    chat = Chat(await jp_ws_fetch("aiide", "api", "chat", "ws"))
    hello = await chat.recv()
    assert hello["type"] == "hello"
    return chat
