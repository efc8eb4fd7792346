"""Course policies: one file per course, with run-time changes shared by every broker.

A course file (YAML or JSON, ``<course>.yaml`` in the broker's ``course_dir``) names the
hub groups it applies to and the groups that teach it, the models its students may use,
their token budget (and students' own budgets, which replace it for them), rate limits,
the agent's tool policy and the exam mode. An instructor changes exam mode and budgets at
run time; those changes live in the shared state (Redis when configured) and override the
file until cleared, so no process restarts.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .helpmodes import HelpError, HelpPolicy
from .schedule import ScheduleError, Window, parse_window

#: Features exam mode can turn off, and the gate route classes each one covers.
FEATURES: dict[str, frozenset[str]] = {
    "chat": frozenset({"chat", "magic"}),  # %ai is a chat from inside a kernel
    "agent": frozenset({"execute"}),
    "complete": frozenset({"complete"}),
}
DEFAULT_EXAM_MESSAGE = "Exam mode is on: the assistant is unavailable until the exam ends."
#: How the default exam message names each feature exam mode turns off.
FEATURE_NAMES = {
    "chat": "chat",
    "agent": "the agent's code execution",
    "complete": "inline completion",
}
#: Fields an instructor may change at run time.
RUNTIME_FIELDS = (
    "exam", "budget", "models", "rate_limits", "tools", "student_budgets", "announcement", "rules",
    "help",
)  # fmt: skip
#: A hub user name as an override's key: what the hub's database holds (255 characters),
#: no whitespace, control characters or "/" (hub API paths cannot carry those).
USERNAME = re.compile(r"[^\s/\x00-\x1f\x7f]{1,255}")
#: Students with a budget of their own in one course (bounds the course's shared state).
MAX_STUDENT_BUDGETS = 10_000
#: Longest announcement or rules text (characters): a notice, not a syllabus.
MAX_NOTICE_CHARS = 2000


class CourseError(ValueError):
    """A course file or change that is not valid; the message names the field."""


def notice_text(value: Any, where: str, name: str) -> str:
    """``announcement`` / ``rules``: text (null or empty: none), at most MAX_NOTICE_CHARS."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise CourseError(f"{where}: '{name}' must be text")
    if len(value) > MAX_NOTICE_CHARS:
        raise CourseError(f"{where}: '{name}' is longer than {MAX_NOTICE_CHARS} characters")
    return value.strip()


@dataclass(frozen=True)
class Exam:
    enabled: bool = False
    disable: frozenset[str] = frozenset(FEATURES)
    #: The instructor's own message; empty: ``text`` says what is off.
    message: str = ""
    #: A scheduled exam (schedule.py): on from its start to its end, whatever ``enabled``.
    window: Window = field(default_factory=Window)

    def on(self, now: float | None = None) -> bool:
        return self.enabled or self.window.open(now)

    @classmethod
    def parse(cls, raw: Any, where: str) -> Exam:
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise CourseError(f"{where}: 'exam' must be a mapping")
        disable = raw.get("disable")
        if disable is None:
            disable = sorted(FEATURES)
        if not isinstance(disable, list) or not all(d in FEATURES for d in disable):
            raise CourseError(f"{where}: exam.disable must list features of {sorted(FEATURES)}")
        message = raw.get("message") or ""
        if not isinstance(message, str):
            raise CourseError(f"{where}: exam.message must be text")
        try:
            window = parse_window(raw, where)
        except ScheduleError as e:
            raise CourseError(str(e)) from None
        return cls(bool(raw.get("enabled", False)), frozenset(disable), message[:500], window)

    @property
    def text(self) -> str:
        """What students read: the instructor's message, or one naming exactly what is
        off (a fixed "the assistant is unavailable" would be false while completion works)."""
        if self.message:
            return self.message
        if self.disable >= set(FEATURES):
            return DEFAULT_EXAM_MESSAGE
        off = [FEATURE_NAMES[f] for f in FEATURES if f in self.disable]
        on = [FEATURE_NAMES[f] for f in FEATURES if f not in self.disable]
        verb = "is" if len(off) == 1 else "are"
        return (
            f"Exam mode is on: {_and(off)} {verb} off until the exam ends ({_and(on)} "
            f"{'stays' if len(on) == 1 else 'stay'} on)."
        )

    def stored(self) -> dict[str, Any]:
        """The fields as set (the message only when the instructor wrote one)."""
        out: dict[str, Any] = {"enabled": self.enabled, "disable": sorted(self.disable)}
        if self.window.start is not None:
            out.update(self.window.public())
        return {**out, "message": self.message} if self.message else out

    def public(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "disable": sorted(self.disable),
            "message": self.text,
            "custom_message": bool(self.message),
            **self.window.public(),
        }


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


@dataclass(frozen=True)
class Course:
    name: str
    groups: frozenset[str]
    instructors: frozenset[str]
    models: tuple[str, ...] = ()
    budget: Mapping[str, int] = field(default_factory=dict)
    rate_limits: Mapping[str, str] = field(default_factory=dict)
    tools: Mapping[str, Any] = field(default_factory=dict)
    exam: Exam = Exam()
    #: Student -> a budget of their own that replaces ``budget`` for them (an empty one:
    #: no limit). Students without one have the course's.
    student_budgets: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    #: Shown to students in the chat before anything is refused (notices.py).
    announcement: str = ""
    rules: str = ""
    #: Help modes per assignment (helpmodes.py): open, tutor or exam.
    help: HelpPolicy = field(default_factory=HelpPolicy)

    @classmethod
    def parse(cls, name: str, raw: Any, where: str = "") -> Course:
        where = where or f"course {name!r}"
        if not isinstance(raw, Mapping):
            raise CourseError(f"{where}: a course is a mapping")
        unknown = set(raw) - {
            "course", "groups", "instructors", "models", "budget", "rate_limits", "tools", "exam",
            "student_budgets", "announcement", "rules", "help",
        }  # fmt: skip
        if unknown:
            raise CourseError(f"{where}: unknown fields {sorted(unknown)}")
        return cls(
            name=str(raw.get("course", name)),
            groups=frozenset(_names(raw.get("groups", []), where, "groups")),
            instructors=frozenset(_names(raw.get("instructors", []), where, "instructors")),
            models=tuple(_names(raw.get("models", []), where, "models")),
            budget=_budget(raw.get("budget", {}), where),
            rate_limits=_rate_limits(raw.get("rate_limits", {}), where),
            tools=_tools(raw.get("tools") or {}, where),
            exam=Exam.parse(raw.get("exam"), where),
            student_budgets=_student_budgets(raw.get("student_budgets"), where),
            announcement=notice_text(raw.get("announcement"), where, "announcement"),
            rules=notice_text(raw.get("rules"), where, "rules"),
            help=_help(raw.get("help"), where),
        )

    def with_changes(self, changes: Mapping[str, Any]) -> Course:
        """The file's policy with an instructor's run-time changes on top."""
        raw = {**self.raw(), "exam": self.exam.stored()}
        for key, value in changes.items():
            if key == "exam" and isinstance(value, Mapping):
                raw["exam"] = {**self.exam.stored(), **value}
            elif key in ("budget", "tools", "student_budgets") and isinstance(value, Mapping):
                # per key (student_budgets: a student's replaces the file's; null removes it)
                raw[key] = {**raw[key], **value}
            else:
                raw[key] = value
        return Course.parse(self.name, raw)

    def raw(self) -> dict[str, Any]:
        return {
            "course": self.name,
            "groups": sorted(self.groups),
            "instructors": sorted(self.instructors),
            "models": list(self.models),
            "budget": dict(self.budget),
            "rate_limits": dict(self.rate_limits),
            "tools": dict(self.tools),
            "exam": self.exam.public(),
            "student_budgets": {u: dict(b) for u, b in sorted(self.student_budgets.items())},
            "announcement": self.announcement,
            "rules": self.rules,
            "help": self.help.stored(),
        }

    def budget_for(self, user: str) -> Mapping[str, int]:
        """The student's budget here: their own when an instructor gave them one."""
        return self.student_budgets.get(user, self.budget)

    def disabled(self, feature: str) -> bool:
        return self.exam.on() and feature in self.exam.disable


def validate_changes(changes: Any) -> dict[str, Any]:
    """Only run-time fields, each valid (checked by parsing a course with them)."""
    if not isinstance(changes, Mapping) or not changes:
        raise CourseError(f"a change is a non-empty mapping of {list(RUNTIME_FIELDS)}")
    unknown = set(changes) - set(RUNTIME_FIELDS)
    if unknown:
        raise CourseError(f"fields {sorted(unknown)} cannot change at run time")
    Course.parse("check", {"groups": [], **changes}, "change")
    return dict(changes)


def merge_changes(
    file: Course, current: Mapping[str, Any], changes: Mapping[str, Any]
) -> dict[str, Any]:
    """The stored run-time changes after ``changes``: each field replaces the stored one,
    except ``exam``, merged field by field (null: back to the file's), and
    ``student_budgets``, merged student by student. A student set to null goes back to the
    course's budget: dropped from the changes, or kept as null when it hides a budget of
    theirs in the course file."""
    merged = {**current, **changes}
    if isinstance(changes.get("exam"), Mapping):
        # Field by field, so exam mode stays on while the instructor changes what it turns
        # off or its message; a field set to null goes back to the course file's.
        exam = {**(current.get("exam") or {}), **changes["exam"]}
        if "enabled" in changes["exam"] and "message" not in changes["exam"]:
            # Turning exam mode on or off starts afresh: an earlier exam's message would
            # be false for the next one (changing features while on keeps it).
            exam.pop("message", None)
        exam = {k: v for k, v in exam.items() if v is not None}
        if exam:
            merged["exam"] = exam
        else:
            del merged["exam"]
    elif "exam" in changes and changes["exam"] is None:
        del merged["exam"]
    if "help" in changes and changes["help"] is None:
        del merged["help"]  # back to the course file's help modes
    if "student_budgets" in changes:
        students = {**(current.get("student_budgets") or {}), **changes["student_budgets"]}
        kept = {
            user: budget
            for user, budget in students.items()
            if budget is not None or user in file.student_budgets
        }
        if kept:
            merged["student_budgets"] = kept
        else:
            del merged["student_budgets"]
    return merged


def load_courses(directory: str) -> dict[str, Course]:
    """Every ``*.yaml``/``*.yml``/``*.json`` file in the directory; errors name the file."""
    import json

    courses: dict[str, Course] = {}
    if not directory:
        return courses
    for entry in sorted(os.listdir(directory)):
        path = os.path.join(directory, entry)
        stem, ext = os.path.splitext(entry)
        if ext not in (".yaml", ".yml", ".json") or not os.path.isfile(path):
            continue
        with open(path) as f:
            if ext == ".json":
                raw = json.load(f)
            else:
                import yaml  # type: ignore[import-untyped]

                raw = yaml.safe_load(f)
        course = Course.parse(stem, raw, path)
        if course.name in courses:
            raise CourseError(f"{path}: course {course.name!r} is defined twice")
        courses[course.name] = course
    return courses


@dataclass(frozen=True)
class Effective:
    """What one student may do: every course of theirs applies; the strictest value wins."""

    courses: tuple[Course, ...]
    #: The student (their own budgets, where instructors gave them one).
    user: str = ""

    def refusal(self, feature: str) -> tuple[str, str] | None:
        for course in self.courses:
            if course.disabled(feature):
                return "exam_mode", f"{course.name}: {course.exam.text}"
        return None

    def model_allowed(self, model: str) -> bool:
        lists = [c.models for c in self.courses if c.models]
        return all(any(model == m or model.startswith(m + "-") for m in ms) for ms in lists)

    def budget(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for course in self.courses:
            for kind, value in course.budget_for(self.user).items():
                out[kind] = min(value, out.get(kind, value))
        return out

    def rate_limit(self, route: str) -> str | None:
        from aiide_server_ext.gateway.ratelimit import RateLimit

        found = [c.rate_limits[route] for c in self.courses if route in c.rate_limits]
        if not found:
            return None
        return min(found, key=lambda t: RateLimit.parse(t).count / RateLimit.parse(t).window)

    def public(self) -> dict[str, Any]:
        tools = strictest_tools(c.tools for c in self.courses)
        disabled = sorted({f for f in FEATURES if self.refusal(f)})
        return {
            "courses": [c.name for c in self.courses],
            "exam": {
                "enabled": any(c.exam.on() for c in self.courses),
                "disabled": disabled,
                "message": next((self.refusal(f) or ("", "") for f in disabled), ("", ""))[1],
            },
            "models": sorted({m for c in self.courses for m in c.models}),
            "budget": self.budget(),
            "own_budget": [c.name for c in self.courses if self.user in c.student_budgets],
            "tools": tools,
            # Each course's help modes: the student's server picks a notebook's own.
            "help": [{"course": c.name, **c.help.public()} for c in self.courses],
        }


def effective(courses: Iterable[Course], groups: Iterable[str], user: str = "") -> Effective:
    mine = set(groups)
    return Effective(tuple(c for c in courses if c.groups & mine), user)


def periods(now: float | None = None) -> dict[str, tuple[str, int]]:
    """Budget period -> (UTC key, seconds until it ends): the day and the ISO week."""
    t = time.gmtime(now if now is not None else time.time())
    seconds_today = t.tm_hour * 3600 + t.tm_min * 60 + t.tm_sec
    iso = time.strftime("%G-W%V", t)
    return {
        "daily_tokens": (time.strftime("%Y-%m-%d", t), 86400 - seconds_today),
        "weekly_tokens": (iso, (7 - t.tm_wday) * 86400 - seconds_today),
    }


def _help(value: Any, where: str) -> HelpPolicy:
    try:
        return HelpPolicy.parse(value, where)
    except HelpError as e:
        raise CourseError(str(e)) from None


def _names(value: Any, where: str, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise CourseError(f"{where}: '{what}' must be a list of names")
    return list(value)


def _budget(value: Any, where: str, name: str = "budget") -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise CourseError(f"{where}: '{name}' must be a mapping")
    out: dict[str, int] = {}
    for kind, limit in value.items():
        if kind not in ("daily_tokens", "weekly_tokens"):
            raise CourseError(f"{where}: {name}.{kind}: use daily_tokens or weekly_tokens")
        if limit is None:
            continue
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise CourseError(f"{where}: {name}.{kind} must be a whole number of tokens")
        out[str(kind)] = limit
    return out


def _student_budgets(value: Any, where: str) -> dict[str, dict[str, int]]:
    """``student_budgets``: student -> their budget (``_budget``), or null (none: the
    course's budget applies to them)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise CourseError(f"{where}: 'student_budgets' must be a mapping of student -> budget")
    if len(value) > MAX_STUDENT_BUDGETS:
        raise CourseError(f"{where}: student_budgets: at most {MAX_STUDENT_BUDGETS} students")
    out: dict[str, dict[str, int]] = {}
    for user, budget in value.items():
        if not isinstance(user, str) or not USERNAME.fullmatch(user):
            shown = repr(user)[:40]
            raise CourseError(
                f"{where}: student_budgets: {shown} is not a user name (1 to 255 characters, "
                "no spaces, control characters or '/')"
            )
        if budget is None:
            continue
        if not isinstance(budget, Mapping):
            raise CourseError(
                f"{where}: student_budgets.{user} must be a budget mapping, or null for "
                "the course's budget"
            )
        out[user] = _budget(budget, where, f"student_budgets.{user}")
    return out


TOOL_ACTIONS = ("auto", "approve", "deny")


def _tools(value: Any, where: str) -> dict[str, Any]:
    """``tools``: edits_need_approval, network (booleans), execution, deny (tool names)."""
    if not isinstance(value, Mapping):
        raise CourseError(f"{where}: 'tools' must be a mapping")
    unknown = set(value) - {"edits_need_approval", "network", "execution", "deny"}
    if unknown:
        raise CourseError(f"{where}: tools: unknown fields {sorted(unknown)}")
    for flag in ("edits_need_approval", "network"):
        if flag in value and not isinstance(value[flag], bool):
            raise CourseError(f"{where}: tools.{flag} must be true or false")
    if "execution" in value and value["execution"] not in TOOL_ACTIONS:
        raise CourseError(f"{where}: tools.execution must be one of {list(TOOL_ACTIONS)}")
    if "deny" in value:
        _names(value["deny"], where, "tools.deny")
    return dict(value)


def strictest_tools(all_tools: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Several courses' tool policies as one: each rule at its strictest."""
    out: dict[str, Any] = {}
    for tools in all_tools:
        if tools.get("edits_need_approval"):
            out["edits_need_approval"] = True
        elif "edits_need_approval" in tools:
            out.setdefault("edits_need_approval", False)
        if "network" in tools:
            out["network"] = bool(out.get("network", True) and tools["network"])
        if "execution" in tools:
            old = out.get("execution", "auto")
            out["execution"] = max(old, tools["execution"], key=TOOL_ACTIONS.index)
        if tools.get("deny"):
            out["deny"] = sorted({*out.get("deny", []), *tools["deny"]})
    return out


def _rate_limits(value: Any, where: str) -> dict[str, str]:
    from aiide_server_ext.gateway.ratelimit import RateLimit

    if not isinstance(value, Mapping):
        raise CourseError(f"{where}: 'rate_limits' must be a mapping")
    out: dict[str, str] = {}
    for route, text in value.items():
        try:
            RateLimit.parse(str(text))
        except ValueError as e:
            raise CourseError(f"{where}: rate_limits.{route}: {e}") from None
        out[str(route)] = str(text)
    return out
