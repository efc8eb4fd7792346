"""Append-only audit log of security-relevant events.

Rows cannot be updated or deleted (database triggers refuse it) and each row
carries a hash over its content and the previous row's hash, so an edit made
behind the database's back shows up in ``verify()``. Appends are serialised across
servers sharing one database, so the chain stays a single line. Everything is redacted before it
is written: the audit log is read by admins and exported, secrets stay out.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiide_server_ext.stores.conn import Conn

from .redaction import Redactor
from .store import Store

MAX_DETAIL_CHARS = 8192
GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditQuery:
    actor: str | None = None
    action: str | None = None
    since: float | None = None
    until: float | None = None
    after_id: int = 0
    limit: int = 500


class AuditLog:
    def __init__(
        self, store: Store, redactor: Redactor, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.redactor = redactor
        self.clock = clock

    def append(
        self,
        conn: Conn,
        actor: str | None,
        action: str,
        target: str,
        outcome: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Inside the caller's transaction: the event lands with the change it records."""
        clean = self.redactor.obj(detail or {})
        text = json.dumps(clean, sort_keys=True, default=str)
        if len(text) > MAX_DETAIL_CHARS:
            text = json.dumps({"truncated": text[:MAX_DETAIL_CHARS]})
        row = (
            round(self.clock(), 6),
            self.redactor.text(actor)[:256] if actor else None,
            action[:128],
            self.redactor.text(target)[:512],
            outcome[:128],
            text,
        )
        conn.lock("audit")  # writers on other servers chain after this row, not beside it
        last = conn.execute("SELECT hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        prev = last[0] if last else GENESIS
        conn.execute(
            "INSERT INTO audit (ts, actor, action, target, outcome, detail, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (*row, prev, _digest(prev, row)),
        )

    async def record(
        self,
        actor: str | None,
        action: str,
        target: str,
        outcome: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        await self.store.awrite(lambda c: self.append(c, actor, action, target, outcome, detail))

    async def query(self, q: AuditQuery) -> list[dict[str, Any]]:
        where: list[str] = ["id > ?"]
        args: list[Any] = [q.after_id]
        add_filters(where, args, actor=q.actor, action=q.action, since=q.since, until=q.until)
        sql = f"SELECT {EVENT_COLUMNS} FROM audit WHERE {' AND '.join(where)}"  # noqa: S608
        sql += " ORDER BY id LIMIT ?"
        rows = await self.store.aread(lambda c: c.execute(sql, (*args, q.limit)).fetchall())
        return [event_from_row(r) for r in rows]

    def verify(self, conn: Conn) -> int | None:
        """The id of the first row whose hash does not match, or None if the chain holds."""
        prev = GENESIS
        for r in conn.execute(
            "SELECT id, ts, actor, action, target, outcome, detail, prev_hash, hash"
            " FROM audit ORDER BY id"
        ):
            if r[7] != prev or r[8] != _digest(prev, tuple(r[1:7])):
                return int(r[0])
            prev = r[8]
        return None


def _digest(prev: str, row: tuple[Any, ...]) -> str:
    return hashlib.sha256((prev + json.dumps(list(row), default=str)).encode()).hexdigest()


#: What a reader of the audit table selects, in the order ``event_from_row`` reads it.
EVENT_COLUMNS = "id, ts, actor, action, target, outcome, detail"


#: The audit table's filters: a name, and its fixed clause (the value is bound to ``?``).
FILTERS = {
    "actor": "actor = ?",
    "action": "action = ?",
    "outcome": "outcome = ?",
    "since": "ts >= ?",
    "until": "ts < ?",
}


def add_filters(where: list[str], args: list[Any], **values: Any) -> None:
    """The clause of each filter of ``FILTERS`` whose value is given, the value as a bound
    parameter: only fixed text is ever written into the SQL."""
    for name, value in values.items():
        if value is not None:
            where.append(FILTERS[name])
            args.append(value)


def event_from_row(r: tuple[Any, ...]) -> dict[str, Any]:
    """One audit event as the API sends it, from a row of ``EVENT_COLUMNS``."""
    return {
        "id": r[0],
        "time": datetime.datetime.fromtimestamp(r[1], datetime.timezone.utc)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "actor": r[2],
        "action": r[3],
        "target": r[4],
        "outcome": r[5],
        "detail": json.loads(r[6]),
    }


def to_jsonl(events: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(e, sort_keys=True) + "\n" for e in events)
