"""Help modes of a course: how much the assistant helps with each assignment.

``help:`` in a course file::

    help:
      mode: open              # the course's default: open | tutor | exam
      markers:                # the course's own marks, besides nbgrader's
        hidden: [["# BEGIN INSTRUCTOR", "# END INSTRUCTOR"]]
        hidden_tags: [staff]
      hint_levels: 3
      assignments:
        - name: ps1
          path: "ps1/*.ipynb"   # glob against the notebook's path (default: "<name>/*")
          mode: tutor
          deadline: "2026-12-10T12:00:00+01:00"
          after_deadline: open  # the mode from the deadline on (default: open)

Like scheduled exams (``schedule.py``), nothing runs at a deadline: the mode is decided on
every request from the clock, so it switches at the stated second on every broker and
single-user server. The mode comes from here, through the broker, never from the notebook
file (a student can edit its metadata; they cannot edit the course).
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .schedule import ScheduleError, iso, moment

MODES = ("open", "tutor", "exam")
#: Strictness: several courses (or a course and an assignment) naming a notebook, the
#: strictest mode wins.
RANK = {m: i for i, m in enumerate(MODES)}
MAX_ASSIGNMENTS = 500
MAX_MARKERS = 20
MAX_HINT_LEVELS = 10


class HelpError(ValueError):
    """A ``help`` section that is not valid; the message names the field."""


def _mode(value: Any, where: str, default: str) -> str:
    if value is None:
        return default
    if value not in MODES:
        raise HelpError(f"{where} must be one of {list(MODES)}, not {str(value)[:40]!r}")
    return str(value)


@dataclass(frozen=True)
class AssignmentHelp:
    name: str
    path: str
    mode: str
    deadline: float | None = None
    after_deadline: str = "open"

    def mode_at(self, now: float | None = None) -> str:
        t = time.time() if now is None else now
        if self.deadline is not None and t >= self.deadline:
            return self.after_deadline
        return self.mode

    def matches(self, path: str) -> bool:
        """The notebook's path (relative to the server's root, '/'-separated)."""
        path = path.strip("/")
        return fnmatch.fnmatchcase(path, self.path) or fnmatch.fnmatchcase(
            path, self.path.rstrip("/") + "/*"
        )

    def stored(self) -> dict[str, Any]:
        """As the course file says it (parsed again from this)."""
        out: dict[str, Any] = {"name": self.name, "path": self.path, "mode": self.mode}
        if self.deadline is not None:
            out.update(deadline=iso(self.deadline), after_deadline=self.after_deadline)
        return out

    def public(self, now: float | None = None) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "mode": self.mode,
            "deadline": iso(self.deadline),
            "after_deadline": self.after_deadline,
            "mode_now": self.mode_at(now),
        }


@dataclass(frozen=True)
class HelpPolicy:
    mode: str = "open"
    assignments: tuple[AssignmentHelp, ...] = ()
    markers: Mapping[str, Any] = field(default_factory=dict)
    hint_levels: int = 3

    @classmethod
    def parse(cls, raw: Any, where: str) -> HelpPolicy:
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise HelpError(f"{where}: 'help' must be a mapping")
        unknown = set(raw) - {"mode", "assignments", "markers", "hint_levels"}
        if unknown:
            raise HelpError(f"{where}: help: unknown fields {sorted(unknown)}")
        levels = raw.get("hint_levels", 3)
        if (
            not isinstance(levels, int)
            or isinstance(levels, bool)
            or not 1 <= levels <= MAX_HINT_LEVELS
        ):
            raise HelpError(
                f"{where}: help.hint_levels must be a whole number 1..{MAX_HINT_LEVELS}"
            )
        return cls(
            _mode(raw.get("mode"), f"{where}: help.mode", "open"),
            _assignments(raw.get("assignments"), where),
            _markers(raw.get("markers"), where),
            levels,
        )

    def stored(self) -> dict[str, Any]:
        """As a course file would say it (run-time changes are parsed from this)."""
        return {
            "mode": self.mode,
            "hint_levels": self.hint_levels,
            "markers": {
                k: list(map(list, v)) if k in ("hidden", "solution") else list(v)
                for k, v in self.markers.items()
            },
            "assignments": [a.stored() for a in self.assignments],
        }

    def public(self, now: float | None = None) -> dict[str, Any]:
        out = self.stored()
        out["assignments"] = [a.public(now) for a in self.assignments]
        return out

    def assignment_for(self, path: str) -> AssignmentHelp | None:
        return next((a for a in self.assignments if a.matches(path)), None)

    def mode_for(self, path: str, now: float | None = None) -> tuple[str, str]:
        """(mode, assignment name or '') for a notebook path."""
        found = self.assignment_for(path) if path else None
        if found is not None:
            return found.mode_at(now), found.name
        return self.mode, ""


def strictest(policies: Iterable[tuple[str, str]]) -> tuple[str, str]:
    """Several (mode, assignment) answers as one: the strictest mode, its assignment."""
    best = ("open", "")
    for mode, name in policies:
        if RANK[mode] > RANK[best[0]] or (RANK[mode] == RANK[best[0]] and name and not best[1]):
            best = (mode, name)
    return best


def _assignments(value: Any, where: str) -> tuple[AssignmentHelp, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise HelpError(f"{where}: help.assignments must be a list")
    if len(value) > MAX_ASSIGNMENTS:
        raise HelpError(f"{where}: help.assignments: at most {MAX_ASSIGNMENTS}")
    out: list[AssignmentHelp] = []
    for i, item in enumerate(value):
        at = f"{where}: help.assignments[{i}]"
        if not isinstance(item, Mapping):
            raise HelpError(f"{at} must be a mapping with at least 'name'")
        unknown = set(item) - {"name", "path", "mode", "deadline", "after_deadline"}
        if unknown:
            raise HelpError(f"{at}: unknown fields {sorted(unknown)}")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip() or "/" in name or len(name) > 100:
            raise HelpError(f"{at}.name must be an assignment name (no '/', 1..100 characters)")
        if any(a.name == name for a in out):
            raise HelpError(f"{at}: assignment {name!r} is listed twice")
        path = item.get("path", f"{name}/*")
        if not isinstance(path, str) or not path.strip() or path.startswith("/"):
            raise HelpError(f"{at}.path must be a glob relative to the student's folder")
        try:
            deadline = moment(item.get("deadline"), f"{at}.deadline")
        except ScheduleError as e:
            raise HelpError(str(e)) from None
        mode = _mode(item.get("mode"), f"{at}.mode", "tutor")
        after = _mode(item.get("after_deadline"), f"{at}.after_deadline", "open")
        if "after_deadline" in item and deadline is None:
            raise HelpError(f"{at}: after_deadline needs a deadline")
        out.append(AssignmentHelp(name.strip(), path.strip().strip("/"), mode, deadline, after))
    return tuple(out)


def _markers(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise HelpError(f"{where}: help.markers must be a mapping")
    unknown = set(value) - {"hidden", "solution", "hidden_tags", "solution_tags", "locked_tags"}
    if unknown:
        raise HelpError(f"{where}: help.markers: unknown fields {sorted(unknown)}")
    out: dict[str, Any] = {}
    for key in ("hidden", "solution"):
        pairs = value.get(key)
        if pairs is None:
            continue
        if (
            not isinstance(pairs, list)
            or len(pairs) > MAX_MARKERS
            or not all(
                isinstance(p, list)
                and len(p) == 2
                and all(isinstance(s, str) and s.strip() for s in p)
                for p in pairs
            )
        ):
            raise HelpError(
                f"{where}: help.markers.{key} must be a list of [begin, end] text pairs "
                f"(at most {MAX_MARKERS})"
            )
        out[key] = [(str(b).strip(), str(e).strip()) for b, e in pairs]
    for key in ("hidden_tags", "solution_tags", "locked_tags"):
        tags = value.get(key)
        if tags is None:
            continue
        if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
            raise HelpError(f"{where}: help.markers.{key} must be a list of cell tags")
        out[key] = list(tags)
    return out
