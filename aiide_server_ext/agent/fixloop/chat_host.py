"""The fix loop's ``FixHost`` over the chat socket (the lab's "Fix this error").

Each attempt is one ``RunEngine`` run in the user's conversation, so its edits go through
the same approval cards, policy and audit as any agent edit, and its patches reach the
open notebook through the notebook bridge (the browser saves after each one, so ``load``
reads what the user sees). Cells run through ``NotebookBridge.run_cell``: in the
browser's notebook session when the notebook is open there (the server checks that
session's kernel is sandboxed), else in the server's own sandboxed kernel.

The host watches the run's events the way a browser does: as a subscriber of the
conversation (``Tap``), so nothing in the engine knows about the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from typing import Any

from ...seams import Caller, GateRefusal
from ..errors import AgentError
from ..kernels import ExecResult
from ..notebooks import Route
from .edits import record_edit
from .loop import Turn
from .result import Attempt

log = logging.getLogger("aiide.fixloop")


class Tap:
    """A listener subscribed to one conversation: it sees each event as a browser does."""

    def __init__(self, username: str, host: ChatFixHost) -> None:
        self.username = username
        self.open_notebooks: set[str] = set()
        self.host = host

    def send(self, text: str) -> None:
        try:
            body = json.loads(text)
        except ValueError:
            return
        if isinstance(body, dict):
            self.host.event(body)


class ChatFixHost:
    """One fix loop's host in the lab: ``path`` is the notebook, ``route`` the fix's."""

    def __init__(
        self,
        engine: Any,
        caller: Caller,
        conversation_id: str,
        fix_id: str,
        path: str,
        *,
        target: str | None = None,
        model: str | None = None,
    ) -> None:
        self.engine = engine
        self.notebooks = engine.notebooks
        self.caller = caller
        self.conversation_id = conversation_id
        self.path = path
        #: For a ``test_<notebook>.py`` beside it: the loop reads ``load()`` (fsguard's
        #: checks of the path) before it looks; the file runs in the sandboxed kernel.
        self.file: str | None = os.path.join(self.notebooks.root_dir, path)
        self.target = target
        self.model = model
        self.route = Route(conversation_id, fix_id, caller.username)
        self.run_id: str | None = None
        self.run_ids: list[str] = []
        self.edits: list[dict[str, Any]] = []
        self.by_call: dict[str, dict[str, Any]] = {}
        self.finished: dict[str, dict[str, Any]] = {}
        self.changed = asyncio.Event()
        #: What to do with each attempt's record (``ChatFixes`` sends and audits it).
        self.on_attempt: Callable[[Attempt], None] = lambda attempt: None
        self.tap = Tap(caller.username, self)
        engine.fanout.subscribe(self.tap, conversation_id)

    def close(self) -> None:
        subs = self.engine.fanout.subscribers.get(self.conversation_id)
        if subs is not None:
            subs.discard(self.tap)

    # -- the runs' events ----------------------------------------------------------
    def event(self, body: dict[str, Any]) -> None:
        if body.get("run_id") not in self.run_ids:
            return
        if record_edit(body, self.edits, self.by_call):
            return
        kind = body.get("type")
        if kind == "approval_resolved" and body.get("call_id") in self.by_call:
            edit = self.by_call[body["call_id"]]
            edit["by"] = f"{body.get('by')}: {body.get('decision')}"
            if body.get("decision") != "approve":
                edit["error"] = str(body.get("reason") or body.get("decision"))
        elif kind == "run_finished":
            self.finished[body["run_id"]] = body
            self.changed.set()

    # -- FixHost ---------------------------------------------------------------------
    async def load(self) -> dict[str, Any]:
        nb: dict[str, Any] = await self.notebooks.load(self.path)
        return nb

    async def run_cell(self, cell_id: str) -> ExecResult:
        result: ExecResult = await self.notebooks.run_cell(self.path, cell_id, self.route)
        return result

    async def execute(self, code: str) -> ExecResult:
        result: ExecResult = await self.notebooks.execute(self.path, code)
        return result

    async def state(self) -> list[tuple[str, dict[str, Any]]] | None:
        from .. import introspect  # lazy: only when a diagnosis is written

        kernels = self.notebooks.kernels
        try:
            kid = await kernels.kernel_for(self.path, start=False)
            if kid is None:
                return None
            reply = await kernels.execute(
                kid, "", timeout=10, silent=True, user_expressions={"s": introspect.expression()}
            )
        except Exception:  # the state is a help, not a need
            return None
        return introspect.parse(reply.user_expressions.get("s") or {})

    async def ask(self, text: str) -> Turn:
        """One agent turn in the conversation; returns when its run has ended."""
        self.edits, self.by_call = [], {}
        context: dict[str, Any] = {"notebook": self.path}
        if self.target:
            context["cell_id"] = self.target
        msg: dict[str, Any] = {
            "type": "chat",
            "text": text,
            "task": "agent",
            "conversation_id": self.conversation_id,
            "context": context,
        }
        if self.model:
            msg["model"] = self.model
        try:
            await self.engine.gate.admit(self.caller, "chat", scope="chat")
            # Started on the tap, not on the socket that asked: that page may have gone
            # (the fix goes on; a page that comes back resumes the conversation).
            run = await self.engine.start(self.tap, self.caller, msg)
        except (AgentError, GateRefusal) as e:
            return Turn("failed", 0, [], f"{e.code}: {e.message}")
        self.run_id = run.id
        self.run_ids.append(run.id)
        while run.id not in self.finished:
            self.changed.clear()
            await self.changed.wait()
        self.run_id = None
        final = self.finished[run.id]
        usage = final.get("usage") or {}
        tokens = int(usage.get("input_tokens", 0)) + int(usage.get("output_tokens", 0))
        message = ""
        if final.get("status") != "completed":
            stored = self.engine.store.run(run.id) or {}
            error = stored.get("error") or {}
            message = str(error.get("message") or "")
        return Turn(str(final.get("status")), tokens, self.edits, message)

    async def stop(self) -> None:
        """Stop the model's turn (if one runs) and interrupt the notebook's kernel."""
        if self.run_id is not None:
            run = self.engine.runs.get(self.run_id)
            if run is not None:
                ids = {"conversation_id": self.conversation_id, "run_id": run.id}
                with contextlib.suppress(AgentError):  # ended meanwhile
                    self.engine.cancel(self.caller, ids)
        kernels = self.notebooks.kernels
        kid = await kernels.kernel_for(self.path, start=False)
        if kid is not None:
            from jupyter_core.utils import ensure_async

            try:
                await ensure_async(kernels.km.interrupt_kernel(kid))
            except Exception as e:  # gone already: nothing runs there
                log.info("aiide: fix: interrupting kernel %s: %r", kid, e)

    def audit(self, attempt: Attempt) -> None:
        """``ChatFixes`` sends the attempt to the chat and writes its audit record."""
        self.on_attempt(attempt)
