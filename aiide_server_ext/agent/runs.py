"""A run as data: its state, the tool calls of its current step, its usage. Stored as JSON
in sqlite after every transition, so a restarted server picks it up where it stopped."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from ..seams import Caller

RUNNING = "running"
AWAITING = "awaiting_approval"
TERMINAL = ("completed", "failed", "cancelled", "expired")


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


@dataclass
class Call:
    id: str
    name: str
    arguments: dict[str, Any] | None
    raw: str = ""
    parse_error: str | None = None
    #: new -> awaiting -> approved | rejected | expired; or new -> approved; -> done
    status: str = "new"
    risk: str = "low"
    decision: str = "auto"
    patch: dict[str, Any] | None = None
    expires_at: float | None = None
    decided_by: str | None = None
    reason: str | None = None
    result: dict[str, Any] | None = None
    #: Policy let this call run code in a kernel that is not sandboxed (admin opt-in).
    outside_sandbox: bool = False


@dataclass
class Run:
    id: str
    conversation_id: str
    owner: str
    task: str
    #: ``Caller.to_dict`` of who started the run.
    caller: dict[str, Any]
    models: list[str]
    context: dict[str, Any]
    question_idx: int
    state: str = RUNNING
    created: float = field(default_factory=time.time)
    context_text: str = ""
    #: Image outputs sent with the context (content blocks, base64): every step resends them.
    context_images: list[dict[str, Any]] = field(default_factory=list)
    #: Image outputs of this run's tool calls (a cell it ran drew a plot), by call id.
    result_images: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    steps: int = 0
    tool_calls: int = 0
    model_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    calls: list[Call] = field(default_factory=list)
    text: str = ""
    error: dict[str, str] | None = None
    reply_to: str | None = None
    #: Calls of earlier steps that the user decided (a second decision is refused).
    decided: list[str] = field(default_factory=list)

    def caller_obj(self) -> Caller:
        return Caller.from_dict(self.caller)

    def usage(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "model_calls": self.model_calls,
            "tool_calls": self.tool_calls,
            "steps": self.steps,
        }

    def call(self, call_id: str) -> Call | None:
        return next((c for c in self.calls if c.id == call_id), None)

    def to_json(self) -> dict[str, Any]:
        """A shallow view for ``json.dumps`` (``asdict`` deep-copies every nested value, and
        a run is saved at each transition, hundreds at once under load)."""
        data = dict(vars(self))
        data["calls"] = [dict(vars(c)) for c in self.calls]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Run:
        data = dict(data)
        calls = [Call(**c) for c in data.pop("calls", [])]
        return cls(calls=calls, **data)
