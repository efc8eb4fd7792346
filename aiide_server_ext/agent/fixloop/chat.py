"""Fix loops started from the chat socket (the ``fix`` frame): at most one per conversation,
its progress sent as conversation events (``fix_started``, ``fix_attempt`` per attempt,
``fix_finished``) under the fix's own id, so a reconnect's ``resume`` replays them like any
run's; cancelled by the ``cancel`` frame naming the fix or one of its attempts' runs.

Every attempt is audited (``agent.fix_attempt``: its error, the cells it changed, who let
each edit through, its result), and so is the verdict (``agent.fix``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from ...seams import Caller
from ..errors import AgentError
from ..fanout import Connection
from ..runs import new_id
from .chat_host import ChatFixHost
from .loop import FixLoop, Limits
from .result import Attempt, FixResult

log = logging.getLogger("aiide.fixloop")

#: Longest cell source sent in a ``fix_attempt`` (the full patch is in the run's events).
MAX_SOURCE = 4000
MAX_ATTEMPTS = 10


@dataclass
class ActiveFix:
    fix_id: str
    caller: Caller
    host: ChatFixHost
    loop: FixLoop
    task: asyncio.Task[None] | None = None


def _cut(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_SOURCE:
        return text
    return text[:MAX_SOURCE] + "\n…"


def attempt_event(attempt: Attempt, run_id: str | None) -> dict[str, Any]:
    """The ``fix_attempt`` fields: error → change → result, compactly."""
    return {
        "number": attempt.number,
        "attempt_run_id": run_id,
        "error": attempt.error,
        "patch": [
            {**p, "before": _cut(p.get("before")), "after": _cut(p.get("after"))}
            for p in attempt.patch
        ],
        "approvals": attempt.approvals,
        "result": attempt.result,
        "detail": attempt.detail,
        "reran": attempt.reran,
        "tokens": attempt.tokens,
        "seconds": round(attempt.seconds, 3),
    }


class ChatFixes:
    def __init__(self, engine: Any) -> None:
        self.engine = engine
        #: conversation id -> its running fix
        self.active: dict[str, ActiveFix] = {}
        self._audits: set[asyncio.Future[Any]] = set()

    def busy(self, cid: str | None) -> bool:
        return cid is not None and cid in self.active

    async def start(self, conn: Connection, caller: Caller, msg: dict[str, Any]) -> str:
        engine = self.engine
        path = msg["path"].strip("/")
        if not path.endswith(".ipynb"):
            raise AgentError("bad_message", "fix: 'path' must be a notebook (.ipynb)")
        attempts = msg.get("max_attempts", 3)
        if not 1 <= attempts <= MAX_ATTEMPTS:
            raise AgentError("bad_message", f"fix: 'max_attempts' must be 1..{MAX_ATTEMPTS}")
        cid = msg.get("conversation_id")
        if cid:
            engine.store.owned(cid, caller.username)
            if cid in engine.active or cid in self.active:
                raise AgentError("run_active", "this conversation already has a running run", 409)
        else:
            cid = new_id("cv")
            engine.store.create_conversation(cid, caller.username, f"Fix {path}")
        fix_id = new_id("fix")
        target = msg.get("cell_id")
        host = ChatFixHost(engine, caller, cid, fix_id, path, target=target, model=msg.get("model"))
        loop = FixLoop(host, Limits(max_attempts=attempts))
        fix = ActiveFix(fix_id, caller, host, loop)
        host.on_attempt = lambda attempt: self._attempt(cid, fix, attempt)
        self.active[cid] = fix
        engine.fanout.subscribe(conn, cid)
        engine.fanout.emit(
            cid,
            fix_id,
            "fix_started",
            reply_to=msg.get("id"),
            path=path,
            cell_id=target,
            max_attempts=attempts,
        )
        fix.task = asyncio.create_task(self._drive(cid, fix, target))
        return fix_id

    def cancel(self, caller: Caller, msg: dict[str, Any]) -> bool:
        """Cancel the fix the frame names (its id, or an attempt's run); False: none."""
        fix = self.active.get(msg["conversation_id"])
        if fix is None or fix.caller.username != caller.username:
            return False
        if msg["run_id"] != fix.fix_id and msg["run_id"] not in fix.host.run_ids:
            return False
        self._keep(asyncio.ensure_future(fix.loop.cancel()))
        return True

    async def _drive(self, cid: str, fix: ActiveFix, target: str | None) -> None:
        engine = self.engine
        try:
            result = await fix.loop.run(target)
        except AgentError as e:
            result = FixResult("not_verified", "model_failed", e.message, target=target)
        except Exception:
            log.exception("aiide: fix %s failed", fix.fix_id)
            result = FixResult("not_verified", "kernel_failed", "internal error (see the log)")
        finally:
            fix.host.close()
            self.active.pop(cid, None)
        # audited before it is said: what the user saw end is on record
        if self._audits:
            await asyncio.gather(*list(self._audits), return_exceptions=True)
        try:
            await engine.gate.audit(
                fix.caller,
                "agent.fix",
                f"fix:{fix.fix_id}",
                result.status,
                {"path": fix.host.path, "reason": result.reason, "attempts": len(result.attempts)},
            )
        except Exception:  # the verdict is still said; the audit's own log says why
            log.exception("aiide: fix %s: could not audit the verdict", fix.fix_id)
        engine.fanout.emit(
            cid,
            fix.fix_id,
            "fix_finished",
            status=result.status,
            reason=result.reason,
            message=result.message,
            error_cell=result.error_cell,
            attempts=len(result.attempts),
            tokens=result.tokens,
            seconds=round(result.seconds, 3),
        )

    def _attempt(self, cid: str, fix: ActiveFix, attempt: Attempt) -> None:
        run_id = fix.host.run_ids[-1] if fix.host.run_ids else None
        self.engine.fanout.emit(cid, fix.fix_id, "fix_attempt", **attempt_event(attempt, run_id))
        details = {
            "path": fix.host.path,
            "error": attempt.error,
            "cells": [f"{p['op']} {p['cell_id']}" for p in attempt.patch],
            "approvals": attempt.approvals,
            "run_id": run_id,
        }
        target = f"fix:{fix.fix_id}/attempt:{attempt.number}"
        self._keep(
            asyncio.ensure_future(
                self.engine.gate.audit(
                    fix.caller, "agent.fix_attempt", target, attempt.result, details
                )
            )
        )

    def _keep(self, task: asyncio.Future[Any]) -> None:
        self._audits.add(task)
        task.add_done_callback(self._audits.discard)

    async def close(self) -> None:
        for fix in list(self.active.values()):
            await fix.loop.cancel()
            if fix.task is not None:
                fix.task.cancel()
