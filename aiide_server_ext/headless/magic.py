"""``%ai`` in headless runs and replays: no server, so the runner answers its kernels'
channels itself (``aiide_kernel.channel``). A run answers with its own router (the model,
recorded like the agent's calls) as the run's caller, and writes each question and answer
to its trace; a replay answers with what the trace recorded, in order, never the model."""

from __future__ import annotations

from collections import deque
from typing import Any

from aiide_kernel.channel import KernelChannels, Responder

from ..agent.ask import KernelAsk
from ..seams import OpenGate
from .trace import Trace

NOT_RECORDED = {
    "code": "not_recorded",
    "message": "this %ai question is not in the run's trace (replay answers only recorded ones)",
}


class MagicDesk:
    """The process's one responder (kernel channels are one per process), handing each
    kernel's question to the run that started the kernel."""

    def __init__(self) -> None:
        self.runs: dict[str, tuple[Responder, Trace | None]] = {}

    def install(self) -> None:
        KernelChannels.instance().responder = self.respond

    def add(self, kernel_id: str, responder: Responder, trace: Trace | None) -> None:
        self.runs[kernel_id] = (responder, trace)

    def remove(self, kernel_id: str) -> None:
        self.runs.pop(kernel_id, None)

    async def respond(
        self, kernel_id: str, path: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        entry = self.runs.get(kernel_id)
        if entry is None:
            return 503, {"code": "agent_unavailable", "message": "no run answers this kernel"}
        responder, trace = entry
        status, reply = await responder(kernel_id, path, body)
        if trace is not None:
            trace.write("magic", request=body, status=status, reply=reply)
        return status, reply


def run_responder(router: Any, caller: Any) -> Responder:
    """The run's own answers: its router (so its model pin and record), as its caller."""
    ask = KernelAsk(router, OpenGate(), lambda: caller)
    return ask.respond


def recorded_responder(records: list[dict[str, Any]]) -> Responder:
    """A replay's answers: the trace's ``magic`` records, in order."""
    queue = deque(r for r in records if r.get("type") == "magic")

    async def respond(
        kernel_id: str, path: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        if queue and queue[0].get("request") == body:
            record = queue.popleft()
            return int(record["status"]), dict(record["reply"])
        return 404, NOT_RECORDED

    return respond
