"""An outside agent's call that waits for approval, shown to its person in the chat sidebar.

Each paused call is a run of the agent's own conversation (``conversation_for``), told with
the events the agent's runs use (docs/protocol.md): ``run_started`` (``provider: "mcp"``),
``tool_call``, ``approval_required`` with the cell diff, then ``approval_resolved``,
``notebook_patch`` / ``notebook_execute`` when a browser has the notebook open,
``tool_result`` and ``run_finished``. So the same approval card shows it, and an answer
given anywhere (another tab, an ``agent:approve`` key) updates every card.

The conversation is stored as the user's (so the sidebar lists it and sockets can resume
it), and every socket of that user is subscribed when a call pauses: pushed, not polled.
A page that connects later asks ``GET /aiide/api/mcp/approvals``, whose items name the
conversation to resume.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from ..agent.fanout import Fanout
from ..agent.tools.base import ToolResult

#: ``run_started.provider`` of an outside agent's run (the front end words it so).
PROVIDER = "mcp"
NO_USAGE = {"input_tokens": 0, "output_tokens": 0, "model_calls": 0, "tool_calls": 1, "steps": 1}


def agent_label(credential_id: str) -> str:
    """How the sidebar names an outside agent: by its credential (never a secret)."""
    return f"outside agent ({credential_id})"


class McpRun:
    """The events of one paused call, in its agent's conversation."""

    def __init__(self, fanout: Fanout, username: str, conversation_id: str, call_id: str) -> None:
        self.fanout = fanout
        self.username = username
        self.conversation_id = conversation_id
        self.call_id = call_id
        self.run_id = "mcp_" + uuid.uuid4().hex[:16]

    def _emit(self, kind: str, **fields: Any) -> None:
        self.fanout.emit(self.conversation_id, self.run_id, kind, **fields)

    def start(
        self,
        credential_id: str,
        name: str,
        arguments: dict[str, Any],
        *,
        risk: str,
        expires_at: float,
        patch: dict[str, Any] | None,
        outside_sandbox: bool,
    ) -> None:
        """Store the conversation as the user's if new, tell every socket of theirs."""
        store = self.fanout.store
        label = agent_label(credential_id)
        if store.conversation(self.conversation_id) is None:
            store.create_conversation(self.conversation_id, self.username, label.capitalize())
        else:
            store.touch(self.conversation_id)
        for conn in list(self.fanout.connections):
            if conn.username == self.username:
                self.fanout.subscribe(conn, self.conversation_id)
        self._emit("run_started", reply_to=None, task="agent", model=label, provider=PROVIDER)
        call = {"call_id": self.call_id, "name": name, "arguments": arguments, "risk": risk}
        self._emit("tool_call", **call, decision="approve")
        extra = {"outside_sandbox": True} if outside_sandbox else {}
        self._emit("approval_required", **call, expires_at=expires_at, patch=patch, **extra)

    def resolved(self, decision: str, by: str | None, reason: str | None) -> None:
        self._emit(
            "approval_resolved", call_id=self.call_id, decision=decision, by=by, reason=reason
        )

    def finish(self, name: str, result: ToolResult, status: str) -> None:
        error = (
            None if result.ok else {"code": result.code or "tool_failed", "message": result.content}
        )
        self._emit(
            "tool_result",
            call_id=self.call_id,
            name=name,
            ok=result.ok,
            content=result.content,
            error=error,
            outputs=result.outputs,
        )
        self._emit("run_finished", status=status, usage=NO_USAGE, text="")


def expires_in(seconds: float) -> float:
    return round(time.time() + seconds, 3)
