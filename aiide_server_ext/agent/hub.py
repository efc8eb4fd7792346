"""Who hears what: sockets subscribed to conversations, sequenced events, replay.

Everything here is synchronous on the event loop, so a replay and the subscription
that follows it cannot interleave with a live event: ``resume`` is exactly-once, in order.
Events wait until the end of the loop iteration, when one commit makes them durable and
then they are sent: a client never sees an event a crash loses. While waiting, a run's
consecutive ``token`` events merge into one (same text, in order), so a busy server sends
fewer, larger frames instead of falling behind.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Protocol

from .store import Store


class Connection(Protocol):
    username: str
    #: Notebooks (server-relative paths) this front end has open.
    open_notebooks: set[str]

    def send(self, text: str) -> None: ...


def dumps(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


class Hub:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.subscribers: dict[str, set[Connection]] = {}
        self.connections: set[Connection] = set()
        #: (conversation, event) not yet committed, and control frames: (conn, text).
        self.pending: list[tuple[str, dict[str, Any]] | tuple[Connection, str]] = []
        self._last: dict[str, dict[str, Any]] = {}  # conversation -> its last pending event
        self._scheduled = False

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def _queue(self, conn: Connection, text: str) -> None:
        self.pending.append((conn, text))
        self._schedule()

    def flush(self) -> None:
        """Serialise and store pending events, commit, then send everything in order."""
        self._scheduled = False
        pending, self.pending = self.pending, []
        self._last.clear()
        frames: list[tuple[Connection, str]] = []
        for target, item in pending:
            if isinstance(target, str):
                assert isinstance(item, dict)
                text = dumps(item)
                self.store.append_event(target, item["seq"], text)
                frames.extend((conn, text) for conn in self.subscribers.get(target, ()))
            else:
                assert isinstance(item, str)
                frames.append((target, item))
        self.store.flush()
        for conn, text in frames:
            conn.send(text)

    def connect(self, conn: Connection) -> None:
        self.connections.add(conn)

    def subscribe(self, conn: Connection, cid: str) -> None:
        self.subscribers.setdefault(cid, set()).add(conn)

    def drop(self, conn: Connection) -> None:
        self.connections.discard(conn)
        for cid in [c for c, subs in self.subscribers.items() if conn in subs]:
            self.subscribers[cid].discard(conn)
            if not self.subscribers[cid]:
                del self.subscribers[cid]

    def forget(self, cid: str) -> None:
        self.subscribers.pop(cid, None)
        self.pending = [p for p in self.pending if p[0] != cid]
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
        self._queue(conn, dumps(body))

    def replay(self, conn: Connection, cid: str, after_seq: int, reply_to: str | None) -> None:
        self.flush()
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
