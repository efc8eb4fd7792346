"""Conversations, turns, runs and events: what survives a ``kill -9``.

sqlite by default: one connection on the event-loop thread (each call is tens of
microseconds). Writes accumulate in sqlite's implicit transaction and events in a list;
``flush`` writes both in one commit. The fan-out flushes before it sends anything (once per
loop iteration, so hundreds of token events share a commit): whatever a client was sent
is on disk. WAL mode makes a commit durable against a killed process without an fsync
per commit.

With a database URL the same tables live in PostgreSQL, shared by several servers: each
statement commits on its own and a flush writes the queued events in one transaction,
so the batching (and the "sent means stored" rule) is the same. Calls stay synchronous:
a nearby server answers in well under a millisecond, and a down one is refused fast
(``StoreError``) instead of stalling the loop. Runs carry the ``server`` that owns them,
so a server starting up only recovers its own runs, never another server's live ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from typing import Any

from ..stores.conn import Conn, Cursor, SqliteConn, check_database_url
from ..stores.errors import StoreError
from ..stores.postgres import PgOpener
from ..stores.schema import migrate
from ..stores.sealing import Sealer, SealError, is_sealed, sealed_by
from ..stores.wal import WalCheckpointer, hand_off_checkpoints
from .errors import AgentError

log = logging.getLogger("aiide.agent")
LABEL = "the agent database"

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

RUN_OWNER = """
ALTER TABLE runs ADD COLUMN server TEXT NOT NULL DEFAULT '';
"""

PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, title TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL, updated DOUBLE PRECISION NOT NULL,
    summary TEXT NOT NULL DEFAULT '', summary_upto INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS conversations_owner ON conversations (owner, updated);
CREATE TABLE IF NOT EXISTS turns (
    conversation_id TEXT NOT NULL, idx INTEGER NOT NULL, role TEXT NOT NULL,
    content TEXT NOT NULL, run_id TEXT,
    PRIMARY KEY (conversation_id, idx)
);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, state TEXT NOT NULL,
    updated DOUBLE PRECISION NOT NULL, data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_conversation ON runs (conversation_id);
CREATE INDEX IF NOT EXISTS runs_state ON runs (state);
CREATE TABLE IF NOT EXISTS events (
    conversation_id TEXT NOT NULL, seq BIGINT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
CREATE TABLE IF NOT EXISTS user_values (
    username TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (username, name)
);
"""

# Events as a rowid table: a WITHOUT ROWID table keeps each event's body in its key's
# B-tree, so a commit of tokens from many conversations rewrote a page per row (2.2x
# the CPU per row, and a 9 KB log write per event).
EVENTS_ROWID = """
CREATE TABLE events_rowid (
    conversation_id TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
INSERT INTO events_rowid SELECT conversation_id, seq, body FROM events;
DROP TABLE events;
ALTER TABLE events_rowid RENAME TO events;
"""

#: PostgreSQL's events table is a heap already.
PG_UNCHANGED = "SELECT 1;"

# Retention (``prune``): each event's time, and what pruned conversations were, so that
# asking for one answers ``conversation_expired`` rather than "never existed". Events
# stored before this step have ts 0 and go only with their conversation.
RETENTION = """
ALTER TABLE events ADD COLUMN ts REAL NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS pruned_conversations (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, pruned REAL NOT NULL
);
"""
PG_RETENTION = RETENTION.replace("REAL", "DOUBLE PRECISION")

#: Append only, to both lists; index + 1 is the schema version the step produces.
STEPS = {
    "sqlite": [SCHEMA, RUN_OWNER, EVENTS_ROWID, RETENTION],
    "postgresql": [PG_SCHEMA, RUN_OWNER, PG_UNCHANGED, PG_RETENTION],
}

#: Run states whose conversation is never pruned (``runs.py``: RUNNING, AWAITING); the
#: queries of ``prune`` take them as their two ``state IN (?, ?)`` parameters.
UNFINISHED = ("running", "awaiting_approval")
#: A pruned conversation answers ``conversation_expired`` for this long, then is unknown.
TOMBSTONE_SECONDS = 30 * 86400

FLUSH_DELAY = 0.005


def like_escape(text: str) -> str:
    """``text`` matched literally by ``LIKE … ESCAPE '!'`` (``%`` and ``_`` are not
    wildcards in a search box)."""
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


#: Seconds between attempts while a timed commit fails.
FLUSH_RETRY = 1.0


class Store:
    """``path``: the sqlite file. ``url``: a PostgreSQL database instead (``path`` unused).

    ``server`` names this server among those sharing the database (its runs).
    ``sealer`` seals the per-user values (users' own keys) at rest; without one they
    cannot be stored or read."""

    def __init__(
        self,
        path: str,
        url: str = "",
        server: str = "",
        connect_timeout: float = 5.0,
        sealer: Sealer | None = None,
    ) -> None:
        check_database_url(url, "c.Agent.database_url")
        self.sealer = sealer
        #: sqlite: the writes of the open transaction, replayed if sqlite rolls it back
        #: (a full disk fails the commit and undoes the whole transaction).
        self._redo: list[tuple[str, Sequence[Any]]] = []
        self.closed = False
        self.url = url
        self.server = server
        self.db: Conn | None = None
        self._opener: PgOpener | None = None
        self._checkpointer: WalCheckpointer | None = None
        if url:
            self._opener = PgOpener(url, LABEL, connect_timeout, connect_timeout)
            self.path = self._opener.where
            try:
                self._c()
            except Exception as e:
                log.warning("aiide agent: %s not reachable yet: %s", self.path, e)
        else:
            self.path = path
            self.db = self._open_sqlite(path)
            if path != ":memory:":
                self._checkpointer = WalCheckpointer(path)
        self._pending: list[tuple[str, int, str, float]] = []
        self._seq: dict[str, int] = {}
        self._flush_handle: asyncio.TimerHandle | None = None
        if sealer is not None and self.db is not None:
            self.seal_plain_values()

    @staticmethod
    def _open_sqlite(path: str) -> Conn:
        if path != ":memory:":
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)  # keys live here: 0600
            os.close(fd)
        raw = sqlite3.connect(path, check_same_thread=False, isolation_level="DEFERRED")
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("PRAGMA synchronous=NORMAL")
        hand_off_checkpoints(raw)
        conn = SqliteConn(raw)
        migrate(conn, "agent", STEPS, LABEL)
        return conn

    def _c(self) -> Conn:
        """The live connection; a lost PostgreSQL connection is replaced here."""
        if self.db is not None and not self.db.broken:
            if self._redo and not self.db.in_transaction:
                self._replay(self.db)
            return self.db
        assert self._opener is not None  # sqlite connections do not break
        if self.db is not None:
            with contextlib.suppress(Exception):
                self.db.close()
            self.db = None
        conn = self._opener.open()
        try:
            migrate(conn, "agent", STEPS, LABEL)
        except BaseException:
            conn.close()
            raise
        self.db = conn
        return conn

    @contextlib.contextmanager
    def _atomic(self) -> Iterator[Conn]:
        """sqlite: statements gather in the open transaction until ``flush`` commits.
        PostgreSQL runs in autocommit: bracket the statements that belong together."""
        conn = self._c()
        if conn.dialect == "sqlite":
            yield conn
            return
        conn.begin()
        try:
            yield conn
            conn.commit()
        except BaseException:
            if conn.in_transaction and not conn.broken:
                conn.rollback()
            raise

    def _replay(self, db: Conn) -> None:
        """Redo the writes of a transaction sqlite rolled back, before anything else runs."""
        try:
            for sql, params in self._redo:
                db.execute(sql, params)
        except BaseException:
            if db.in_transaction:  # half replayed: start over next time
                db.rollback()
            raise
        log.warning("aiide: %s: redid %d writes after a failed commit", self.path, len(self._redo))

    def _w(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        """A write: under sqlite it stays in the open transaction until ``flush``."""
        cursor = self._q(sql, params)
        if self.db is not None and self.db.dialect == "sqlite":
            self._redo.append((sql, params))
        return cursor

    def _q(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        try:
            return self._c().execute(sql, params)
        except StoreError:
            if self.db is None or not self.db.broken:
                raise
        # Lost while idle (database restarted): one new connection, one more try.
        return self._c().execute(sql, params)

    def version(self) -> int:
        return self._c().schema_version("agent")

    # -- durability ------------------------------------------------------------------
    def schedule_flush(self) -> None:
        if self._flush_handle is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._flush_handle = loop.call_later(FLUSH_DELAY, self._timed_flush)

    def _timed_flush(self) -> None:
        try:
            self.flush()
        except (StoreError, sqlite3.Error) as e:
            # Nothing is lost (the writes stay queued, or are redone); try again later.
            log.warning("aiide: %s: commit failed (%s); retrying", self.path, e)
            loop = asyncio.get_running_loop()
            self._flush_handle = loop.call_later(FLUSH_RETRY, self._timed_flush)

    def flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._redo:
            self._c()  # sqlite: redo what a failed commit undid, before committing again
        # Queued events stay queued until their commit succeeds: a failed flush (database
        # down, disk full) is retried whole, and a row written twice is ignored.
        if self._pending:
            with self._atomic() as conn:
                conn.executemany(
                    "INSERT INTO events (conversation_id, seq, body, ts) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    self._pending,
                )
            if conn.dialect != "sqlite":
                self._pending.clear()
        if isinstance(self.db, SqliteConn) and self.db.in_transaction:
            self.db.commit()
            if self._checkpointer is not None:
                self._checkpointer.note_commit()
        if isinstance(self.db, SqliteConn):
            self._pending.clear()
            self._redo.clear()

    def close(self) -> None:
        self.closed = True
        try:
            self.flush()
        finally:
            if self._checkpointer is not None:
                self._checkpointer.close()
            if self.db is not None:
                self.db.close()
                self.db = None

    # -- conversations ---------------------------------------------------------------
    def create_conversation(self, cid: str, owner: str, title: str) -> None:
        now = time.time()
        self._w("DELETE FROM pruned_conversations WHERE id = ?", (cid,))  # an id reused
        self._w(
            "INSERT INTO conversations (id, owner, title, created, updated) VALUES (?, ?, ?, ?, ?)",
            (cid, owner, title[:120], now, now),
        )
        self._seq[cid] = 0
        self.schedule_flush()

    def conversation(self, cid: str, owner: str | None = None) -> dict[str, Any] | None:
        row = self._q(
            "SELECT id, owner, title, created, updated, summary, summary_upto "
            "FROM conversations WHERE id = ?",
            (cid,),
        ).fetchone()
        if row is None or (owner is not None and row[1] != owner):
            return None
        keys = ("id", "owner", "title", "created", "updated", "summary", "summary_upto")
        return dict(zip(keys, row, strict=True))

    def owned(self, cid: str, owner: str) -> dict[str, Any]:
        """The owner's conversation, or ``AgentError``: ``conversation_expired`` (410)
        when retention pruned it, ``unknown_conversation`` (404) otherwise."""
        conv = self.conversation(cid, owner)
        if conv is not None:
            return conv
        row = self._q(
            "SELECT 1 FROM pruned_conversations WHERE id = ? AND owner = ?", (cid, owner)
        ).fetchone()
        if row is not None:
            raise AgentError(
                "conversation_expired",
                f"conversation {cid} was removed by the server's retention policy",
                410,
            )
        raise AgentError("unknown_conversation", f"no conversation {cid}", 404)

    def conversations(self, owner: str) -> list[dict[str, Any]]:
        rows = self._q(
            "SELECT id, title, created, updated FROM conversations WHERE owner = ? "
            "ORDER BY updated DESC",
            (owner,),
        ).fetchall()
        return [dict(zip(("id", "title", "created", "updated"), r, strict=True)) for r in rows]

    def rename_conversation(self, cid: str, title: str) -> None:
        # ``updated`` stays: a rename is not activity, the list keeps its order
        self._w("UPDATE conversations SET title = ? WHERE id = ?", (title[:120], cid))
        self.flush()

    def search_conversations(
        self, owner: str, query: str, limit: int
    ) -> Iterator[tuple[dict[str, Any], str | None]]:
        """The owner's conversations whose title or a turn contains ``query``, newest
        first: ``(summary, matching turn's stored JSON or None for a title match)``.

        Turns are stored as JSON, so their pattern is the query as JSON escapes it; the
        caller checks the turn's visible text (a key such as ``"type"`` matches too).
        Case-insensitive through ``LOWER`` (ASCII letters only under sqlite)."""
        needle = query.lower()
        title_pattern = f"%{like_escape(needle)}%"
        text_pattern = f"%{like_escape(json.dumps(needle)[1:-1])}%"
        keys = ("id", "title", "created", "updated")
        titled = self._q(
            "SELECT id, title, created, updated FROM conversations"
            " WHERE owner = ? AND LOWER(title) LIKE ? ESCAPE '!' ORDER BY updated DESC LIMIT ?",
            (owner, title_pattern, limit),
        ).fetchall()
        for row in titled:
            yield dict(zip(keys, row, strict=True)), None
        rows = self._q(
            "SELECT c.id, c.title, c.created, c.updated, t.content FROM conversations c"
            " JOIN turns t ON t.conversation_id = c.id"
            " WHERE c.owner = ? AND t.role IN ('user', 'assistant')"
            " AND LOWER(t.content) LIKE ? ESCAPE '!' ORDER BY c.updated DESC, t.idx",
            (owner, text_pattern),
        )
        for row in rows:
            yield dict(zip(keys, row[:4], strict=True)), str(row[4])

    def touch(self, cid: str) -> None:
        self._w("UPDATE conversations SET updated = ? WHERE id = ?", (time.time(), cid))
        self.schedule_flush()

    def set_summary(self, cid: str, summary: str, upto: int) -> None:
        self._w(
            "UPDATE conversations SET summary = ?, summary_upto = ? WHERE id = ?",
            (summary, upto, cid),
        )
        self.schedule_flush()

    def delete_conversation(self, cid: str) -> None:
        self._pending = [p for p in self._pending if p[0] != cid]
        with self._atomic() as conn:
            self._delete_rows(conn, cid)
        self._seq.pop(cid, None)
        self.flush()

    @staticmethod
    def _delete_rows(conn: Conn, cid: str) -> None:
        for table, column in (
            ("events", "conversation_id"),
            ("turns", "conversation_id"),
            ("runs", "conversation_id"),
            ("conversations", "id"),
        ):
            conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (cid,))  # noqa: S608

    # -- retention -------------------------------------------------------------------
    def prune(
        self,
        *,
        conversation_age: float = 0,
        max_conversations: int = 0,
        event_age: float = 0,
        now: float | None = None,
    ) -> dict[str, int]:
        """Drop conversations not updated for ``conversation_age`` seconds and, per owner,
        those beyond the ``max_conversations`` most recent (each leaves a tombstone:
        ``owned`` answers ``conversation_expired``), and events older than ``event_age``
        except each conversation's newest (so sequence numbers go on). A conversation
        with an unfinished run keeps everything. 0 turns a rule off."""
        now = time.time() if now is None else now
        self.flush()
        doomed: dict[str, str] = {}
        if conversation_age > 0:
            rows = self._q(
                "SELECT id, owner FROM conversations WHERE updated < ? AND id NOT IN"
                " (SELECT conversation_id FROM runs WHERE state IN (?, ?))",
                (now - conversation_age, *UNFINISHED),
            ).fetchall()
            doomed.update((str(cid), str(owner)) for cid, owner in rows)
        if max_conversations > 0:
            rows = self._q(
                "SELECT id, owner FROM (SELECT id, owner, ROW_NUMBER() OVER"
                " (PARTITION BY owner ORDER BY updated DESC) AS n FROM conversations) ranked"
                " WHERE n > ? AND id NOT IN"
                " (SELECT conversation_id FROM runs WHERE state IN (?, ?))",
                (max_conversations, *UNFINISHED),
            ).fetchall()
            doomed.update((str(cid), str(owner)) for cid, owner in rows)
        events = 0
        with self._atomic() as conn:
            for cid, owner in doomed.items():
                self._delete_rows(conn, cid)
                conn.execute(
                    "INSERT INTO pruned_conversations VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    (cid, owner, now),
                )
                self._seq.pop(cid, None)
            conn.execute(
                "DELETE FROM pruned_conversations WHERE pruned < ?", (now - TOMBSTONE_SECONDS,)
            )
            if event_age > 0:
                events = conn.execute(
                    "DELETE FROM events WHERE ts > 0 AND ts < ?"
                    " AND seq < (SELECT MAX(e.seq) FROM events e"
                    " WHERE e.conversation_id = events.conversation_id)"
                    " AND conversation_id NOT IN"
                    " (SELECT conversation_id FROM runs WHERE state IN (?, ?))",
                    (now - event_age, *UNFINISHED),
                ).rowcount
        self.flush()
        return {"conversations": len(doomed), "events": max(events, 0)}

    # -- events ----------------------------------------------------------------------
    def next_seq(self, cid: str) -> int:
        if cid not in self._seq:
            self._seq[cid] = self.last_seq(cid)
        self._seq[cid] += 1
        return self._seq[cid]

    def append_event(self, cid: str, seq: int, body: str) -> None:
        """Queued; the caller flushes before sending it."""
        self._pending.append((cid, seq, body, time.time()))

    def events_after(self, cid: str, after_seq: int) -> list[str]:
        self.flush()
        rows = self._q(
            "SELECT body FROM events WHERE conversation_id = ? AND seq > ? ORDER BY seq",
            (cid, after_seq),
        ).fetchall()
        return [r[0] for r in rows]

    def last_seq(self, cid: str) -> int:
        pending = [p[1] for p in self._pending if p[0] == cid]
        row = self._q("SELECT MAX(seq) FROM events WHERE conversation_id = ?", (cid,)).fetchone()
        return max([int(row[0] or 0), *pending])

    # -- turns -----------------------------------------------------------------------
    def append_turn(self, cid: str, role: str, content: Any, run_id: str | None) -> int:
        row = self._q(
            "SELECT COALESCE(MAX(idx), -1) + 1 FROM turns WHERE conversation_id = ?", (cid,)
        ).fetchone()
        idx = int(row[0])
        self._w(
            "INSERT INTO turns VALUES (?, ?, ?, ?, ?)",
            (cid, idx, role, json.dumps(content), run_id),
        )
        self.schedule_flush()
        return idx

    def turns(self, cid: str) -> list[dict[str, Any]]:
        rows = self._q(
            "SELECT idx, role, content, run_id FROM turns WHERE conversation_id = ? ORDER BY idx",
            (cid,),
        ).fetchall()
        return [
            {"idx": i, "role": role, "content": json.loads(content), "run_id": run_id}
            for i, role, content, run_id in rows
        ]

    # -- runs ------------------------------------------------------------------------
    def put_run(self, run_id: str, cid: str, state: str, data: dict[str, Any]) -> None:
        self._w(
            "INSERT INTO runs (id, conversation_id, state, updated, data, server)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " conversation_id = excluded.conversation_id, state = excluded.state,"
            " updated = excluded.updated, data = excluded.data, server = excluded.server",
            (run_id, cid, state, time.time(), json.dumps(data), self.server),
        )
        self.schedule_flush()

    def run(self, run_id: str) -> dict[str, Any] | None:
        row = self._q("SELECT data FROM runs WHERE id = ?", (run_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def runs_of(self, cid: str) -> list[dict[str, Any]]:
        rows = self._q("SELECT data FROM runs WHERE conversation_id = ?", (cid,))
        return sorted((json.loads(r[0]) for r in rows), key=lambda r: float(r.get("created", 0)))

    def runs_in(self, states: tuple[str, ...]) -> list[dict[str, Any]]:
        """This server's runs in those states (other servers sharing the database own theirs)."""
        marks = ",".join("?" * len(states))
        rows = self._q(
            f"SELECT data FROM runs WHERE server = ? AND state IN ({marks})",  # noqa: S608
            (self.server, *states),
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    # -- per-user values (own provider keys, header variables), sealed at rest ---------
    def _sealer(self) -> Sealer:
        if self.sealer is None:
            raise StoreError(500, "no_server_key", "per-user values need the server key")
        return self.sealer

    def user_value(self, username: str, name: str) -> str | None:
        """The plain value; ``AgentError`` ``secret_unreadable`` (naming the key ids, never
        the value) when this server's key is not the one that sealed it."""
        row = self._q(
            "SELECT value FROM user_values WHERE username = ? AND name = ?", (username, name)
        ).fetchone()
        if not row:
            return None
        value = str(row[0])
        sealer = self._sealer()
        if not is_sealed(value):  # written by a server from before sealing, not yet sealed
            return value
        try:
            return sealer.open(value, _context(username, name))
        except SealError as e:
            what = f"your key for {name[4:]!r}" if name.startswith("key:") else repr(name)
            raise AgentError("secret_unreadable", f"{what}: {e.message}", 500) from None

    def set_user_value(self, username: str, name: str, value: str | None) -> None:
        if value is None:
            self._w("DELETE FROM user_values WHERE username = ? AND name = ?", (username, name))
        else:
            self._w(
                "INSERT INTO user_values VALUES (?, ?, ?)"
                " ON CONFLICT (username, name) DO UPDATE SET value = excluded.value",
                (username, name, self._sealer().seal(value, _context(username, name))),
            )
        self.flush()

    def user_names(self, username: str) -> list[str]:
        rows = self._q(
            "SELECT name FROM user_values WHERE username = ? ORDER BY name", (username,)
        ).fetchall()
        return [str(r[0]) for r in rows]

    def seal_plain_values(self) -> int:
        """Seal the values stored in plain text (by servers from before sealing); run at
        open. Counts, never values, go to the log; so do values another key sealed."""
        sealer = self._sealer()
        try:
            rows = self._q("SELECT username, name, value FROM user_values").fetchall()
        except StoreError as e:
            log.warning("aiide agent: per-user values not checked at start: %s", e)
            return 0
        plain = [(str(u), str(n), str(v)) for u, n, v in rows if not is_sealed(str(v))]
        foreign = sum(1 for *_, v in rows if sealed_by(str(v)) not in (None, sealer.key_id))
        if foreign:
            log.warning(
                "aiide agent: %d stored per-user values were sealed with another server key "
                "than this one (%s, from %s); they cannot be read until it is restored",
                foreign,
                sealer.key_id,
                sealer.source,
            )
        if not plain:
            return 0
        wipe = self.db is not None and self.db.dialect == "sqlite"
        if wipe:  # the plain text's pages are overwritten with zeros, not just freed
            self._q("PRAGMA secure_delete=ON")
        for username, name, value in plain:
            self._w(
                "UPDATE user_values SET value = ? WHERE username = ? AND name = ? AND value = ?",
                (sealer.seal(value, _context(username, name)), username, name, value),
            )
        self.flush()
        if wipe:  # and no copy stays behind in the write-ahead log
            self._q("PRAGMA wal_checkpoint(TRUNCATE)")
            self._q("PRAGMA secure_delete=OFF")
        log.info("aiide agent: sealed %d per-user values stored in plain text", len(plain))
        return len(plain)


def _context(username: str, name: str) -> str:
    """What a sealed value is bound to: its row."""
    return f"{username}\0{name}"
