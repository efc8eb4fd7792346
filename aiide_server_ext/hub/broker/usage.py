"""The broker's instructor API: usage per student and day, who hit limits (the audit
search is ``audit.py``).

Instructors see the students of the courses they teach (admins and ``admin_groups``
everyone); every read is itself audited. ``?format=csv`` gives a spreadsheet-ready export.
Budget changes go through ``PATCH api/courses/<name>`` (see ``broker.CourseHandler``);
``GET api/courses`` lists the courses the caller teaches (the dashboard's course picker).
"""

from __future__ import annotations

import csv
import datetime
import io
import json
from typing import TYPE_CHECKING, Any

from .handlers import BrokerHandler

if TYPE_CHECKING:
    from .service import Broker

MAX_DAYS = 60
METRICS = ("input", "output", "calls")


def staff_groups(broker: Broker, groups: frozenset[str], admin: bool) -> frozenset[str] | None:
    """The student groups this caller may see; None: every student. Empty: not staff."""
    if admin or set(broker.app.admin_groups) & groups:
        return None
    taught = [c for c in broker.files.values() if c.instructors & groups]
    return frozenset(g for c in taught for g in c.groups)


def day_range(start: str | None, end: str | None, days: int) -> list[str]:
    """UTC days from ``start`` to ``end`` (inclusive, ``YYYY-MM-DD``); default the last N."""
    today = datetime.datetime.now(datetime.timezone.utc).date()
    last = datetime.date.fromisoformat(end) if end else today
    first = datetime.date.fromisoformat(start) if start else last - datetime.timedelta(days - 1)
    if first > last or (last - first).days >= MAX_DAYS:
        raise ValueError(f"give at most {MAX_DAYS} days, start before end")
    return [(first + datetime.timedelta(i)).isoformat() for i in range((last - first).days + 1)]


class InstructorHandler(BrokerHandler):
    scope: frozenset[str] | None

    async def staff(self, what: str) -> bool:
        scope = staff_groups(self.broker, self.caller.groups, self.caller.admin)
        if scope is not None and not scope:
            await self.audit(f"{what}.read", self.request.path, "forbidden")
            self.fail(403, "forbidden", f"only instructors may read {what}")
            return False
        self.scope = scope
        return True

    def days(self, default: int = 7) -> list[str] | None:
        try:
            return day_range(
                self.get_argument("start", None),
                self.get_argument("end", None),
                int(self.get_argument("days", str(default))),
            )
        except ValueError as e:
            self.fail(400, "invalid_request", str(e))
            return None

    async def visible(self, history: dict[str, dict[str, dict[str, int]]]) -> set[str]:
        users = {u for per_day in history.values() for u in per_day}
        if self.scope is None:
            return users
        groups = await self.broker.state.groups_of()
        return {u for u in users if groups.get(u, frozenset()) & self.scope}

    def send(
        self, key: str, rows: list[dict[str, Any]], columns: list[str], default: str = "json"
    ) -> None:
        if self.get_argument("format", default) == "csv":
            out = io.StringIO()
            writer = csv.DictWriter(out, columns, extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: _cell(row.get(k)) for k in columns})
            self.set_header("Content-Type", "text/csv; charset=utf-8")
            self.set_header("Content-Disposition", f'attachment; filename="aiide-{key}.csv"')
            self.finish(out.getvalue())
            return
        self.finish({key: rows})


def _cell(value: Any) -> Any:
    """Spreadsheets run cells starting with = + - @: quote them (CSV injection)."""
    if isinstance(value, (dict, list)):
        value = json.dumps(value, sort_keys=True)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


class UsageHandler(InstructorHandler):
    """``GET api/usage?days=7|start=&end=&user=&format=csv``: tokens and calls per day."""

    async def get(self) -> None:
        if not await self.staff("usage") or (days := self.days()) is None:
            return
        history = await self.broker.state.history(days)
        users = await self.visible(history)
        only = self.get_argument("user", None)
        rows = []
        for day in days:
            for user in sorted(users & set(history.get(day, {}))):
                if only and user != only:
                    continue
                m = history[day][user]
                if not any(m.get(k) for k in METRICS):
                    continue
                figures = {k + ("_tokens" if k != "calls" else ""): m.get(k, 0) for k in METRICS}
                total = figures["input_tokens"] + figures["output_tokens"]
                rows.append({"day": day, "user": user, **figures, "total_tokens": total})
        await self.audit("usage.read", "usage", "ok", {"days": [days[0], days[-1]]})
        columns = ["day", "user", "input_tokens", "output_tokens", "total_tokens", "calls"]
        self.send("usage", rows, columns)


class LimitsHandler(InstructorHandler):
    """``GET api/limits?days=7&format=csv``: who was refused, why, how often, per day."""

    async def get(self) -> None:
        if not await self.staff("limits") or (days := self.days()) is None:
            return
        history = await self.broker.state.history(days)
        users = await self.visible(history)
        rows = []
        for day in days:
            for user in sorted(users & set(history.get(day, {}))):
                for metric, count in sorted(history[day][user].items()):
                    if metric.startswith("limit:") and count:
                        rows.append({"day": day, "user": user, "code": metric[6:], "count": count})
        await self.audit("limits.read", "limits", "ok", {"days": [days[0], days[-1]]})
        self.send("limits", rows, ["day", "user", "code", "count"])


class CoursesHandler(InstructorHandler):
    """``GET api/courses``: the courses the caller may change, run-time changes applied."""

    async def get(self) -> None:
        from .durable import StateUnavailable

        try:
            courses = [await self.broker.course(name) for name in sorted(self.broker.files)]
            mine = [c for c in courses if self.broker.teaches(self.caller, c)]
            if not mine:
                await self.audit("courses.read", "courses", "forbidden")
                self.fail(403, "forbidden", "only instructors may list courses")
                return
            body = [{**c.raw(), "changes": await self.broker.state.changes(c.name)} for c in mine]
        except StateUnavailable as e:
            self.fail(503, "broker_unavailable", f"course changes cannot be read: {e}")
            return
        self.finish({"courses": body})


def usage_handlers(prefix: str, kw: dict[str, Any]) -> list[Any]:
    return [
        (prefix + "api/usage", UsageHandler, kw),
        (prefix + "api/limits", LimitsHandler, kw),
        (prefix + "api/courses", CoursesHandler, kw),
    ]
