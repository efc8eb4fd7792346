"""aiide's notebook tools as an outside agent sees them, behind the gate: a call needs the
scope a user would need for the same thing, goes through the same tool policy (deny is
refused, approve pauses until a person decides or the wait ends) and is audited.

A person, not the agent: the credential that made a call can never answer it. An answer
comes from the same user's interactive session (browser cookie + XSRF) or from another
credential of that user holding ``agent:approve``. Each outside agent (one credential)
has its own conversation for notebook requests, so no other user's socket hears them; a
paused call is a run there, shown as an approval card in the user's chat sidebar
(``sidebar.py``)."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ..agent.errors import ToolError
from ..agent.notebooks import NotebookBridge, Route
from ..agent.tool_policy import ToolPolicy
from ..agent.tools import TOOLS, ToolEnv, validate
from ..agent.tools.base import ToolResult
from ..seams import Caller, Gate, GateRefusal
from .sidebar import McpRun, expires_in

#: Exposed tool -> (route class, scope) the gate admits it under.
EXPOSED = {
    "list_cells": ("agent", "agent:run"),
    "read_cell": ("agent", "agent:run"),
    "insert_cell": ("agent", "agent:run"),
    "replace_cell": ("agent", "agent:run"),
    "run_cell": ("execute", "agent:execute"),
    "search_knowledge": ("agent", "knowledge"),
}


#: Scope of a credential that may answer another credential's paused calls.
APPROVE_SCOPE = "agent:approve"
#: Longest rejection reason kept (the chat protocol's own limit).
MAX_REASON = 4000
#: Ended waits remembered, so a late answer is told why it came too late.
MAX_EXPIRED = 1000
#: ``Pending.decision`` when the outside agent stopped waiting (nothing may apply after).
ABANDONED = "abandoned"


class McpRefusal(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Credential:
    """What sent a request: an id for the credential, and whether it is a person's
    interactive session (a browser cookie whose XSRF token was checked)."""

    id: str
    interactive: bool = False


#: Direct calls (tests, the stdio bridge) made with no credential in hand.
UNKNOWN = Credential("unknown")


@dataclass
class Pending:
    id: str
    caller: str
    tool: str
    arguments: dict[str, Any]
    credential: Credential = UNKNOWN
    decided_by: str = ""
    #: Why it was rejected, if the person said (the agent is told).
    reason: str | None = None
    #: Its run in the agent's conversation (what the sidebar shows).
    run: McpRun | None = None
    expires_at: float = 0.0
    #: The JSON-RPC id the agent sent it under (``notifications/cancelled`` names it).
    request_id: Any = None
    decision: asyncio.Future[str] = field(repr=False, default_factory=asyncio.Future)


def conversation_for(username: str, credential: Credential) -> str:
    """The outside agent's own conversation: one per user and credential."""
    digest = hashlib.sha256(f"{username}\0{credential.id}".encode()).hexdigest()[:20]
    return f"mcp-{digest}"


class McpTools:
    def __init__(
        self,
        gate: Gate,
        policy: ToolPolicy,
        notebooks: NotebookBridge,
        root_dir: str,
        *,
        knowledge: Any = None,
        approval_wait: float = 60.0,
        max_pending_per_user: int = 20,
        max_pending_per_client: int = 10,
    ) -> None:
        self.gate = gate
        self.policy = policy
        self.notebooks = notebooks
        self.root_dir = root_dir
        #: The knowledge service, or a function giving it as of now (it may load later).
        self._knowledge = knowledge
        self.approval_wait = approval_wait
        #: Calls waiting at once (each holds an HTTP request open): one user's, and one
        #: credential's (an outside agent) among them.
        self.max_pending_per_user = max_pending_per_user
        self.max_pending_per_client = max_pending_per_client
        self.pending: dict[str, Pending] = {}
        #: Waits that ended without an answer: id -> (user, why); a late answer is refused.
        self.expired: OrderedDict[str, tuple[str, str]] = OrderedDict()

    @property
    def knowledge(self) -> Any:
        k = self._knowledge
        return k() if inspect.isfunction(k) or inspect.ismethod(k) else k

    def definitions(self) -> list[dict[str, Any]]:
        return [TOOLS[n].definition() for n in EXPOSED if n != "search_knowledge" or self.knowledge]

    async def call(
        self,
        caller: Caller,
        name: str,
        arguments: dict[str, Any],
        credential: Credential = UNKNOWN,
        *,
        request_id: Any = None,
        gone: asyncio.Event | None = None,
    ) -> str:
        """The tool's text result; McpRefusal when the gate or the policy says no.

        An approval wait lasts no longer than the agent's own: ``gone`` is set when its
        request's connection closes, and ``notifications/cancelled`` names ``request_id``;
        either ends the wait, and an answer given after applies nothing."""
        if name not in EXPOSED:
            raise McpRefusal("unknown_tool", f"no tool named {name!r}")
        route_class, scope = EXPOSED[name]
        try:
            await self.gate.admit(caller, route_class, scope=scope)
            tool = validate(name, arguments)
        except GateRefusal as e:
            await self.gate.audit(caller, f"mcp.{name}", "", "refused", {"code": e.code})
            raise McpRefusal(e.code, e.message) from None
        except ToolError as e:
            raise McpRefusal(e.code, e.message) from None
        sandboxed = True
        if tool.executes_code and isinstance(arguments.get("path"), str):
            try:
                sandboxed = await self.notebooks.kernels.sandboxed(arguments["path"].strip("/"))
            except Exception:  # execution checks again
                sandboxed = True
        decision = self.policy.decide(tool, arguments, caller, sandboxed=sandboxed)
        if decision.action == "deny":
            await self.gate.audit(caller, f"mcp.{name}", "", "denied", {"risk": decision.risk})
            raise McpRefusal(decision.code, decision.reason or "refused by policy")
        cid = conversation_for(caller.username, credential)
        pending: Pending | None = None
        if decision.action == "approve":
            pending = await self._pend(caller, name, arguments, credential)
            pending.request_id = request_id
            pending.run = McpRun(self.notebooks.fanout, caller.username, cid, pending.id)
        call_id = pending.id if pending else "mcp_" + uuid.uuid4().hex[:12]
        env = ToolEnv(
            root_dir=self.root_dir,
            notebooks=self.notebooks,
            caller=caller,
            route=Route(
                cid,
                pending.run.run_id if pending and pending.run else "mcp_" + uuid.uuid4().hex[:12],
                caller.username,
            ),
            # The id a preview names new cells after: the approved patch is the one applied.
            call_id=call_id,
            knowledge=self.knowledge,
            extra={"outside_sandbox": True} if decision.outside_sandbox else {},
        )
        approved_by = None
        if pending is not None:
            try:
                patch = await tool.preview(env, arguments) if tool.preview else None
            except ToolError as e:
                self.pending.pop(pending.id, None)
                raise McpRefusal(e.code, e.message) from None
            if patch:
                env.extra["patch"] = patch
            approved_by = await self._wait_for_approval(
                caller,
                pending,
                risk=decision.risk,
                patch=patch,
                outside=decision.outside_sandbox,
                gone=gone,
            )
        try:
            result = await tool.run(env, arguments)
        except ToolError as e:
            result = ToolResult.failure(e.code, e.message)
        if pending is not None and pending.run is not None:
            pending.run.finish(name, result, "completed" if result.ok else "failed")
        await self.gate.audit(
            caller,
            f"mcp.{name}",
            str(arguments.get("path", "")),
            "ok" if result.ok else "failed",
            {"approved_by": approved_by, "result": result.content[:2000]},
        )
        if not result.ok:
            raise McpRefusal(result.code or "tool_failed", result.content)
        return result.content

    async def _pend(
        self, caller: Caller, name: str, args: dict[str, Any], credential: Credential
    ) -> Pending:
        """A new paused call, or ``too_many_pending`` (each holds an HTTP request open):
        at most ``max_pending_per_client`` of one credential, ``max_pending_per_user`` of
        one user."""
        mine = [p for p in self.pending.values() if p.caller == caller.username]
        theirs = sum(1 for p in mine if p.credential.id == credential.id)
        full = None
        if theirs >= self.max_pending_per_client:
            full = f"{theirs} calls of this agent already wait (c.Agent.mcp_max_pending_per_client)"
        elif len(mine) >= self.max_pending_per_user:
            full = f"{len(mine)} of your calls already wait (c.Agent.mcp_max_pending_per_user)"
        if full is not None:
            detail = {"code": "too_many_pending"}
            await self.gate.audit(caller, f"mcp.{name}", "", "refused", detail)
            raise McpRefusal("too_many_pending", f"{full}; answer them or let them expire first")
        pending = Pending("ap_" + uuid.uuid4().hex[:16], caller.username, name, args, credential)
        pending.expires_at = expires_in(self.approval_wait)
        self.pending[pending.id] = pending
        return pending

    async def _wait_for_approval(
        self,
        caller: Caller,
        pending: Pending,
        *,
        risk: str,
        patch: dict[str, Any] | None,
        outside: bool,
        gone: asyncio.Event | None = None,
    ) -> str:
        name = pending.tool
        run = pending.run
        await self.gate.audit(caller, f"mcp.{name}", pending.id, "awaiting_approval", None)
        if run is not None:
            run.start(
                pending.credential.id,
                name,
                pending.arguments,
                risk=risk,
                expires_at=pending.expires_at,
                patch=patch,
                outside_sandbox=outside,
            )
        watch = asyncio.ensure_future(gone.wait()) if gone is not None else None
        if watch is not None:
            watch.add_done_callback(lambda w: w.cancelled() or self._abandon(pending))
        try:
            decided = await asyncio.wait_for(asyncio.shield(pending.decision), self.approval_wait)
        except asyncio.TimeoutError:
            why = f"nobody approved it within {self.approval_wait:g}s"
            self._expire(pending, why)
            refusal = McpRefusal(
                "approval_required", f"{name} needs a user's approval (pending {pending.id}); {why}"
            )
            if run is not None:
                run.resolved("expired", None, None)
                run.finish(name, ToolResult.failure(refusal.code, refusal.message), "expired")
            raise refusal from None
        finally:
            self.pending.pop(pending.id, None)
            if watch is not None:
                watch.cancel()
        if decided == ABANDONED:
            why = "the outside agent stopped waiting for it (its client timed out or left)"
            self._expire(pending, why)
            await self.gate.audit(caller, f"mcp.{name}", pending.id, "abandoned", None)
            refusal = McpRefusal("approval_expired", f"{name} was not applied: {why}")
            if run is not None:
                run.resolved("expired", None, why)
                run.finish(name, ToolResult.failure(refusal.code, refusal.message), "expired")
            raise refusal
        if decided != "approve":
            why = f": {pending.reason}" if pending.reason else ""
            refusal = McpRefusal("rejected", f"a user rejected {name}{why}")
            if run is not None:
                run.finish(name, ToolResult.failure(refusal.code, refusal.message), "completed")
            raise refusal
        return pending.decided_by

    @staticmethod
    def _abandon(pending: Pending) -> None:
        if not pending.decision.done():
            pending.decision.set_result(ABANDONED)

    def _expire(self, pending: Pending, why: str) -> None:
        self.expired[pending.id] = (pending.caller, why)
        while len(self.expired) > MAX_EXPIRED:
            self.expired.popitem(last=False)

    def cancelled(self, caller: Caller, credential: Credential, request_id: Any) -> bool:
        """``notifications/cancelled`` from the agent: its call waiting under that request
        id (its own, by the same credential) stops waiting; nothing it asked applies."""
        for pending in list(self.pending.values()):
            if (
                pending.caller == caller.username
                and pending.credential.id == credential.id
                and request_id is not None
                and pending.request_id == request_id
            ):
                self._abandon(pending)
                return True
        return False

    async def decide(
        self,
        caller: Caller,
        pending_id: str,
        decision: str,
        credential: Credential,
        reason: str | None = None,
    ) -> None:
        """A person's answer to a paused call of their own agent (a rejection may say why:
        the agent is told); ``GateRefusal`` otherwise (each refusal audited)."""
        pending = self.pending.get(pending_id)
        refusal: GateRefusal | None = None
        ended = self.expired.get(pending_id) if pending is None else None
        left = pending is not None and pending.decision.done()
        if left and pending is not None and pending.decision.result() == ABANDONED:
            ended = (pending.caller, "the outside agent stopped waiting for it")  # not cleared yet
        if ended is not None and ended[0] == caller.username:
            refusal = GateRefusal(
                409, "approval_expired", f"too late, nothing was applied: {ended[1]}"
            )
        elif pending is None or pending.caller != caller.username or pending.decision.done():
            # Someone else's call is as unknown as a made-up id: its existence is not told.
            refusal = GateRefusal(404, "unknown_approval", f"no pending call {pending_id[:40]}")
        elif credential.interactive:
            pass
        elif credential.id == pending.credential.id:
            refusal = GateRefusal(
                403,
                "self_approval",
                "the credential that made a call cannot approve it: approve in the browser, "
                f"or with another credential holding '{APPROVE_SCOPE}'",
            )
        elif not caller.has_scope(APPROVE_SCOPE):
            refusal = GateRefusal(
                403,
                "approval_scope_required",
                f"approving another credential's call needs the '{APPROVE_SCOPE}' scope",
            )
        target = pending_id[:40]
        if refusal is not None:
            detail = {"code": refusal.code, "decision": decision, "credential": credential.id}
            await self.gate.audit(caller, "mcp.approval", target, "refused", detail)
            raise refusal
        assert pending is not None
        how = "session" if credential.interactive else credential.id
        pending.decided_by = f"{caller.username} ({how})"
        pending.reason = (
            (reason or "").strip()[:MAX_REASON] or None if decision == "reject" else None
        )
        detail = {"tool": pending.tool, "by": how, "caller_credential": pending.credential.id}
        if pending.reason:
            detail["reason"] = pending.reason
        await self.gate.audit(caller, "mcp.approval", target, decision, detail)
        if pending.run is not None:
            pending.run.resolved(decision, pending.decided_by, pending.reason)
        pending.decision.set_result(decision)

    def waiting(self, caller: Caller) -> list[dict[str, Any]]:
        """The user's paused calls; each names its run in its agent's conversation (a page
        that connects while one waits resumes that conversation to show the card)."""
        return [
            {
                "id": p.id,
                "tool": p.tool,
                "arguments": p.arguments,
                "expires_at": p.expires_at,
                "conversation_id": p.run.conversation_id if p.run else None,
                "run_id": p.run.run_id if p.run else None,
            }
            for p in self.pending.values()
            if p.caller == caller.username
        ]
