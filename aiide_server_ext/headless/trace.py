"""The JSON-lines trace of a headless run, and the agent pieces that feed it: a router that
records each model request (hashed, or whole when asked) and a notebook bridge that records
every code execution with its outputs (what ``replay`` re-executes)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..agent.errors import ToolError
from ..agent.kernels import ExecResult, ExecTimeout
from ..agent.notebooks import NotebookBridge
from ..agent.providers import ModelRequest, StreamEvent, Usage
from ..agent.router import ModelSpec, Router
from ..seams import Caller

#: Events of the run worth keeping (tokens are summed into the final text instead).
TRACED = {
    "run_started",
    "tool_call",
    "approval_required",
    "approval_resolved",
    "tool_result",
    "notice",
    "error",
    "run_finished",
}


class Trace:
    def __init__(self, path: str, *, store_prompts: bool = False) -> None:
        self.path = path
        self.store_prompts = store_prompts
        self.started = time.monotonic()
        self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed in close())

    def write(self, kind: str, **fields: Any) -> None:
        if self._file.closed:
            return
        record = {"type": kind, "t": round(time.monotonic() - self.started, 3), **fields}
        self._file.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self._file.flush()

    def event(self, body: dict[str, Any]) -> None:
        if body.get("type") in TRACED:
            fields = {k: v for k, v in body.items() if k not in ("type", "conversation_id")}
            self.write("event", event=body["type"], **fields)

    def close(self) -> None:
        self._file.close()


def read_trace(path: str) -> list[dict[str, Any]]:
    records = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except ValueError:
                    raise ValueError(f"{path}:{n}: not a JSON line") from None
    return records


def prompt_digest(request: ModelRequest) -> str:
    body = {"system": request.system, "messages": request.messages, "tools": request.tools}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class TracingRouter(Router):
    """The agent's router, recording what each model call was asked and what answered
    (the provider's model id, response id, tokens, cost): the run's record names the
    model that did the work, not only the one asked for. ``strict``: the model asked for
    or nothing (no fallback); ``temperature``: set on every request."""

    trace: Trace | None = None
    strict = False
    temperature: float | None = None
    #: Per model answer: what the provenance sums up.
    answers: list[dict[str, Any]]
    prices: Any = None

    def candidates(
        self, task: str, caller: Caller, requested: str | None = None
    ) -> list[ModelSpec]:
        found = super().candidates(task, caller, requested)
        return found[:1] if self.strict and requested is not None else found

    def stream(
        self,
        candidates: list[ModelSpec],
        caller: Caller,
        build: Callable[[ModelSpec], ModelRequest],
        **kwargs: Any,
    ) -> AsyncIterator[tuple[ModelSpec, StreamEvent]]:
        def recording(spec: ModelSpec) -> ModelRequest:
            request = build(spec)
            if self.temperature is not None:
                request.temperature = self.temperature
            if self.trace is not None:
                prompt: dict[str, Any] = {"prompt_sha256": prompt_digest(request)}
                if self.trace.store_prompts:
                    prompt["prompt"] = {"system": request.system, "messages": request.messages}
                self.trace.write(
                    "model_request",
                    model=spec.name,
                    provider=spec.provider,
                    temperature=request.temperature,
                    **prompt,
                )
            return request

        async def answered() -> AsyncIterator[tuple[ModelSpec, StreamEvent]]:
            async for spec, event in super(TracingRouter, self).stream(
                candidates, caller, recording, **kwargs
            ):
                if isinstance(event, Usage):
                    self._answer(spec, event)
                yield spec, event

        return answered()

    def _answer(self, spec: ModelSpec, usage: Usage) -> None:
        answer = {
            "name": spec.name,
            "provider": spec.provider,
            "model": spec.model,
            "reported_model": usage.model or None,
            "response_id": usage.response_id or None,
            "fingerprint": usage.fingerprint or None,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_read_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        }
        if self.prices is not None:
            answer["cost"] = self.prices.model_cost(
                spec.model,
                usage.input_tokens,
                usage.output_tokens,
                0,
                usage.cache_read_tokens,
                usage.cache_write_tokens,
            )
        self.answers.append(answer)
        if self.trace is not None:
            self.trace.write("model_response", **answer)


def timeout_output(e: ExecTimeout) -> dict[str, Any]:
    """The error a timed-out cell shows (after what it printed before)."""
    name = "ExecutionTimeout"
    return {"output_type": "error", "ename": name, "evalue": e.message, "traceback": []}


class TracingBridge(NotebookBridge):
    """Headless notebook work, each execution traced; kernel failures flagged. Code past
    the timeout is interrupted and answers as a failed cell with what it printed; code
    stopped by Ctrl-C leaves its partial outputs in ``stopped`` (the runner saves them)."""

    trace: Trace | None = None
    kernel_failed: str | None = None
    _cell: str | None = None
    #: (cell id, source, outputs so far) of the execution a stopped run cut short.
    stopped: tuple[str | None, str, list[dict[str, Any]]] | None = None

    async def run_cell(
        self, path: str, cell_id: str, route: Any, *, allow_unsandboxed: bool = False
    ) -> ExecResult:
        self._cell = cell_id
        try:
            return await super().run_cell(path, cell_id, route, allow_unsandboxed=allow_unsandboxed)
        finally:
            self._cell = None

    async def execute(self, path: str, code: str, *, allow_unsandboxed: bool = False) -> ExecResult:
        cell = self._cell
        try:
            result = await super().execute(path, code, allow_unsandboxed=allow_unsandboxed)
        except ExecTimeout as e:
            result = ExecResult("error", [*e.outputs, timeout_output(e)])
            self._record(cell, code, result, "timeout", timeout=e.timeout, recovery=e.recovery)
            if e.recovery == "lost":
                self.kernel_failed = e.message
            return result
        except asyncio.CancelledError:
            kid = await self.kernels.kernel_for(path, start=False)
            partial = list(self.kernels.running.get(kid or "", []))
            self.stopped = (cell, code, partial)
            self._record(cell, code, ExecResult("interrupted", partial), "interrupted")
            raise
        except ToolError as e:
            if e.code == "kernel_died":
                self.kernel_failed = e.message
            raise
        except Exception as e:  # the kernel did not start
            self.kernel_failed = f"the kernel could not start: {e}"
            raise ToolError("kernel_failed", self.kernel_failed) from None
        self._record(cell, code, result, result.status)
        return result

    def _record(
        self, cell: str | None, code: str, result: ExecResult, status: str, **more: Any
    ) -> None:
        if self.trace is not None:
            self.trace.write(
                "execute",
                cell_id=cell,
                source=code,
                status=status,
                execution_count=result.execution_count,
                outputs=result.outputs,
                **{"timeout": self.execute_timeout, **more},
            )
