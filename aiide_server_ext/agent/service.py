"""The agent as the handlers see it: one object per server, plain methods, no tornado.

Takes the parts ``assembly.build`` made, dispatches chat-socket messages (admitting each
through the gate) and answers the REST routes.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from ..seams import Caller, GateRefusal
from .assembly import AgentParts
from .complete import Completer, OnText, check
from .errors import AgentError
from .export import FORMATS, file_name, render, visible_turns
from .fanout import STORE_UNAVAILABLE, Connection
from .protocol import PROTOCOL_VERSION, parse
from .retention import Retention
from .tool_policy import ToolPolicy

log = logging.getLogger("aiide.agent")

#: Conversation titles (the store cuts at this length too) and search queries.
MAX_TITLE = 120
MAX_QUERY = 200
#: A search answers with at most this many conversations, and checks at most this many
#: matching turns (a query such as "text" matches the JSON of every structured turn).
SEARCH_LIMIT = 50
SEARCH_SCAN = 2000


def snippet(text: str, at: int, width: int = 60) -> str:
    """The words around a hit, on one line."""
    start, end = max(0, at - width), min(len(text), at + width)
    return (
        ("…" if start else "")
        + " ".join(text[start:end].split())
        + ("…" if end < len(text) else "")
    )


class AgentService:
    def __init__(self, parts: AgentParts) -> None:
        config = parts.config
        self.config = config
        self.store = parts.store
        self.gate = parts.engine.gate
        self.router = parts.router
        self.max_message_bytes = config.max_message_bytes
        self.heartbeat = config.heartbeat_seconds
        self.fanout = parts.fanout
        self.kernels = parts.kernels
        self.notebooks = parts.notebooks
        self.engine = parts.engine
        self.retention = Retention(
            parts.store,
            conversation_days=config.conversation_retention_days,
            max_conversations=config.max_conversations_per_user,
            event_days=config.event_retention_days,
            interval=config.retention_interval,
        )
        self.completer = Completer(parts.router, timeout=config.complete_timeout)
        #: Fix loops started from the chat (``fixloop/chat.py``), made on the first ``fix``.
        self._fixes: Any = None
        #: Other deciders on tool calls (the MCP server's tools), kept on the runs' policy.
        self.policy_users: list[Any] = []

    @property
    def tool_policy(self) -> ToolPolicy:
        return self.engine.policy

    def wrap_tool_policy(self, wrap: Callable[[ToolPolicy], Any]) -> Any:
        """The seam for a stricter tool policy on top of ``c.ToolPolicy`` (a course's,
        under JupyterHub: ``hub/singleuser/tools.py``). ``wrap`` gets the current policy and returns
        one with its interface (``decide``, ``over_limit``); agent runs and every entry
        of ``policy_users`` decide with it from then on. Returns the new policy."""
        policy = wrap(self.engine.policy)
        self.engine.policy = policy
        for user in self.policy_users:
            user.policy = policy
        return policy

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        self.engine.recover()
        self.retention.start()

    @property
    def fixes(self) -> Any:
        if self._fixes is None:
            from .fixloop.chat import ChatFixes  # lazy: only once a fix is asked for

            self._fixes = ChatFixes(self.engine)
        return self._fixes

    async def stop(self) -> None:
        self.retention.stop()
        if self._fixes is not None:
            await self._fixes.close()
        await self.engine.close()
        await self.kernels.shutdown()
        await self.router.aclose()
        self.store.close()

    # -- the chat socket ---------------------------------------------------------------
    def connected(self, conn: Connection) -> None:
        self.fanout.connect(conn)
        self.fanout.control(
            conn,
            "hello",
            protocol=PROTOCOL_VERSION,
            max_message_bytes=self.max_message_bytes,
            heartbeat_seconds=self.heartbeat,
        )

    def disconnected(self, conn: Connection) -> None:
        self.fanout.drop(conn)
        self.notebooks.connection_closed(conn)

    async def handle(self, conn: Connection, caller: Caller, frame: str | bytes) -> None:
        try:
            msg = parse(frame, self.max_message_bytes)
        except AgentError as e:
            self.fanout.error(conn, e.code, e.message)
            return
        try:
            await self._dispatch(conn, caller, msg)
        except (AgentError, GateRefusal) as e:
            self.fanout.error(
                conn,
                e.code,
                e.message,
                reply_to=msg.get("id"),
                conversation_id=msg.get("conversation_id"),
                run_id=msg.get("run_id"),
            )
        except sqlite3.Error as e:  # e.g. a full disk (PostgreSQL raises StoreError above)
            log.warning("aiide: chat message %s: the store failed: %s", msg.get("type"), e)
            self.fanout.error(
                conn,
                STORE_UNAVAILABLE,
                f"the conversation store failed ({e}); nothing was started",
                reply_to=msg.get("id"),
                conversation_id=msg.get("conversation_id"),
            )
        except Exception:
            log.exception("aiide: chat message %s failed", msg.get("type"))
            self.fanout.error(
                conn, "internal", "internal error (see the server log)", reply_to=msg.get("id")
            )

    async def _dispatch(self, conn: Connection, caller: Caller, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == "ping":
            self.fanout.control(conn, "pong", reply_to=msg.get("id"), ts=round(time.time(), 3))
        elif kind == "chat":
            await self.gate.admit(caller, "chat", scope="chat")
            if self._fixes is not None and self._fixes.busy(msg.get("conversation_id")):
                raise AgentError("run_active", "this conversation has a fix running", 409)
            await self.engine.start(conn, caller, msg)
        elif kind == "fix":
            await self.gate.admit(caller, "chat", scope="chat")
            await self.fixes.start(conn, caller, msg)
        elif kind == "approve":
            await self.gate.admit(caller, "chat", scope="agent:run")
            await self.engine.approve(caller, msg)
        elif kind == "cancel":
            if self._fixes is None or not self._fixes.cancel(caller, msg):
                self.engine.cancel(caller, msg)
        elif kind == "resume":
            cid = msg["conversation_id"]
            self.store.owned(cid, caller.username)
            self.fanout.replay(conn, cid, msg["after_seq"], msg.get("id"))
        elif kind == "notebook_open":
            self.fanout.open_notebook(conn, msg["path"].strip("/"))
        elif kind == "notebook_close":
            conn.open_notebooks.discard(msg["path"].strip("/"))
        elif kind == "notebook_result" and not self.notebooks.resolve(conn, msg):
            raise AgentError("unknown_request", f"nothing waits for {msg['request_id']}", 404)

    # -- REST --------------------------------------------------------------------------
    def _summary(self, conv: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": conv["id"],
            "title": conv["title"],
            "created": conv["created"],
            "updated": conv["updated"],
            "last_seq": self.store.last_seq(conv["id"]),
            "active_run": self.engine.active.get(conv["id"]),
        }

    def list_conversations(self, caller: Caller, query: str | None = None) -> dict[str, Any]:
        if query is None:
            rows = self.store.conversations(caller.username)
            return {"conversations": [self._summary(c) for c in rows]}
        return {"conversations": self.search_conversations(caller, query)}

    def search_conversations(self, caller: Caller, query: str) -> list[dict[str, Any]]:
        """The caller's conversations whose title or visible text contains ``query``;
        text matches carry a ``snippet`` around the first hit."""
        query = " ".join(query.split())
        if not 1 <= len(query) <= MAX_QUERY:
            raise AgentError("bad_message", f"'q' must be 1..{MAX_QUERY} characters")
        needle = query.lower()
        found: dict[str, dict[str, Any]] = {}
        scanned = 0
        for conv, content in self.store.search_conversations(caller.username, query, SEARCH_LIMIT):
            if len(found) >= SEARCH_LIMIT or scanned >= SEARCH_SCAN:
                break
            if conv["id"] in found:
                continue
            if content is None:
                found[conv["id"]] = {**self._summary(conv), "snippet": None}
                continue
            scanned += 1  # a turn's JSON matched: is the hit in the text the user saw?
            turn = {"role": "", "content": json.loads(content)}
            for t in visible_turns([turn]):
                at = t["text"].lower().find(needle)
                if at >= 0:
                    found[conv["id"]] = {**self._summary(conv), "snippet": snippet(t["text"], at)}
        return sorted(found.values(), key=lambda c: -float(c["updated"]))

    def rename_conversation(self, caller: Caller, cid: str, body: Any) -> dict[str, Any]:
        title = body.get("title") if isinstance(body, dict) else None
        title = " ".join(title.split()) if isinstance(title, str) else ""
        if not 1 <= len(title) <= MAX_TITLE:
            raise AgentError("bad_title", f"'title' must be 1..{MAX_TITLE} characters")
        self.store.owned(cid, caller.username)
        self.store.rename_conversation(cid, title)
        conv = self.store.conversation(cid, caller.username)
        assert conv is not None
        return self._summary(conv)

    def export_conversation(self, caller: Caller, cid: str, fmt: str) -> tuple[str, str]:
        """``(file name, document)`` of the conversation in ``markdown`` or ``ipynb``."""
        if fmt not in FORMATS:
            raise AgentError("bad_format", "'format' must be markdown or ipynb")
        conv = self.store.owned(cid, caller.username)
        turns = list(visible_turns(self.store.turns(cid)))
        return file_name(conv["title"], fmt), render(fmt, conv["title"], turns, cid)

    def get_conversation(self, caller: Caller, cid: str) -> dict[str, Any]:
        conv = self.store.owned(cid, caller.username)
        turns = list(visible_turns(self.store.turns(cid)))
        runs = [
            {
                "id": r["id"],
                "state": r["state"],
                "usage": {
                    k: r.get(k, 0)
                    for k in ("input_tokens", "output_tokens", "model_calls", "tool_calls", "steps")
                },
            }
            for r in self.store.runs_of(cid)
        ]
        return {**self._summary(conv), "turns": turns, "runs": runs}

    def delete_conversation(self, caller: Caller, cid: str) -> None:
        self.engine.delete_conversation(caller, cid)

    def models(self, caller: Caller) -> dict[str, Any]:
        return {"models": [m.public() for m in self.router.available(caller)]}

    async def complete(
        self, caller: Caller, body: Any, on_text: OnText | None = None
    ) -> dict[str, Any]:
        await self.gate.admit(caller, "complete", scope="complete")
        return await self.completer.complete(caller, check(body), self.gate, on_text)

    # -- users' own keys ---------------------------------------------------------------
    def keys(self, caller: Caller) -> dict[str, Any]:
        rows: list[dict[str, Any]] = []
        for name in self.store.user_names(caller.username):
            if name.startswith("key:"):
                try:
                    value = self.store.user_value(caller.username, name) or ""
                except AgentError as e:  # sealed under another server key: say so
                    if e.code != "secret_unreadable":
                        raise
                    rows.append({"provider": name[4:], "set": True, "unreadable": True})
                    continue
                rows.append({"provider": name[4:], "set": True, "hint": "…" + value[-4:]})
        return {"keys": rows}

    def set_key(self, caller: Caller, provider: str, key: str | None) -> None:
        if not self.config.allow_user_keys:
            raise AgentError("forbidden", "the administrator does not allow personal keys", 403)
        if provider not in self.router.provider_specs:
            raise AgentError("unknown_provider", f"no provider {provider!r}", 404)
        if key is not None and (not isinstance(key, str) or not 8 <= len(key) <= 512):
            raise AgentError("bad_message", "'key' must be a string of 8..512 characters")
        self.store.set_user_value(caller.username, f"key:{provider}", key)
