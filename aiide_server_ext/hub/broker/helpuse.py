"""Help used per student, assignment and cell: hint levels, fixes and tokens.

A student's server records each hint it asks the model for (``POST api/help``, kind
``hint``: the answer is the cell's new hint level, so asking again about the same cell
gets a more specific hint), each fix and the tokens spent in an assignment's notebook.
Instructors read it per assignment and student (``GET api/help?course=…``) or as a CSV
that joins nbgrader's grades export on ``student_id`` and ``assignment``
(``&format=csv``). Rows live in the broker's database (``broker_help``), so every broker
replica counts the same levels and a restart forgets nothing.

The student's own hub token can reach ``POST api/help`` too; counts only grow, so a
student can only make their own record show more help, never less.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from aiide_server_ext.seams import ApiError

from .durable import StateUnavailable, _unavailable_if_failing
from .usage import InstructorHandler

if TYPE_CHECKING:
    from aiide_server_ext.stores import Conn

    from ..course import Course
    from .service import Broker

KINDS = ("hint", "fix", "tokens")
MAX_NAME = 200
MAX_TOKENS = 10_000_000
#: The CSV's columns: nbgrader's gradebook export has ``student_id`` and ``assignment``.
CSV_COLUMNS = [
    "student_id", "assignment", "course", "help_hints", "help_max_hint_level",
    "help_cells", "help_fixes", "help_tokens",
]  # fmt: skip


async def record(
    broker: Broker, course: str, user: str, assignment: str, cell: str, kind: str, tokens: int
) -> int:
    """Adds one hint or fix (or tokens) to the cell's row; returns its hints so far."""
    add = (int(kind == "hint"), int(kind == "fix"), tokens if kind == "tokens" else 0)

    def write(conn: Conn) -> int:
        conn.execute(
            "INSERT INTO broker_help (course, username, assignment, cell, hints, fixes, tokens,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT"
            " (course, username, assignment, cell) DO UPDATE SET"
            " hints = broker_help.hints + excluded.hints,"
            " fixes = broker_help.fixes + excluded.fixes,"
            " tokens = broker_help.tokens + excluded.tokens, updated_at = excluded.updated_at",
            (course, user, assignment, cell, *add, time.time()),
        )
        row = conn.execute(
            "SELECT hints FROM broker_help WHERE course = ? AND username = ? AND assignment = ?"
            " AND cell = ?",
            (course, user, assignment, cell),
        ).fetchone()
        return int(row[0]) if row else 0

    return await _unavailable_if_failing(broker.store.awrite(write))


async def rows_of(broker: Broker, course: str) -> list[tuple[Any, ...]]:
    def read(conn: Conn) -> list[tuple[Any, ...]]:
        return [
            tuple(r)
            for r in conn.execute(
                "SELECT username, assignment, cell, hints, fixes, tokens FROM broker_help"
                " WHERE course = ? ORDER BY assignment, username, cell",
                (course,),
            )
        ]

    return await _unavailable_if_failing(broker.store.aread(read))


def summary(course: Course, rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Per assignment and student: hints (every ask), the highest hint level reached,
    cells asked about, fixes and tokens; with each cell's level for the dashboard."""
    levels = course.help.hint_levels
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for user, assignment, cell, hints, fixes, tokens in rows:
        row = out.setdefault(
            (assignment, user),
            {
                "student_id": user,
                "assignment": assignment,
                "course": course.name,
                "help_hints": 0,
                "help_max_hint_level": 0,
                "help_cells": 0,
                "help_fixes": 0,
                "help_tokens": 0,
                "cells": {},
            },
        )
        row["help_hints"] += hints
        row["help_fixes"] += fixes
        row["help_tokens"] += tokens
        if hints:
            level = min(int(hints), levels)
            row["help_cells"] += 1
            row["help_max_hint_level"] = max(row["help_max_hint_level"], level)
            row["cells"][cell] = level
    return [out[k] for k in sorted(out)]


class HelpHandler(InstructorHandler):
    """``POST api/help`` from a student's server; ``GET api/help?course=`` for instructors."""

    def body_limit(self) -> int:
        return 4096

    async def post(self) -> None:
        try:
            body = json.loads(self.body() or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_request", "a help record is a JSON object")
        kind = body.get("kind")
        if kind not in KINDS:
            raise ApiError(400, "invalid_request", f"kind must be one of {list(KINDS)}")
        names = {k: body.get(k, "") for k in ("assignment", "cell")}
        for key, value in names.items():
            if not isinstance(value, str) or len(value) > MAX_NAME:
                raise ApiError(400, "invalid_request", f"{key} must be text up to {MAX_NAME}")
        tokens = body.get("tokens", 0)
        if not isinstance(tokens, int) or isinstance(tokens, bool) or not 0 <= tokens <= MAX_TOKENS:
            raise ApiError(400, "invalid_request", f"tokens must be 0..{MAX_TOKENS}")
        try:
            policy = (await self.broker.policy_for(self.caller))[1]
        except StateUnavailable:  # the course files alone still name the assignments
            policy = self.broker.file_policy(self.caller)
        assignment = names["assignment"]
        course = next(
            (c for c in policy.courses if any(a.name == assignment for a in c.help.assignments)),
            policy.courses[0] if policy.courses else None,
        )
        if course is None:
            raise ApiError(403, "no_course", f"{self.caller.name} is in no course")
        hints = await record(
            self.broker, course.name, self.caller.name, assignment, names["cell"], kind, tokens
        )
        levels = course.help.hint_levels
        self.finish(
            {
                "course": course.name,
                "hints": hints,
                "level": min(max(hints, 1), levels),
                "hint_levels": levels,
            }
        )

    async def get(self) -> None:
        if not await self.staff("help"):
            return
        name = self.get_argument("course", "")
        course = self.broker.files.get(name)
        if course is None:
            raise ApiError(404, "unknown_course", f"no course {name[:100]!r}")
        if not self.broker.teaches(self.caller, course):
            await self.audit("help.read", f"course:{name}", "forbidden")
            raise ApiError(403, "forbidden", f"only instructors of {name} may read its help")
        course = await self.broker.course(name)
        rows = summary(course, await rows_of(self.broker, name))
        await self.audit("help.read", f"course:{name}", "ok")
        if self.get_argument("format", "json") == "csv":
            self.send(f"help-{name}", rows, CSV_COLUMNS)
            return
        self.finish(
            {
                "course": name,
                "hint_levels": course.help.hint_levels,
                "assignments": [a.public() for a in course.help.assignments],
                "help": rows,
            }
        )


def help_handlers(prefix: str, kw: dict[str, Any]) -> list[Any]:
    return [(prefix + "api/help", HelpHandler, kw)]
