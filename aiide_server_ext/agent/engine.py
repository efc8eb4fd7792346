"""Runs: ``running → awaiting_approval → running → completed | failed | cancelled | expired``.

A run advances as a task until it needs the user; then it is only data (persisted) and the
task ends. An approval, or a restart that finds it waiting, starts a new task from that
data: the same path either way, which is what makes runs resumable after ``kill -9``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from ..seams import Caller, Gate
from .context import ContextBuilder
from .errors import AgentError
from .fanout import RETRY_FIRST, RETRY_MAX, STORE_ERRORS, STORE_UNAVAILABLE, Connection, Fanout
from .history import History
from .notebooks import NotebookBridge, Route
from .providers import ProviderError, TextDelta, ToolRequest, Usage
from .router import Router
from .runs import AWAITING, RUNNING, TERMINAL, Call, Run, new_id
from .steps import StepRunner
from .store import Store
from .tool_policy import ToolPolicy
from .tools import ToolSource

log = logging.getLogger("aiide.agent")

#: How a run ends when its own writes failed (the conversation store went away).
STORE_FAILED = (
    STORE_UNAVAILABLE,
    "the conversation store was unavailable during the run, so it stopped; ask again to continue",
)


class RunEngine:
    def __init__(
        self,
        store: Store,
        fanout: Fanout,
        router: Router,
        policy: ToolPolicy,
        context: ContextBuilder,
        notebooks: NotebookBridge,
        gate: Gate,
        *,
        root_dir: str,
        approval_timeout: float,
        max_output_tokens: int = 4096,
        network: bool = False,
        allow_hidden: bool = False,
        knowledge: Callable[[], Any] = lambda: None,
        tool_source: ToolSource | None = None,
        steps: type[StepRunner] = StepRunner,
    ) -> None:
        self.store = store
        self.fanout = fanout
        self.router = router
        self.policy = policy
        self.context = context
        self.notebooks = notebooks
        self.gate = gate
        self.root_dir = root_dir
        self.approval_timeout = approval_timeout
        self.max_output_tokens = max_output_tokens
        #: The knowledge part's service, looked up per use (it may load after this part).
        self.knowledge = knowledge
        #: Tools of configured MCP servers (``tools/mcp_client.py``), if any.
        self.tool_source = tool_source
        self.history = History(store, fanout, router, context, gate, notebooks, root_dir, knowledge)
        self.history.tool_source = tool_source
        self.steps = steps(self, network=network, allow_hidden=allow_hidden)
        self.runs: dict[str, Run] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.active: dict[str, str] = {}  # conversation id -> run id
        self.partial: dict[str, list[str]] = {}
        self.closing = False

    # -- persistence -----------------------------------------------------------------
    def save(self, run: Run) -> None:
        self.store.put_run(run.id, run.conversation_id, run.state, run.to_json())

    def emit(self, run: Run, kind: str, **fields: Any) -> None:
        self.fanout.emit(run.conversation_id, run.id, kind, **fields)

    def get(self, caller: Caller, cid: str, run_id: str) -> Run:
        run = self.runs.get(run_id)
        if run is None:
            data = self.store.run(run_id)
            run = Run.from_json(data) if data else None
        if run is None or run.conversation_id != cid or run.owner != caller.username:
            raise AgentError("unknown_run", f"no run {run_id} in conversation {cid}", 404)
        return run

    # -- starting --------------------------------------------------------------------
    async def start(self, conn: Connection, caller: Caller, msg: dict[str, Any]) -> Run:
        task = msg.get("task", "agent")
        candidates = self.router.candidates(task, caller, msg.get("model"))
        cid = msg.get("conversation_id")
        if cid:
            self.store.owned(cid, caller.username)
            if cid in self.active:
                raise AgentError("run_active", "this conversation already has a running run", 409)
        else:
            cid = new_id("cv")
            self.store.create_conversation(cid, caller.username, msg["text"].strip().split("\n")[0])
        run_id = new_id("run")
        idx = self.store.append_turn(cid, "user", msg["text"], run_id)
        self.store.touch(cid)
        run = Run(
            id=run_id,
            conversation_id=cid,
            owner=caller.username,
            task=task,
            caller=caller.to_dict(),
            models=[m.name for m in candidates],
            context=dict(msg.get("context") or {}),
            question_idx=idx,
            reply_to=msg.get("id"),
        )
        self.runs[run_id] = run
        self.active[cid] = run_id
        self.fanout.subscribe(conn, cid)
        self.save(run)
        first = candidates[0]
        self.emit(
            run,
            "run_started",
            reply_to=run.reply_to,
            task=task,
            model=first.name,
            provider=first.provider,
        )
        self._spawn(run)
        return run

    def _spawn(self, run: Run) -> None:
        task = asyncio.create_task(self._drive(run))
        self.tasks[run.id] = task

    async def _drive(self, run: Run) -> None:
        try:
            await self._advance(run)
        except asyncio.CancelledError:
            if run.state not in TERMINAL:
                if self.closing:
                    await self.end(
                        run, "failed", ("interrupted", "the server stopped during the run")
                    )
                else:
                    await self.end(run, "cancelled")
        except (ProviderError, AgentError) as e:
            await self.end(run, "failed", (e.code, e.message))
        except STORE_ERRORS as e:
            log.warning("aiide: run %s: the conversation store failed: %s", run.id, e)
            await self.end(run, "failed", STORE_FAILED)
        except Exception:
            log.exception("aiide: run %s failed", run.id)
            await self.end(run, "failed", ("internal", "internal error (see the server log)"))
        finally:
            if self.tasks.get(run.id) is asyncio.current_task():
                del self.tasks[run.id]

    async def _advance(self, run: Run) -> None:
        while True:
            if run.calls:
                if not await self.steps.process_calls(run):
                    return  # waiting for the user
                self.steps.close_step(run)
            over = self.policy.over_limit(
                run.steps, run.tool_calls, run.input_tokens + run.output_tokens
            )
            if over:
                raise AgentError("limit_exceeded", over)
            requests = await self._model_step(run)
            if not requests:
                await self.end(run, "completed")
                return
            run.calls = [Call(r.id, r.name, r.arguments, r.raw, r.error) for r in requests]
            run.tool_calls += len(requests)
            self.save(run)

    async def _model_step(self, run: Run) -> list[ToolRequest]:
        caller = run.caller_obj()
        if self.tool_source is not None and run.task == "agent":
            await self.tool_source.ready()
        request = await self.history.request(run)
        # In the run's order: the model the user asked for first, then its fallbacks.
        order = {name: i for i, name in enumerate(run.models)}
        chosen = sorted(
            (m for m in self.router.models if m.name in order), key=lambda m: order[m.name]
        )
        candidates = chosen or self.router.candidates(run.task, caller)

        async def notice(code: str, message: str) -> None:
            self.emit(run, "notice", code=code, message=message)

        parts: list[str] = []
        self.partial[run.id] = parts
        requests: list[ToolRequest] = []

        def count(usage: Usage) -> None:
            run.model_calls += 1
            run.input_tokens += usage.input_tokens
            run.output_tokens += usage.output_tokens

        async for _spec, event in self.router.stream(
            candidates,
            caller,
            request,
            gate=self.gate,
            feature=run.task,
            on_notice=notice,
            on_estimate=count,  # stopped or failed mid-answer: still counted
        ):
            if isinstance(event, TextDelta):
                parts.append(event.text)
                self.emit(run, "token", text=event.text)
            elif isinstance(event, ToolRequest):
                requests.append(event)
            elif isinstance(event, Usage):
                count(event)
        run.steps += 1
        run.text = "".join(parts)
        content: list[dict[str, Any]] = [{"type": "text", "text": run.text}] if run.text else []
        content += [
            {"type": "tool_use", "id": r.id, "name": r.name, "input": r.arguments or {}}
            for r in requests
        ]
        self.store.append_turn(run.conversation_id, "assistant", content or run.text, run.id)
        del self.partial[run.id]  # only now: if the store failed, ending the run keeps it
        return requests

    # -- the user's answers ---------------------------------------------------------------
    async def approve(self, caller: Caller, msg: dict[str, Any]) -> None:
        run = self.get(caller, msg["conversation_id"], msg["run_id"])
        if run.state in TERMINAL:
            raise AgentError("run_not_active", f"run {run.id} is {run.state}", 409)
        call = run.call(msg["call_id"])
        if call is None and msg["call_id"] in run.decided:
            raise AgentError("already_decided", f"call {msg['call_id']} was already decided", 409)
        if call is None:
            raise AgentError("unknown_call", f"run {run.id} has no call {msg['call_id']}", 404)
        if call.status == "expired":
            raise AgentError("approval_expired", "the approval window closed", 409)
        if call.status in ("approved", "rejected", "done"):
            raise AgentError("already_decided", f"call {call.id} was already decided", 409)
        if call.status != "awaiting":
            raise AgentError("unknown_call", f"call {call.id} is not waiting for approval", 409)
        await self._check_approver(run, call, caller)
        approved = msg["decision"] == "approve"
        edited = approved and "arguments" in msg
        if edited:
            self.steps.edit_arguments(run, call, msg["arguments"])
        call.status = "approved" if approved else "rejected"
        call.decided_by = caller.username
        call.reason = msg.get("reason")
        run.decided.append(call.id)
        self._disarm(call.id)
        run.state = RUNNING
        self.runs[run.id] = run
        self.save(run)
        self.emit(
            run,
            "approval_resolved",
            call_id=call.id,
            decision=msg["decision"],
            by=caller.username,
            reason=call.reason,
            # The card shows what was done, not what the model proposed.
            **({"arguments": call.arguments} if edited else {}),
        )
        await self.gate.audit(
            caller,
            "agent.approval",
            f"run:{run.id}/call:{call.id}",
            msg["decision"],
            {"tool": call.name, "risk": call.risk, "reason": call.reason},
        )
        self._spawn(run)

    async def _check_approver(self, run: Run, call: Call, caller: Caller) -> None:
        """Approvals come from a person: an API key or token (never the browser's session)
        may not answer the calls of a run it started, and answers others' only with
        ``agent:approve`` (docs/gateway.md)."""
        credential = caller.credential
        if not credential:
            return
        if credential == run.caller.get("credential"):
            code, message = "self_approval", "the credential that started a run cannot approve it"
        elif not caller.has_scope("agent:approve"):
            code, message = "approval_scope_required", "approving needs the 'agent:approve' scope"
        else:
            return
        target = f"run:{run.id}/call:{call.id}"
        await self.gate.audit(caller, "agent.approval", target, "refused", {"code": code})
        raise AgentError(code, message, 403)

    def cancel(self, caller: Caller, msg: dict[str, Any]) -> None:
        run = self.get(caller, msg["conversation_id"], msg["run_id"])
        if run.state in TERMINAL:
            raise AgentError("run_not_active", f"run {run.id} is {run.state}", 409)
        task = self.tasks.get(run.id)
        if task is not None:
            task.cancel()
        else:
            self.finish(self.runs.get(run.id, run), "cancelled")

    # -- waiting -----------------------------------------------------------------------
    def pause(self, run: Run, call: Call) -> None:
        call.status = "awaiting"
        call.expires_at = time.time() + self.approval_timeout
        run.state = AWAITING
        self.save(run)
        self.emit(
            run,
            "approval_required",
            call_id=call.id,
            name=call.name,
            arguments=call.arguments or {},
            risk=call.risk,
            expires_at=call.expires_at,
            patch=call.patch,
            **({"outside_sandbox": True} if call.outside_sandbox else {}),
        )
        self._arm(run, call)

    def _arm(self, run: Run, call: Call) -> None:
        delay = max(0.0, (call.expires_at or 0) - time.time())
        loop = asyncio.get_running_loop()
        self.timers[call.id] = loop.call_later(delay, self._expire, run.id, call.id)

    def _disarm(self, call_id: str) -> None:
        timer = self.timers.pop(call_id, None)
        if timer is not None:
            timer.cancel()

    def _expire(self, run_id: str, call_id: str) -> None:
        self.timers.pop(call_id, None)
        run = self.runs.get(run_id)
        call = run.call(call_id) if run else None
        if run is None or call is None or call.status != "awaiting":
            return
        call.status = "expired"
        self.emit(
            run,
            "approval_resolved",
            call_id=call.id,
            decision="expired",
            by=None,
            reason="no answer in time",
        )
        self.finish(run, "expired", ("approval_expired", f"no answer to {call.name} in time"))

    # -- ending ------------------------------------------------------------------------
    async def end(self, run: Run, status: str, error: tuple[str, str] | None = None) -> None:
        """``finish``, again after a growing pause while the store fails: the run's end
        is stored before its last events go out, so it ends once the store is back."""
        delay = RETRY_FIRST
        while True:
            try:
                self.finish(run, status, error)
                return
            except STORE_ERRORS as e:
                if self.closing:  # the next start finds it running and ends it
                    log.warning("aiide: run %s: could not store its end: %s", run.id, e)
                    return
            try:
                await asyncio.sleep(delay)
            except asyncio.CancelledError:
                if self.closing:
                    return
                status, error = "cancelled", None  # the user stopped it meanwhile
            delay = min(delay * 2, RETRY_MAX)

    def finish(self, run: Run, status: str, error: tuple[str, str] | None = None) -> None:
        """Store the run's end, then send it. Safe to call again after a store failure:
        what was stored is not written twice, and the run is ended only once stored."""
        if run.state in TERMINAL:
            return
        parts = self.partial.get(run.id)
        if parts:  # cancelled mid-stream: keep what the user saw
            run.text = "".join(parts)
            self.store.append_turn(run.conversation_id, "assistant", run.text, run.id)
        elif run.calls:  # every tool_use needs its tool_result for the next turn
            self.steps.close_step(run, reason=f"not run: the run was {status}")
        self.partial.pop(run.id, None)
        for call in run.calls:
            self._disarm(call.id)
        before = run.state, run.error, run.context_images, run.result_images
        run.state = status
        run.error = {"code": error[0], "message": error[1]} if error else None
        # An ended run is never sent again: its images need no disk.
        run.context_images, run.result_images = [], {}
        try:
            self.save(run)
        except BaseException:
            run.state, run.error, run.context_images, run.result_images = before
            raise
        self.runs.pop(run.id, None)
        if self.active.get(run.conversation_id) == run.id:
            del self.active[run.conversation_id]
        if error:
            self.emit(run, "error", code=error[0], message=error[1], reply_to=None)
        self.emit(run, "run_finished", status=status, usage=run.usage(), text=run.text)

    # -- lifecycle ---------------------------------------------------------------------
    def recover(self) -> None:
        """After a restart: waiting runs wait again; runs cut mid-stream fail clearly."""
        for data in self.store.runs_in((RUNNING, AWAITING)):
            run = Run.from_json(data)
            if run.state == RUNNING:
                self.finish(run, "failed", ("interrupted", "the server restarted during the run"))
                continue
            self.runs[run.id] = run
            self.active[run.conversation_id] = run.id
            for call in run.calls:
                if call.status == "awaiting":
                    self._arm(run, call)

    async def close(self) -> None:
        self.closing = True
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()

    def delete_conversation(self, caller: Caller, cid: str) -> None:
        self.store.owned(cid, caller.username)
        run_id = self.active.pop(cid, None)
        if run_id is not None:
            run = self.runs.pop(run_id, None)
            if run is not None:
                run.state = "cancelled"  # no events into a conversation being deleted
                for call in run.calls:
                    self._disarm(call.id)
            task = self.tasks.pop(run_id, None)
            if task is not None:
                task.cancel()
        self.fanout.forget(cid)
        self.store.delete_conversation(cid)

    def route(self, run: Run) -> Route:
        return Route(run.conversation_id, run.id, run.owner)
