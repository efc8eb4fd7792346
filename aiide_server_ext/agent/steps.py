"""The tool calls of one step: validate, decide (policy), pause for approval, execute,
report — in the model's order, one at a time, each transition persisted."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any, Protocol

from ..seams import Gate, GateRefusal
from .context import ContextBuilder
from .errors import AgentError
from .notebooks import NotebookBridge, Route
from .router import Router
from .runs import Call, Run
from .store import Store
from .tool_policy import ToolPolicy
from .tools import Tool, ToolEnv, ToolError, ToolResult, ToolSource, validate

log = logging.getLogger("aiide.agent")
MAX_EVENT_OUTPUTS = 200_000


class StepHost(Protocol):
    """What the steps need of the run they belong to: ``RunEngine`` is one. The steps call
    back only through this (persist, tell, pause for approval), never into the engine's
    own flow."""

    @property
    def store(self) -> Store: ...
    @property
    def router(self) -> Router: ...
    @property
    def policy(self) -> ToolPolicy: ...
    @property
    def context(self) -> ContextBuilder: ...
    @property
    def notebooks(self) -> NotebookBridge: ...
    @property
    def gate(self) -> Gate: ...
    @property
    def root_dir(self) -> str: ...
    @property
    def tool_source(self) -> ToolSource | None: ...
    @property
    def knowledge(self) -> Callable[[], Any]: ...

    def route(self, run: Run) -> Route: ...
    def save(self, run: Run) -> None: ...
    def emit(self, run: Run, kind: str, **fields: Any) -> None: ...
    def pause(self, run: Run, call: Call) -> None:
        """The run waits for the user's answer on ``call``."""
        ...


class StepRunner:
    def __init__(self, engine: StepHost, *, network: bool, allow_hidden: bool) -> None:
        self.engine = engine
        self.network = network
        self.allow_hidden = allow_hidden

    def extra(self) -> dict[str, Tool]:
        """Tools of configured MCP servers (namespaced), as of now."""
        source = self.engine.tool_source
        return source.tools() if source is not None else {}

    def env(self, run: Run, call: Call) -> ToolEnv:
        engine = self.engine
        caller = run.caller_obj()

        async def admit_execute() -> None:
            await engine.gate.admit(caller, "execute", scope="agent:execute")

        return ToolEnv(
            root_dir=engine.root_dir,
            notebooks=engine.notebooks,
            caller=caller,
            route=engine.route(run),
            call_id=call.id,
            allow_hidden=self.allow_hidden,
            admit_execute=admit_execute,
            default_notebook=run.context.get("notebook"),
            knowledge=engine.knowledge(),
            extra={
                **({"patch": call.patch} if call.patch else {}),
                **({"outside_sandbox": True} if call.outside_sandbox else {}),
            },
        )

    async def process_calls(self, run: Run) -> bool:
        """Advance the step's calls; False when the run now waits for the user."""
        for call in run.calls:
            if call.status == "done":
                continue
            if call.status == "awaiting":
                return False
            if call.status == "new" and not await self._decide(run, call):
                if call.status == "awaiting":
                    return False
                continue
            if call.status == "approved":
                self.result(run, call, await self._execute(run, call))
            elif call.status == "rejected":
                why = call.reason or "no reason given"
                self.result(
                    run,
                    call,
                    ToolResult(f"The user rejected this call: {why}", ok=False, code="rejected"),
                )
        return True

    async def _decide(self, run: Run, call: Call) -> bool:
        """Validate and apply policy; True when the call may run now."""
        try:
            tool = validate(call.name, call.arguments, call.parse_error, extra=self.extra())
        except ToolError as e:
            call.decision = "deny"
            self._announce(run, call)
            self.result(run, call, ToolResult.failure(e.code, e.message))
            return False
        assert call.arguments is not None
        sandboxed = await self._sandboxed(run, tool, call.arguments)
        decision = await asyncio.to_thread(  # the fence reads every argument: off the loop
            self.engine.policy.decide,
            tool,
            call.arguments,
            run.caller_obj(),
            network=self.network,
            sandboxed=sandboxed,
        )
        call.risk, call.decision = decision.risk, decision.action
        call.outside_sandbox = decision.outside_sandbox
        self._announce(run, call)
        if decision.action == "deny":
            self.result(run, call, ToolResult.failure(decision.code, decision.reason))
            return False
        if decision.action == "approve":
            if tool.preview is not None:
                try:
                    call.patch = await tool.preview(self.env(run, call), call.arguments)
                except ToolError as e:
                    self.result(run, call, ToolResult.failure(e.code, e.message))
                    return False
            self.engine.pause(run, call)
            return False
        call.status = "approved"
        return True

    async def _sandboxed(self, run: Run, tool: Tool, arguments: dict[str, Any]) -> bool:
        """Whether the kernel a code-running call would use is sandboxed (the server's
        own kernel manager says; see ``KernelRunner.sandboxed``)."""
        if not tool.executes_code:
            return True
        path = arguments.get("path") or run.context.get("notebook")
        if not isinstance(path, str) or not path:
            return True  # the tool itself refuses the call (no notebook)
        try:
            return await self.engine.notebooks.kernels.sandboxed(path.strip("/"))
        except Exception as e:  # no session store: execution checks again
            log.debug("aiide: sandbox check for %s: %s", path, e)
            return True

    def _announce(self, run: Run, call: Call) -> None:
        self.engine.emit(
            run,
            "tool_call",
            call_id=call.id,
            name=call.name,
            arguments=call.arguments,
            risk=call.risk,
            decision=call.decision,
        )

    def edit_arguments(self, run: Run, call: Call, arguments: dict[str, Any]) -> None:
        """Arguments changed at approval: validated again, fence included; new patch."""
        try:
            tool = validate(call.name, arguments, extra=self.extra())
        except ToolError as e:
            raise AgentError("bad_arguments", e.message) from None
        decision = self.engine.policy.decide(
            tool,
            arguments,
            run.caller_obj(),
            network=self.network,
            sandboxed=not call.outside_sandbox,  # a new notebook's kernel is checked on use
        )
        if decision.action == "deny":
            raise AgentError("bad_arguments", decision.reason)
        call.arguments = arguments
        call.patch = None

    async def _execute(self, run: Run, call: Call) -> ToolResult:
        tool = validate(call.name, call.arguments, extra=self.extra())
        try:
            result = await tool.run(self.env(run, call), call.arguments or {})
        except ToolError as e:
            return ToolResult.failure(e.code, e.message)
        except GateRefusal as e:
            return ToolResult.failure(e.code, e.message)
        except Exception:
            log.exception("aiide: tool %s failed", call.name)
            return ToolResult.failure("tool_failed", f"{call.name} failed unexpectedly")
        if result.outputs:
            await self._keep_images(run, call, result.outputs)
        if tool.preview is not None or tool.executes_code:
            detail: dict[str, Any] = {
                "run_id": run.id,
                "call_id": call.id,
                "approved_by": call.decided_by,
                "ok": result.ok,
                "result": result.content[:2000],
            }
            if call.patch:
                detail["patch"] = call.patch
            await self.engine.gate.audit(
                run.caller_obj(),
                f"agent.{call.name}",
                str((call.arguments or {}).get("path", "")),
                "ok" if result.ok else "failed",
                detail,
            )
        return result

    async def _keep_images(self, run: Run, call: Call, outputs: list[dict[str, Any]]) -> None:
        """The plots a call drew, for a model that sees images: with its result in every
        later step of the run, the last ``max_images`` of the run only."""
        engine = self.engine
        context = engine.context
        if not (run.models and context.send_images and engine.router.sees_images(run.models[0])):
            return
        args = call.arguments or {}
        path = str(args.get("path") or run.context.get("notebook") or "")
        ref = f"{path}#{args['cell_id']}" if args.get("cell_id") else f"{call.name} {call.id}"
        try:
            blocks = await asyncio.to_thread(context.output_images, outputs, ref)
        except Exception as e:  # never fails the call: the text result stands
            log.warning("aiide: images of %s: %r", call.id, e)
            return
        if not blocks:
            return
        run.result_images[call.id] = blocks
        count = sum(len(b) // 2 for b in run.result_images.values())
        for old in list(run.result_images):
            if count <= context.max_images or old == call.id:
                break
            count -= len(run.result_images.pop(old)) // 2

    def result(self, run: Run, call: Call, result: ToolResult) -> None:
        call.status = "done"
        call.result = {"content": result.content, "ok": result.ok, "code": result.code}
        outputs = result.outputs
        if outputs is not None and len(json.dumps(outputs)) > MAX_EVENT_OUTPUTS:
            outputs = None
        error = (
            None if result.ok else {"code": result.code or "tool_failed", "message": result.content}
        )
        self.engine.save(run)
        self.engine.emit(
            run,
            "tool_result",
            call_id=call.id,
            name=call.name,
            ok=result.ok,
            content=result.content,
            error=error,
            outputs=outputs,
            **({"citations": result.citations} if result.citations else {}),
        )

    def close_step(self, run: Run, reason: str | None = None) -> None:
        """Give the model every call's result (or why it did not run), as one user turn."""
        blocks = []
        for call in run.calls:
            if call.result is None:
                call.result = {"content": reason or "not run", "ok": False, "code": "cancelled"}
            blocks.append(
                {
                    "type": "tool_result",
                    "tool_use_id": call.id,
                    "content": call.result["content"],
                    "is_error": not call.result["ok"],
                }
            )
        self.engine.store.append_turn(run.conversation_id, "user", blocks, run.id)
        run.calls = []
        self.engine.save(run)
