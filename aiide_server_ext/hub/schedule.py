"""Scheduled exam windows: exam mode on exactly from a start to an end moment.

An instructor puts ``exam: {start: "2026-12-08T10:00:00+01:00", end: "…12:00:00+01:00"}``
in the course file or sets it from the dashboard (a run-time change, so it is stored in the
broker's database like every other change and survives a Redis or broker restart). Nothing
runs at the start or the end: whether a window is open is decided on every request from the
clock (``Exam.on``), so the exam begins and ends at the stated second on every broker
replica, and a broker that was down at the start still applies it when it comes back.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: The longest window (an exam is hours, not a term: a mistyped year would lock a class out).
MAX_WINDOW_SECONDS = 14 * 86400


class ScheduleError(ValueError):
    """A window that is not valid; the message names the field."""


@dataclass(frozen=True)
class Window:
    """[start, end) in seconds since the epoch; both None: no scheduled exam."""

    start: float | None = None
    end: float | None = None

    def open(self, now: float | None = None) -> bool:
        if self.start is None or self.end is None:
            return False
        t = time.time() if now is None else now
        return self.start <= t < self.end

    def public(self) -> dict[str, str | None]:
        return {"start": iso(self.start), "end": iso(self.end)}


def moment(value: Any, where: str) -> float | None:
    """An ISO 8601 time (a time without an offset is UTC), or null."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ScheduleError(f"{where} must be an ISO 8601 time like 2026-12-08T10:00:00+01:00")
    try:
        parsed = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ScheduleError(
            f"{where}: {value[:40]!r} is not an ISO 8601 time like 2026-12-08T10:00:00+01:00"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.timestamp()


def parse_window(raw: Mapping[str, Any], where: str) -> Window:
    """``exam.start`` and ``exam.end``: both or neither, the end after the start."""
    start = moment(raw.get("start"), f"{where}: exam.start")
    end = moment(raw.get("end"), f"{where}: exam.end")
    if (start is None) != (end is None):
        raise ScheduleError(f"{where}: a scheduled exam needs both exam.start and exam.end")
    if start is not None and end is not None:
        if end <= start:
            raise ScheduleError(f"{where}: exam.end must be after exam.start")
        if end - start > MAX_WINDOW_SECONDS:
            days = MAX_WINDOW_SECONDS // 86400
            raise ScheduleError(f"{where}: a scheduled exam lasts at most {days} days")
    return Window(start, end)


def iso(moment: float | None) -> str | None:
    """UTC, to the second, with its offset (browsers show it in the student's zone)."""
    if moment is None:
        return None
    return datetime.datetime.fromtimestamp(moment, datetime.timezone.utc).isoformat(
        timespec="seconds"
    )
