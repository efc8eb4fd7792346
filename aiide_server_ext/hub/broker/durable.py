"""The broker's course state in its database: the record Redis is rebuilt from.

Redis holds what every model call reads and counts (course changes, budget counters,
per-day figures for the dashboard) because it is one round trip for all replicas. But a
Redis restarted without persistence comes back empty, and an exam that lived only there
ended silently. So what instructors change at run time is written here first (one row per
course, with a revision), every batch of usage is added here in the transaction that
audits it, and ``SharedState`` rebuilds Redis from these tables whenever it finds Redis
empty. The tables are in the broker's database (sqlite file or PostgreSQL, the gateway's
schema, step ``BROKER_STATE``), so several brokers sharing one database agree.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ..course import periods

if TYPE_CHECKING:
    from aiide_server_ext.gateway.store import Store
    from aiide_server_ext.stores import Conn

    from .state import Usage

T = TypeVar("T")


class StateUnavailable(Exception):
    """The shared state cannot be read or written (Redis unreachable, or its database
    failing): the broker then fails closed."""


#: The figure of a day that is the budget counter (tokens counted against budgets).
TOKENS = "tokens"


@dataclass
class Saved:
    """Everything needed to rebuild Redis (or a broker's memory) from the database."""

    #: course -> (revision, changes)
    courses: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    #: day -> user -> metric -> value (``TOKENS`` included)
    days: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    #: user -> JSON list of the groups they had when last metered
    groups: dict[str, str] = field(default_factory=dict)

    def used(self, now: float | None = None) -> dict[str, dict[str, int]]:
        """user -> budget period -> tokens used in the current day and ISO week."""
        today = datetime.datetime.fromtimestamp(
            now if now is not None else time.time(), datetime.timezone.utc
        ).date()
        week = {(today - datetime.timedelta(d)).isoformat() for d in range(today.weekday() + 1)}
        out: dict[str, dict[str, int]] = {}
        for day, users in self.days.items():
            for user, figures in users.items():
                tokens = figures.get(TOKENS, 0)
                mine = out.setdefault(user, {"daily_tokens": 0, "weekly_tokens": 0})
                if day == today.isoformat():
                    mine["daily_tokens"] += tokens
                if day in week:
                    mine["weekly_tokens"] += tokens
        return out


def day_figures(usage: Iterable[Usage]) -> tuple[dict[tuple[str, str, str], int], dict[str, str]]:
    """((day, user, metric) -> value to add, user -> groups): several calls' usage summed,
    as both Redis and the database store it (the budget tokens as metric ``TOKENS``)."""
    rows: dict[tuple[str, str, str], int] = {}
    groups: dict[str, str] = {}
    for u in usage:
        day = periods(u.at)["daily_tokens"][0]
        figures = {k: v for k, v in u.metrics.items() if v}
        for metric, value in {**figures, TOKENS: u.tokens}.items():
            if value:
                rows[(day, u.user, metric)] = rows.get((day, u.user, metric), 0) + int(value)
        if figures:
            groups[u.user] = json.dumps(sorted(u.groups))
    return rows, groups


class DurableState:
    def __init__(self, store: Store, history_days: int = 60) -> None:
        self.store = store
        self.history_days = history_days

    # -- course changes ----------------------------------------------------------------

    async def update(
        self, course: str, update: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> tuple[int, dict[str, Any]]:
        """(revision, new changes): ``update(current)`` stored in one transaction; brokers
        sharing the database change one course one at a time. ``update`` may raise."""

        def write(conn: Conn) -> tuple[int, dict[str, Any]]:
            conn.lock(f"broker-course:{course}")
            row = conn.execute(
                "SELECT revision, changes FROM broker_courses WHERE course = ?", (course,)
            ).fetchone()
            revision = int(row[0]) + 1 if row else 1
            new = update(dict(json.loads(row[1])) if row else {})
            conn.execute(
                "INSERT INTO broker_courses (course, changes, revision, updated_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (course) DO UPDATE SET"
                " changes = excluded.changes, revision = excluded.revision,"
                " updated_at = excluded.updated_at",
                (course, json.dumps(new), revision, time.time()),
            )
            return revision, new

        return await _unavailable_if_failing(self.store.awrite(write))

    # -- usage -------------------------------------------------------------------------

    def record(self, conn: Conn, usage: Iterable[Usage]) -> None:
        """Adds the calls' figures inside the caller's transaction (the recorder's, which
        audits the same calls): a figure is stored exactly when its audit record is."""
        rows, groups = day_figures(usage)
        conn.executemany(
            "INSERT INTO broker_usage (day, username, metric, value) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (day, username, metric) DO UPDATE SET"
            " value = broker_usage.value + excluded.value",
            [(*key, value) for key, value in sorted(rows.items())],  # sorted: no deadlocks
        )
        conn.executemany(
            "INSERT INTO broker_groups (username, groups) VALUES (?, ?)"
            " ON CONFLICT (username) DO UPDATE SET groups = excluded.groups",
            sorted(groups.items()),
        )

    # -- everything, to rebuild from ---------------------------------------------------

    async def load(self, now: float | None = None) -> Saved:
        first = datetime.datetime.fromtimestamp(
            now if now is not None else time.time(), datetime.timezone.utc
        ).date() - datetime.timedelta(self.history_days)

        def read(conn: Conn) -> Saved:
            saved = Saved()
            for course, revision, changes in conn.execute(
                "SELECT course, revision, changes FROM broker_courses"
            ):
                saved.courses[str(course)] = (int(revision), dict(json.loads(changes)))
            for day, user, metric, value in conn.execute(
                "SELECT day, username, metric, value FROM broker_usage WHERE day >= ?",
                (first.isoformat(),),
            ):
                saved.days.setdefault(day, {}).setdefault(user, {})[metric] = int(value)
            for user, groups in conn.execute("SELECT username, groups FROM broker_groups"):
                saved.groups[str(user)] = str(groups)
            return saved

        return await _unavailable_if_failing(self.store.aread(read))


async def _unavailable_if_failing(work: Awaitable[T]) -> T:
    """A database failure is the state being unavailable (the broker then fails closed)."""
    from aiide_server_ext.gateway.errors import GatewayError
    from aiide_server_ext.stores.errors import StoreError

    try:
        return await work
    except (GatewayError, StoreError) as e:
        raise StateUnavailable(f"the broker database: {e.message}") from None
