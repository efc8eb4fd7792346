"""The chat sockets' fan-out (not JupyterHub): who hears what, sockets subscribed to
conversations, sequenced events, replay.

Everything here is synchronous on the event loop, so a replay and the subscription
that follows it cannot interleave with a live event: ``resume`` is exactly-once, in order.
Events wait until the end of the loop iteration, when one commit makes them durable and
then they are sent: a client never sees an event a crash loses. While waiting, a run's
consecutive ``token`` events merge into one (same text, in order), so a busy server sends
fewer, larger frames instead of falling behind.

When the commit fails (the PostgreSQL database of a multi-server deployment going down,
a full disk under sqlite) the events are held, in order and ahead of anything newer, and
the commit is retried with a growing pause until the store takes them; then they are sent.
Each socket watching a held conversation is told once why its events stopped. Control
frames (never stored) do not wait.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from typing import Any, Protocol

from ..stores.errors import StoreError
from .errors import AgentError
from .store import Store

log = logging.getLogger("aiide.agent")

#: What a failing store raises: ``StoreError`` (PostgreSQL down or refusing) or, under
#: sqlite, the driver's own error (``database or disk is full``).
STORE_ERRORS = (StoreError, sqlite3.Error)
#: Seconds before the first retry of a failed commit; doubled after each failure.
RETRY_FIRST = 0.25
RETRY_MAX = 5.0
STORE_UNAVAILABLE = "store_unavailable"
TOO_MANY_NOTEBOOKS = "too_many_notebooks"
HELD_MESSAGE = (
    "the conversation store is unavailable; events are held and will be delivered when it is back"
)


class Connection(Protocol):
    username: str
    #: Notebooks (server-relative paths) this front end has open.
    open_notebooks: set[str]

    def send(self, text: str) -> None: ...


try:  # a tenth of json's cost per event (pinned in pyproject; json if it is missing)
    from orjson import JSONEncodeError
    from orjson import dumps as _orjson_dumps
except ImportError:  # pragma: no cover - orjson is a dependency
    _orjson_dumps = None  # type: ignore[assignment]
    JSONEncodeError = TypeError  # type: ignore[assignment,misc]


def dumps(body: dict[str, Any]) -> str:
    """Compact JSON, UTF-8 as is. orjson when it can; what it refuses and json accepts
    (non-string keys, integers over 64 bits, lone surrogates) goes through json as before."""
    if _orjson_dumps is not None:
        try:
            return _orjson_dumps(body).decode()
        except (JSONEncodeError, UnicodeDecodeError):
            pass
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def error_text(
    code: str,
    message: str,
    *,
    reply_to: str | None = None,
    conversation_id: str | None = None,
    run_id: str | None = None,
) -> str:
    """A control ``error`` frame (no seq, never replayed)."""
    body = {
        "type": "error",
        "conversation_id": conversation_id,
        "run_id": run_id,
        "seq": None,
        "ts": round(time.time(), 3),
        "code": code,
        "message": message,
        "reply_to": reply_to,
    }
    return dumps(body)


class Fanout:
    """``max_notebooks_per_socket`` / ``_per_user``: the ``notebook_open`` paths one socket,
    and one user's sockets together, may hold (each path is kept until closed)."""

    def __init__(
        self, store: Store, max_notebooks_per_socket: int = 64, max_notebooks_per_user: int = 256
    ) -> None:
        self.store = store
        self.max_notebooks_per_socket = max_notebooks_per_socket
        self.max_notebooks_per_user = max_notebooks_per_user
        self.subscribers: dict[str, set[Connection]] = {}
        self.connections: set[Connection] = set()
        #: (conversation, event) not yet committed, and control frames: (conn, text).
        self.pending: list[tuple[str, dict[str, Any]] | tuple[Connection, str]] = []
        self._last: dict[str, dict[str, Any]] = {}  # conversation -> its last pending event
        self._scheduled = False
        #: Events handed to the store whose commit failed: (conversation, text), in order.
        #: Sent (to the conversation's subscribers then) once a commit succeeds.
        self.held: list[tuple[str, str]] = []
        self._retry: asyncio.TimerHandle | None = None
        self._delay = RETRY_FIRST
        #: Sockets told about the current outage (once each).
        self._told: set[Connection] = set()

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def _queue(self, conn: Connection, text: str) -> None:
        self.pending.append((conn, text))
        self._schedule()

    def flush(self) -> None:
        """Serialise and store pending events, commit, then send everything in order.

        While earlier events are held, new ones join them and only control frames go out;
        the retry timer makes the next attempt."""
        self._scheduled = False
        pending, self.pending = self.pending, []
        self._last.clear()
        frames: list[tuple[Connection | str, str]] = []
        for target, item in pending:
            if isinstance(target, str):
                assert isinstance(item, dict)
                text = dumps(item)
                self.store.append_event(target, item["seq"], text)
                frames.append((target, text))
            else:
                assert isinstance(item, str)
                frames.append((target, item))
        if self._retry is not None:  # held: wait for the retry
            self._hold(frames)
            return
        self._commit(frames)

    def _commit(self, frames: list[tuple[Connection | str, str]]) -> None:
        try:
            self.store.flush()
        except STORE_ERRORS as e:
            self._hold(frames, e)
            return
        if self.held:
            log.warning(
                "aiide: the conversation store is back; sending %d held events", len(self.held)
            )
        out: list[tuple[Connection | str, str]] = [*self.held, *frames]
        self.held = []
        self._delay = RETRY_FIRST
        self._told.clear()
        for target, text in out:
            if isinstance(target, str):
                for conn in list(self.subscribers.get(target, ())):
                    conn.send(text)
            else:
                target.send(text)

    def _hold(
        self, frames: list[tuple[Connection | str, str]], error: Exception | None = None
    ) -> None:
        """Keep the events (after those already held), send the control frames now, tell
        each watching socket once, and arm the retry."""
        for target, text in frames:
            if isinstance(target, str):
                self.held.append((target, text))
            else:
                target.send(text)
        if not self.held:  # only control frames: nothing to wait for
            return
        if error is not None:
            log.warning(
                "aiide: the conversation store failed (%s); holding %d events, retry in %.2f s",
                getattr(error, "code", None) or type(error).__name__,
                len(self.held),
                self._delay,
            )
        self._tell()
        if self._retry is None:
            loop = asyncio.get_running_loop()
            self._retry = loop.call_later(self._delay, self._retry_commit)
            self._delay = min(self._delay * 2, RETRY_MAX)

    def _tell(self) -> None:
        for cid in dict.fromkeys(cid for cid, _ in self.held):
            for conn in list(self.subscribers.get(cid, ())):
                if conn not in self._told:
                    self._told.add(conn)
                    conn.send(error_text(STORE_UNAVAILABLE, HELD_MESSAGE, conversation_id=cid))

    def _retry_commit(self) -> None:
        self._retry = None
        if self.store.closed:  # shut down while held: never sent, so nothing is missed
            return
        self.flush()

    def connect(self, conn: Connection) -> None:
        self.connections.add(conn)

    def subscribe(self, conn: Connection, cid: str) -> None:
        self.subscribers.setdefault(cid, set()).add(conn)

    def drop(self, conn: Connection) -> None:
        self.connections.discard(conn)
        self._told.discard(conn)
        for cid in [c for c, subs in self.subscribers.items() if conn in subs]:
            self.subscribers[cid].discard(conn)
            if not self.subscribers[cid]:
                del self.subscribers[cid]

    def forget(self, cid: str) -> None:
        self.subscribers.pop(cid, None)
        self.pending = [p for p in self.pending if p[0] != cid]
        self.held = [h for h in self.held if h[0] != cid]
        self._last.pop(cid, None)

    def emit(self, cid: str, run_id: str, kind: str, **fields: Any) -> dict[str, Any]:
        """Sequence, persist and send one conversation event."""
        last = self._last.get(cid)
        if kind == "token" and last and last["type"] == "token" and last["run_id"] == run_id:
            last["text"] += fields["text"]
            return last
        seq = self.store.next_seq(cid)
        body = {
            "type": kind,
            "conversation_id": cid,
            "run_id": run_id,
            "seq": seq,
            "ts": round(time.time(), 3),
            **fields,
        }
        self.pending.append((cid, body))
        self._last[cid] = body
        self._schedule()
        return body

    def control(self, conn: Connection, kind: str, **fields: Any) -> None:
        """A message that is not a conversation event (no seq, never replayed)."""
        self._queue(conn, dumps({"type": kind, "run_id": None, "seq": None, **fields}))

    def error(
        self,
        conn: Connection,
        code: str,
        message: str,
        *,
        reply_to: str | None = None,
        conversation_id: str | None = None,
        run_id: str | None = None,
    ) -> None:
        text = error_text(
            code, message, reply_to=reply_to, conversation_id=conversation_id, run_id=run_id
        )
        self._queue(conn, text)

    def replay(self, conn: Connection, cid: str, after_seq: int, reply_to: str | None) -> None:
        """Raises ``StoreError`` while events of ``cid`` are held: replaying what the
        store has and then the held events live could repeat some."""
        if self._retry is not None:  # try the store now rather than at the next retry
            self._retry.cancel()
            self._retry = None
        self.flush()
        if any(held_cid == cid for held_cid, _ in self.held):
            raise StoreError(503, STORE_UNAVAILABLE, HELD_MESSAGE)
        texts = self.store.events_after(cid, after_seq)
        for text in texts:
            conn.send(text)
        self.subscribe(conn, cid)
        last = self.store.last_seq(cid)
        self.control(
            conn,
            "resumed",
            reply_to=reply_to,
            conversation_id=cid,
            after_seq=after_seq,
            replayed=len(texts),
            last_seq=max(last, after_seq),
        )

    def open_notebook(self, conn: Connection, path: str) -> None:
        """Note that ``conn`` has ``path`` open, or refuse (``too_many_notebooks``)."""
        if path in conn.open_notebooks:
            return
        if len(conn.open_notebooks) >= self.max_notebooks_per_socket:
            raise AgentError(
                TOO_MANY_NOTEBOOKS,
                f"this connection already has {len(conn.open_notebooks)} notebooks open "
                f"(c.Agent.max_open_notebooks_per_socket); close one first",
                429,
            )
        mine = sum(len(c.open_notebooks) for c in self.connections if c.username == conn.username)
        if mine >= self.max_notebooks_per_user:
            raise AgentError(
                TOO_MANY_NOTEBOOKS,
                f"your connections already have {mine} notebooks open "
                f"(c.Agent.max_open_notebooks_per_user); close one first",
                429,
            )
        conn.open_notebooks.add(path)

    def frontend_for(self, cid: str, username: str, path: str) -> Connection | None:
        """The user's front end that has the notebook open, preferring one that watches
        this conversation; another one is subscribed so it receives the request."""
        watching = self.subscribers.get(cid, set())
        found = [c for c in self.connections if c.username == username and path in c.open_notebooks]
        found.sort(key=lambda c: c not in watching)
        if not found:
            return None
        self.subscribe(found[0], cid)
        return found[0]
