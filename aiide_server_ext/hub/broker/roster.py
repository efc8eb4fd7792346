"""The class list for instructors: every student of a course as the hub says now, those who
have not started included, with what they used today against their budget; and the usage
export a gradebook can join (one row per student and day, the hub user name as the key).

The usage tables (``usage.py``) only know students who used the assistant; an instructor
needs to see who has not started, so the roster begins from the hub's users in the
course's groups (the broker's service token lists them, cached like identities) and adds
the figures Redis holds.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .durable import StateUnavailable
from .identity import HubUnavailable
from .usage import METRICS, InstructorHandler

if TYPE_CHECKING:
    from ..course import Course

#: Export columns: the hub user name first (the key a gradebook joins on).
EXPORT_COLUMNS = [
    "user", "course", "day", "input_tokens", "output_tokens", "total_tokens", "calls",
    "limit_hits", "daily_budget",
]  # fmt: skip


@dataclass(frozen=True)
class RosterRow:
    user: str
    used_today: int
    used_this_week: int
    #: The student's daily/weekly budget here (their own or the course's); {}: no limit.
    budget: Mapping[str, int]
    own_budget: bool
    #: Days in the window with any use, and the last of them ("" : not started).
    active_days: int
    last_active: str
    tokens: int
    calls: int
    limit_hits: int

    def public(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "started": bool(self.last_active) or self.used_this_week > 0,
            "used_today": self.used_today,
            "used_this_week": self.used_this_week,
            "daily_budget": self.budget.get("daily_tokens"),
            "weekly_budget": self.budget.get("weekly_tokens"),
            "own_budget": self.own_budget,
            "active_days": self.active_days,
            "last_active": self.last_active or None,
            "tokens": self.tokens,
            "calls": self.calls,
            "limit_hits": self.limit_hits,
        }


def students_of(course: Course, members: Mapping[str, Any], metered: set[str]) -> list[str]:
    """The course's students: hub users in its groups who do not teach it, plus students
    metered under it who have left the hub's groups since (their use still counts)."""
    staff = course.instructors
    found = {
        name
        for name, member in members.items()
        if member.groups & course.groups and not member.groups & staff and not member.admin
    }
    return sorted(found | metered)


def figures(
    history: Mapping[str, Mapping[str, Mapping[str, int]]], user: str
) -> tuple[int, str, int, int, int]:
    """(active days, last active day, tokens, calls, limit hits) over the history's days."""
    active = [d for d in sorted(history) if any(history[d].get(user, {}).values())]
    tokens = calls = hits = 0
    for day in history.values():
        m = day.get(user, {})
        tokens += m.get("input", 0) + m.get("output", 0)
        calls += m.get("calls", 0)
        hits += sum(v for k, v in m.items() if k.startswith("limit:"))
    return len(active), active[-1] if active else "", tokens, calls, hits


def export_rows(
    course: Course, users: list[str], days: list[str], history: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """One row per student and day, zeros included (a gradebook join needs every pair)."""
    rows = []
    for user in users:
        daily = course.budget_for(user).get("daily_tokens")
        for day in days:
            m = history.get(day, {}).get(user, {})
            got = {k + ("_tokens" if k != "calls" else ""): m.get(k, 0) for k in METRICS}
            rows.append(
                {
                    "user": user,
                    "course": course.name,
                    "day": day,
                    **got,
                    "total_tokens": got["input_tokens"] + got["output_tokens"],
                    "limit_hits": sum(v for k, v in m.items() if k.startswith("limit:")),
                    "daily_budget": "" if daily is None else daily,
                }
            )
    return rows


class RosterBase(InstructorHandler):
    async def taught(self) -> Course | None:
        """The course of ``?course=`` (the caller's only one by default), if they teach it."""
        b = self.broker
        name = self.get_argument("course", "")
        mine = [c for c in b.files.values() if b.teaches(self.caller, c)]
        if not mine:
            await self.audit("roster.read", self.request.path, "forbidden")
            self.fail(403, "forbidden", "only instructors may read a roster")
            return None
        if not name:
            name = mine[0].name if len(mine) == 1 else ""
        if name not in b.files:
            self.fail(400, "invalid_request", "name the course: ?course=<name>")
            return None
        try:
            course = await b.course(name)
        except StateUnavailable as e:
            self.fail(503, "broker_unavailable", f"the course cannot be read: {e}")
            return None
        if not b.teaches(self.caller, course):
            await self.audit("roster.read", f"course:{name}", "forbidden")
            self.fail(403, "forbidden", f"only instructors of {name} may read its roster")
            return None
        return course

    async def students(self, course: Course, history: Mapping[str, Any]) -> list[str] | None:
        try:
            members = await self.broker.hub.members()
            groups = await self.broker.state.groups_of()
        except HubUnavailable as e:
            self.fail(503, "hub_unavailable", f"{e}; the class list cannot be read")
            return None
        metered = {u for per_day in history.values() for u in per_day}
        metered = {u for u in metered if groups.get(u, frozenset()) & course.groups}
        metered -= {u for u, m in members.items() if m.groups & course.instructors}
        return students_of(course, members, metered)

    async def load(self) -> tuple[Course, list[str], dict[str, Any], list[str]] | None:
        """(course, days, history, students) of the request; None once it was answered."""
        course = await self.taught()
        if course is None or (days := self.days(default=30)) is None:
            return None
        try:
            history = await self.broker.state.history(days)
            users = await self.students(course, history)
        except StateUnavailable as e:
            self.fail(503, "broker_unavailable", f"usage cannot be read: {e}")
            return None
        return None if users is None else (course, days, history, users)


class RosterHandler(RosterBase):
    """``GET api/roster?course=&days=30``: every student, started or not, used today of
    their budget, activity over the window."""

    async def get(self) -> None:
        if (loaded := await self.load()) is None:
            return
        course, _, history, users = loaded
        try:
            used = await asyncio.gather(*(self.broker.state.used(u) for u in users))
        except StateUnavailable as e:
            self.fail(503, "broker_unavailable", f"usage cannot be read: {e}")
            return
        rows = []
        for user, spent in zip(users, used, strict=True):
            active, last, tokens, calls, hits = figures(history, user)
            row = RosterRow(
                user=user,
                used_today=spent.get("daily_tokens", 0),
                used_this_week=spent.get("weekly_tokens", 0),
                budget=course.budget_for(user),
                own_budget=user in course.student_budgets,
                active_days=active,
                last_active=last,
                tokens=tokens,
                calls=calls,
                limit_hits=hits,
            )
            rows.append(row.public())
        await self.audit("roster.read", f"course:{course.name}", "ok", {"students": len(rows)})
        today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
        self.finish({"course": course.name, "today": today, "students": rows})


class ExportHandler(RosterBase):
    """``GET api/export?course=&days=|start=&end=`` (CSV; ``format=json`` too): one row per
    student of the course and day, zeros included, keyed by the hub user name."""

    async def get(self) -> None:
        if (loaded := await self.load()) is None:
            return
        course, days, history, users = loaded
        rows = export_rows(course, users, days, history)
        detail = {"days": [days[0], days[-1]], "students": len(users)}
        await self.audit("usage.exported", f"course:{course.name}", "ok", detail)
        self.send(f"{course.name}-usage", rows, EXPORT_COLUMNS, default="csv")


def roster_handlers(prefix: str, kw: dict[str, Any]) -> list[Any]:
    return [
        (prefix + "api/roster", RosterHandler, kw),
        (prefix + "api/export", ExportHandler, kw),
    ]
