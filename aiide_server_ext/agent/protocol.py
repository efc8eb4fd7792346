"""Parsing client frames (docs/protocol.md). Hand-written checks, not a schema engine:
every frame of every socket passes here, and the tests hold these checks to the schema."""

from __future__ import annotations

import json
from typing import Any

from .errors import AgentError

PROTOCOL_VERSION = 1
ID_MAX = 128

_STR = (str,)
_OPT_STR = (str, type(None))
#: type -> {field: (accepted types, required)}
FIELDS: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "chat": {
        "text": (_STR, True),
        "conversation_id": (_OPT_STR, False),
        "task": (_STR, False),
        "model": (_STR, False),
        "context": ((dict,), False),
    },
    "approve": {
        "conversation_id": (_STR, True),
        "run_id": (_STR, True),
        "call_id": (_STR, True),
        "decision": (_STR, True),
        "reason": (_STR, False),
        "arguments": ((dict,), False),
    },
    "fix": {
        "conversation_id": (_OPT_STR, False),
        "path": (_STR, True),
        "cell_id": (_STR, False),
        "model": (_STR, False),
        "max_attempts": ((int,), False),
    },
    "cancel": {"conversation_id": (_STR, True), "run_id": (_STR, True)},
    "resume": {"conversation_id": (_STR, True), "after_seq": ((int,), True)},
    "ping": {},
    "notebook_open": {"path": (_STR, True)},
    "notebook_close": {"path": (_STR, True)},
    "notebook_result": {
        "conversation_id": (_STR, True),
        "run_id": (_STR, True),
        "request_id": (_STR, True),
        "status": (_STR, True),
        "reason": (_STR, False),
        "outputs": ((list,), False),
    },
}
ENUMS = {
    ("chat", "task"): {"agent", "chat"},
    ("approve", "decision"): {"approve", "reject"},
    ("notebook_result", "status"): {"applied", "ok", "error", "conflict", "rejected"},
}
ID_FIELDS = {"conversation_id", "run_id", "call_id", "request_id", "path", "model", "cell_id"}


def parse(frame: str | bytes, max_bytes: int) -> dict[str, Any]:
    """A checked client message, or AgentError with the protocol's code."""
    if isinstance(frame, bytes):
        raise AgentError("bad_frame", "binary frames are not part of the protocol")
    if len(frame) > max_bytes and len(frame.encode()) > max_bytes:
        raise AgentError("too_large", f"frame is over {max_bytes} bytes")
    try:
        message = json.loads(frame)
    except ValueError:
        raise AgentError("bad_frame", "frame is not valid JSON") from None
    if not isinstance(message, dict):
        raise AgentError("bad_frame", "frame is not a JSON object")
    kind = message.get("type")
    if not isinstance(kind, str):
        raise AgentError("bad_message", "'type' is missing")
    if kind not in FIELDS:
        raise AgentError("unknown_type", f"unknown message type {kind[:40]!r}")
    mid = message.get("id")
    if mid is not None and (not isinstance(mid, str) or len(mid) > 64):
        raise AgentError("bad_message", "'id' must be a string of at most 64 characters")
    for name, (types, required) in FIELDS[kind].items():
        if name not in message:
            if required:
                raise AgentError("bad_message", f"{kind}: '{name}' is required")
            continue
        value = message[name]
        if not isinstance(value, types) or isinstance(value, bool):
            raise AgentError("bad_message", f"{kind}: '{name}' has the wrong type")
        limit = 1024 if name == "path" else ID_MAX
        if name in ID_FIELDS and isinstance(value, str) and not 0 < len(value) <= limit:
            raise AgentError("bad_message", f"{kind}: '{name}' is empty or too long")
        allowed = ENUMS.get((kind, name))
        if allowed is not None and value not in allowed:
            raise AgentError("bad_message", f"{kind}: '{name}' must be one of {sorted(allowed)}")
    if kind == "chat":
        if not message["text"].strip():
            raise AgentError("bad_message", "chat: 'text' is empty")
        check_context(message.get("context") or {})
    if kind == "fix" and not 1 <= message.get("max_attempts", 1) <= 10:
        raise AgentError("bad_message", "fix: 'max_attempts' must be 1..10")
    if kind == "resume" and message["after_seq"] < 0:
        raise AgentError("bad_message", "resume: 'after_seq' must be >= 0")
    return dict(message)


def check_context(context: dict[str, Any]) -> None:
    for name in ("notebook", "cell_id", "selection", "file"):
        if name in context and not isinstance(context[name], str):
            raise AgentError("bad_message", f"chat: 'context.{name}' must be a string")
    line = context.get("line", 1)
    if not isinstance(line, int) or isinstance(line, bool) or line < 1:
        raise AgentError("bad_message", "chat: 'context.line' must be a line number from 1")
    mentions = context.get("mentions", [])
    if not isinstance(mentions, list) or len(mentions) > 20:
        raise AgentError("bad_message", "chat: 'context.mentions' must be a list of at most 20")
    for mention in mentions:
        ok = isinstance(mention, dict) and isinstance(mention.get("path"), str)
        if ok and mention.get("kind") == "cell":
            ok = isinstance(mention.get("cell_id"), str)
        elif ok:
            ok = mention.get("kind") in ("file", "folder")
        if not ok:
            raise AgentError(
                "bad_message",
                "chat: each mention is {kind: file|folder|cell, path[, cell_id][, lines]}",
            )
        if "lines" in mention and not (mention["kind"] == "file" and _line_range(mention["lines"])):
            raise AgentError(
                "bad_message",
                "chat: a mention's 'lines' is [start, end] of a file, 1-based, start <= end",
            )


def _line_range(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in value)
        and value[0] <= value[1]
    )
