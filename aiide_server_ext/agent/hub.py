"""Who hears what: sockets subscribed to conversations, sequenced events, replay.

Everything here is synchronous on the event loop, so a replay and the subscription
that follows it cannot interleave with a live event: ``resume`` is exactly-once, in order.
"""

from __future__ import annotations

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

    def emit(
        self, cid: str, run_id: str, kind: str, *, durable: bool = False, **fields: Any
    ) -> dict[str, Any]:
        """Sequence, persist and send one conversation event."""
        seq = self.store.next_seq(cid)
        body = {
            "type": kind,
            "conversation_id": cid,
            "run_id": run_id,
            "seq": seq,
            "ts": round(time.time(), 3),
            **fields,
        }
        text = dumps(body)
        self.store.append_event(cid, seq, text)
        if durable:
            self.store.flush()
        for conn in list(self.subscribers.get(cid, ())):
            conn.send(text)
        return body

    @staticmethod
    def control(conn: Connection, kind: str, **fields: Any) -> None:
        """A message that is not a conversation event (no seq, never replayed)."""
        conn.send(dumps({"type": kind, "run_id": None, "seq": None, **fields}))

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
        conn.send(dumps(body))

    def replay(self, conn: Connection, cid: str, after_seq: int, reply_to: str | None) -> None:
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
        found = [
            c for c in self.connections if c.username == username and path in c.open_notebooks
        ]
        found.sort(key=lambda c: c not in watching)
        if not found:
            return None
        self.subscribe(found[0], cid)
        return found[0]
