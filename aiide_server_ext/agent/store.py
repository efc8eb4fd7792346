"""Conversations, turns, runs and events in sqlite: what survives a ``kill -9``.

One connection on the event-loop thread (each call is tens of microseconds). Writes
accumulate in sqlite's implicit transaction and events in a list; ``flush`` writes both
in one commit. The hub flushes before it sends anything (once per loop iteration, so
hundreds of token events share a commit): whatever a client was sent is on disk. WAL mode
makes a commit durable against a killed process without an fsync per commit.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, title TEXT NOT NULL,
    created REAL NOT NULL, updated REAL NOT NULL,
    summary TEXT NOT NULL DEFAULT '', summary_upto INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS conversations_owner ON conversations (owner, updated);
CREATE TABLE IF NOT EXISTS turns (
    conversation_id TEXT NOT NULL, idx INTEGER NOT NULL, role TEXT NOT NULL,
    content TEXT NOT NULL, run_id TEXT,
    PRIMARY KEY (conversation_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, state TEXT NOT NULL,
    updated REAL NOT NULL, data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_conversation ON runs (conversation_id);
CREATE INDEX IF NOT EXISTS runs_state ON runs (state);
CREATE TABLE IF NOT EXISTS events (
    conversation_id TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (conversation_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS user_values (
    username TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (username, name)
) WITHOUT ROWID;
"""

FLUSH_DELAY = 0.005


class Store:
    def __init__(self, path: str) -> None:
        self.path = path
        if path != ":memory:":
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)  # keys live here: 0600
            os.close(fd)
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level="DEFERRED")
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self.db.commit()
        self._pending: list[tuple[str, int, str]] = []
        self._seq: dict[str, int] = {}
        self._flush_handle: asyncio.TimerHandle | None = None

    # -- durability ------------------------------------------------------------------
    def schedule_flush(self) -> None:
        if self._flush_handle is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._flush_handle = loop.call_later(FLUSH_DELAY, self.flush)

    def flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._pending:
            self.db.executemany("INSERT OR IGNORE INTO events VALUES (?, ?, ?)", self._pending)
            self._pending.clear()
        self.db.commit()

    def close(self) -> None:
        self.flush()
        self.db.close()

    # -- conversations ---------------------------------------------------------------
    def create_conversation(self, cid: str, owner: str, title: str) -> None:
        now = time.time()
        self.db.execute(
            "INSERT INTO conversations (id, owner, title, created, updated) VALUES (?, ?, ?, ?, ?)",
            (cid, owner, title[:120], now, now),
        )
        self._seq[cid] = 0
        self.schedule_flush()

    def conversation(self, cid: str, owner: str | None = None) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT id, owner, title, created, updated, summary, summary_upto "
            "FROM conversations WHERE id = ?",
            (cid,),
        ).fetchone()
        if row is None or (owner is not None and row[1] != owner):
            return None
        keys = ("id", "owner", "title", "created", "updated", "summary", "summary_upto")
        return dict(zip(keys, row, strict=True))

    def conversations(self, owner: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT id, title, created, updated FROM conversations WHERE owner = ? "
            "ORDER BY updated DESC",
            (owner,),
        ).fetchall()
        return [dict(zip(("id", "title", "created", "updated"), r, strict=True)) for r in rows]

    def touch(self, cid: str) -> None:
        self.db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (time.time(), cid))
        self.schedule_flush()

    def set_summary(self, cid: str, summary: str, upto: int) -> None:
        self.db.execute(
            "UPDATE conversations SET summary = ?, summary_upto = ? WHERE id = ?",
            (summary, upto, cid),
        )
        self.schedule_flush()

    def delete_conversation(self, cid: str) -> None:
        self._pending = [p for p in self._pending if p[0] != cid]
        for table, column in (
            ("events", "conversation_id"),
            ("turns", "conversation_id"),
            ("runs", "conversation_id"),
            ("conversations", "id"),
        ):
            self.db.execute(f"DELETE FROM {table} WHERE {column} = ?", (cid,))  # noqa: S608
        self._seq.pop(cid, None)
        self.flush()

    # -- events ----------------------------------------------------------------------
    def next_seq(self, cid: str) -> int:
        if cid not in self._seq:
            self._seq[cid] = self.last_seq(cid)
        self._seq[cid] += 1
        return self._seq[cid]

    def append_event(self, cid: str, seq: int, body: str) -> None:
        """Queued; the caller flushes before sending it."""
        self._pending.append((cid, seq, body))

    def events_after(self, cid: str, after_seq: int) -> list[str]:
        self.flush()
        rows = self.db.execute(
            "SELECT body FROM events WHERE conversation_id = ? AND seq > ? ORDER BY seq",
            (cid, after_seq),
        ).fetchall()
        return [r[0] for r in rows]

    def last_seq(self, cid: str) -> int:
        pending = [s for c, s, _ in self._pending if c == cid]
        row = self.db.execute(
            "SELECT MAX(seq) FROM events WHERE conversation_id = ?", (cid,)
        ).fetchone()
        return max([int(row[0] or 0), *pending])

    # -- turns -----------------------------------------------------------------------
    def append_turn(self, cid: str, role: str, content: Any, run_id: str | None) -> int:
        row = self.db.execute(
            "SELECT COALESCE(MAX(idx), -1) + 1 FROM turns WHERE conversation_id = ?", (cid,)
        ).fetchone()
        idx = int(row[0])
        self.db.execute(
            "INSERT INTO turns VALUES (?, ?, ?, ?, ?)",
            (cid, idx, role, json.dumps(content), run_id),
        )
        self.schedule_flush()
        return idx

    def turns(self, cid: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT idx, role, content, run_id FROM turns WHERE conversation_id = ? ORDER BY idx",
            (cid,),
        ).fetchall()
        return [
            {"idx": i, "role": role, "content": json.loads(content), "run_id": run_id}
            for i, role, content, run_id in rows
        ]

    # -- runs ------------------------------------------------------------------------
    def put_run(self, run_id: str, cid: str, state: str, data: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?)",
            (run_id, cid, state, time.time(), json.dumps(data)),
        )
        self.schedule_flush()

    def run(self, run_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT data FROM runs WHERE id = ?", (run_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def runs_of(self, cid: str) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT data FROM runs WHERE conversation_id = ?", (cid,))
        return sorted((json.loads(r[0]) for r in rows), key=lambda r: float(r.get("created", 0)))

    def runs_in(self, states: tuple[str, ...]) -> list[dict[str, Any]]:
        marks = ",".join("?" * len(states))
        rows = self.db.execute(
            f"SELECT data FROM runs WHERE state IN ({marks})",  # noqa: S608
            states,
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    # -- per-user values (own provider keys, header variables) -------------------------
    def user_value(self, username: str, name: str) -> str | None:
        row = self.db.execute(
            "SELECT value FROM user_values WHERE username = ? AND name = ?", (username, name)
        ).fetchone()
        return str(row[0]) if row else None

    def set_user_value(self, username: str, name: str, value: str | None) -> None:
        if value is None:
            self.db.execute(
                "DELETE FROM user_values WHERE username = ? AND name = ?", (username, name)
            )
        else:
            self.db.execute(
                "INSERT OR REPLACE INTO user_values VALUES (?, ?, ?)", (username, name, value)
            )
        self.flush()

    def user_names(self, username: str) -> list[str]:
        rows = self.db.execute(
            "SELECT name FROM user_values WHERE username = ? ORDER BY name", (username,)
        ).fetchall()
        return [str(r[0]) for r in rows]
