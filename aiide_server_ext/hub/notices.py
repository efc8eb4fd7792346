"""What a student is told before anything is refused: the course's announcement, its rules
(the instructor's own words), a scheduled exam coming up or under way, and what the
course enforces (budget, models, features an exam turns off).

The broker adds these to the student's ``api/me`` (``notices``); the student's lab shows
them at the top of the chat, so a refusal is never the first a student hears of a rule.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .schedule import iso

if TYPE_CHECKING:
    from .course import Course, Effective

#: A scheduled exam is announced this long before it starts.
EXAM_NOTICE_SECONDS = 7 * 86400
_FEATURE_WORDS = {"chat": "chat", "agent": "agent code execution", "complete": "inline completion"}


def enforced(course: Course, user: str) -> list[str]:
    """The course's limits in words (what the broker will refuse)."""
    lines = []
    budget = course.budget_for(user)
    for kind, per in (("daily_tokens", "a day"), ("weekly_tokens", "a week")):
        if kind in budget:
            lines.append(f"{budget[kind]:,} tokens {per}")
    if course.models:
        lines.append("models: " + ", ".join(course.models))
    return lines + help_lines(course)


#: What each help mode means to a student, in a few words.
_MODE_WORDS = {"open": "open", "tutor": "tutor mode (hints, not answers)", "exam": "off (exam)"}


def help_lines(course: Course, now: float | None = None) -> list[str]:
    """The course's help modes (helpmodes.py) as a student reads them."""
    help = course.help
    lines = [f"assistant: {_MODE_WORDS[help.mode]}"] if help.mode != "open" else []
    for a in help.assignments:
        line = f"{a.name}: {_MODE_WORDS[a.mode_at(now)]}"
        t = time.time() if now is None else now
        if a.deadline is not None and t < a.deadline:
            line += f" until {iso(a.deadline)}, then {_MODE_WORDS[a.after_deadline]}"
        lines.append(line)
    return lines


def exam_notice(course: Course, now: float) -> dict[str, Any] | None:
    """The exam as students should know it: on now, or scheduled within a week."""
    exam = course.exam
    window = exam.window
    upcoming = (
        window.start is not None
        and window.end is not None
        and now < window.end
        and window.start - now <= EXAM_NOTICE_SECONDS
    )
    if not exam.on(now) and not upcoming:
        return None
    return {
        "on": exam.on(now),
        "start": iso(window.start) if upcoming else None,
        "end": iso(window.end) if upcoming else None,
        "off": [_FEATURE_WORDS[f] for f in sorted(exam.disable) if f in _FEATURE_WORDS],
        "message": exam.text,
    }


def notices(policy: Effective, now: float | None = None) -> list[dict[str, Any]]:
    """One entry per course of the student's with something to say."""
    t = time.time() if now is None else now
    out = []
    for course in policy.courses:
        entry = {
            "course": course.name,
            "announcement": course.announcement,
            "rules": course.rules,
            "exam": exam_notice(course, t),
            "limits": enforced(course, policy.user),
        }
        if entry["announcement"] or entry["rules"] or entry["exam"] or entry["limits"]:
            out.append(entry)
    return out
