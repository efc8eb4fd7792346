"""The broker's audit search for instructors: scoped to their courses, bounded per request.

An instructor who is not an admin reads the events of the users in the courses they
teach (students and staff, by hub group or role, as the hub says now) and the events
about those courses (``course:<name>``); admins and ``admin_groups`` read everything.

Each request examines at most ``c.BrokerApp.audit_scan_rows`` rows, a range of the
primary key (from ``after``, or the first event at ``since`` found through the time
index): every filter, the scope and the text search run inside that range, so a search
that matches nothing costs one bounded range scan, never a walk through the whole
table. The answer says where it stopped (``next_after``) and whether rows are left
(``more``); the next request continues from there.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .identity import HubCaller, HubUnavailable
from .usage import InstructorHandler

if TYPE_CHECKING:
    from aiide_server_ext.stores.conn import Conn

    from .service import Broker


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    outcome: str | None = None
    #: Substring of the target.
    target: str | None = None
    #: Substring anywhere in the event (lower case).
    text: str = ""
    since: float | None = None
    until: float | None = None
    after: int = 0
    limit: int = 500
    #: Newest first: the range examined ends at ``before`` (exclusive; 0: the newest row)
    #: and is read downwards, so the first page is what happened last.
    newest_first: bool = False
    before: int = 0


@dataclass(frozen=True)
class AuditScope:
    """What a non-admin instructor may read: these users' events, these targets'."""

    actors: frozenset[str]
    targets: frozenset[str]


@dataclass(frozen=True)
class AuditPage:
    events: list[dict[str, Any]]
    #: The last row examined: the next request's ``after``.
    next_after: int
    #: Rows after ``next_after`` exist (matching or not); newest first: rows before
    #: ``next_before``.
    more: bool
    #: Newest first: the next request's ``before`` (the lowest id examined).
    next_before: int = 0


async def scope_for(broker: Broker, caller: HubCaller) -> AuditScope | None:
    """None: everything (admins). Raises ``PermissionError`` for non-instructors and
    ``HubUnavailable`` when the hub cannot say who is in the courses."""
    if caller.admin or set(broker.app.admin_groups) & caller.groups:
        return None
    taught = [c for c in broker.files.values() if c.instructors & caller.groups]
    if not taught:
        raise PermissionError("only instructors may read the audit trail")
    groups = frozenset(g for c in taught for g in c.groups | c.instructors)
    members = await broker.hub.members()
    actors = {name for name, member in members.items() if member.groups & groups}
    return AuditScope(
        frozenset(actors | {caller.name}), frozenset(f"course:{c.name}" for c in taught)
    )


def _like(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, its own % and _ taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _in(column: str, values: Sequence[str]) -> tuple[str, list[str]]:
    return f"{column} IN ({', '.join('?' * len(values))})", list(values)


def search(conn: Conn, f: AuditFilter, scope: AuditScope | None, scan_rows: int) -> AuditPage:
    """One bounded page of matching events, oldest first (or newest first)."""
    from aiide_server_ext.gateway.audit import EVENT_COLUMNS, add_filters, event_from_row

    start = f.after
    if f.since is not None:  # the time index finds where "since" begins
        first = conn.execute("SELECT MIN(id) FROM audit WHERE ts >= ?", (f.since,)).fetchone()
        if first is None or first[0] is None:
            return AuditPage([], start, False)
        start = max(start, int(first[0]) - 1)
    last = conn.execute("SELECT MAX(id) FROM audit").fetchone()
    top = int(last[0]) if last and last[0] is not None else 0
    if f.newest_first:  # the range ends at ``before`` and reaches down scan_rows rows
        floor = start
        top = min(top, f.before - 1) if f.before > 0 else top
        start = max(floor, top - max(1, scan_rows))
    end = min(top, start + max(1, scan_rows))
    where: list[str] = ["id > ?", "id <= ?"]
    args: list[Any] = [start, end]
    add_filters(
        where, args, actor=f.actor, action=f.action, outcome=f.outcome, since=f.since, until=f.until
    )
    if f.target:
        where.append("target LIKE ? ESCAPE '\\'")
        args.append(_like(f.target))
    if scope is not None:
        allowed = [_in(column, sorted(values)) for column, values in
                   (("actor", scope.actors), ("target", scope.targets)) if values]  # fmt: skip
        if not allowed:
            return AuditPage([], end, end < top)
        where.append("(" + " OR ".join(clause for clause, _ in allowed) + ")")
        args += [v for _, values in allowed for v in values]
    # Fixed clauses only; every value is a bound parameter.
    sql = f"SELECT {EVENT_COLUMNS} FROM audit WHERE "  # noqa: S608
    sql += " AND ".join(where) + (" ORDER BY id DESC" if f.newest_first else " ORDER BY id")
    if not f.text:
        sql += " LIMIT ?"
        args.append(f.limit)
    events: list[dict[str, Any]] = []
    for row in conn.execute(sql, args):
        event = event_from_row(row)
        if f.text and f.text not in json.dumps(event).lower():
            continue
        events.append(event)
        if len(events) >= f.limit:
            if f.newest_first:
                return AuditPage(events, end, True, next_before=int(event["id"]))
            return AuditPage(events, int(event["id"]), True)
    if f.newest_first:
        return AuditPage(events, end, start > floor, next_before=start + 1)
    return AuditPage(events, end, end < top)


class AuditHandler(InstructorHandler):
    """``GET api/audit?action=&actor=&outcome=&target=&q=&since=&until=&after=&limit=``.

    ``target`` and ``q`` (anywhere in the event) are substring matches; ``since``/``until``
    are ISO times or days (UTC); ``after`` continues from an earlier answer's
    ``next_after``; ``format=csv`` exports."""

    async def get(self) -> None:
        try:
            scope = await scope_for(self.broker, self.caller)
        except PermissionError as e:
            await self.audit("audit.read", "audit", "forbidden")
            self.fail(403, "forbidden", str(e))
            return
        except HubUnavailable as e:
            self.fail(503, "hub_unavailable", f"{e}; who is in your courses cannot be read")
            return
        try:
            f = AuditFilter(
                actor=self.get_argument("actor", None),
                action=self.get_argument("action", None),
                outcome=self.get_argument("outcome", None),
                target=self.get_argument("target", None),
                text=(self.get_argument("q", None) or "").lower(),
                since=_time(self.get_argument("since", None)),
                until=_time(self.get_argument("until", None)),
                after=max(0, int(self.get_argument("after", "0"))),
                limit=max(1, min(1000, int(self.get_argument("limit", "500")))),
                newest_first=_order(self.get_argument("order", "oldest")),
                before=max(0, int(self.get_argument("before", "0"))),
            )
        except ValueError as e:
            self.fail(400, "invalid_request", str(e))
            return
        rows = self.broker.app.audit_scan_rows
        page = await self.broker.store.aread(lambda conn: search(conn, f, scope, rows))
        await self.audit(
            "audit.read", "audit", "ok", {"matched": len(page.events), "scoped": scope is not None}
        )
        columns = ["id", "time", "actor", "action", "target", "outcome", "detail"]
        if self.get_argument("format", "json") == "csv":
            self.send("events", page.events, columns)
            return
        body: dict[str, Any] = {"events": page.events, "next_after": page.next_after}
        if f.newest_first:
            body["next_before"] = page.next_before
        self.finish({**body, "more": page.more})


def _order(value: str) -> bool:
    """``order=newest`` (newest first, what the dashboard shows) or ``oldest``."""
    if value not in ("newest", "oldest"):
        raise ValueError("order is 'newest' or 'oldest'")
    return value == "newest"


def _time(value: str | None) -> float | None:
    if not value:
        return None
    if value.replace(".", "", 1).isdigit():
        return float(value)
    parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.timestamp()


def audit_handlers(prefix: str, kw: dict[str, Any]) -> list[Any]:
    return [(prefix + "api/audit", AuditHandler, kw)]
