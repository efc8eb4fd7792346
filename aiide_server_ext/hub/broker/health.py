"""The broker's root URL: a health page, and course files that apply when edited.

``GET <prefix>`` (and ``<prefix>health``) answers without a token what an admin checking
the setup needs: the broker runs, how many courses it loaded from which directory and
when, whether the last edit of a course file was refused (and why), whether Redis and the
database answer. It names no student and no key.

Course files are reread when they change (checked every
``c.BrokerApp.course_reload_interval`` seconds, and at once on SIGHUP): an edit applies
to the next request, no restart. A file that no longer parses is refused with the error
logged and shown here; the courses loaded before stay in force.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from tornado import web

from ..course import CourseError, load_courses

if TYPE_CHECKING:
    from .service import Broker

log = logging.getLogger("aiide.broker")
COURSE_EXTENSIONS = (".yaml", ".yml", ".json")


def signature(directory: str) -> tuple[tuple[str, int, int], ...]:
    """The course files as (name, mtime_ns, size): what a reload compares."""
    if not directory:
        return ()
    found = []
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return ()
    for entry in entries:
        if not entry.name.endswith(COURSE_EXTENSIONS):
            continue
        try:
            st = entry.stat()
        except OSError:
            continue
        found.append((entry.name, st.st_mtime_ns, st.st_size))
    return tuple(found)


class CourseFiles:
    """The broker's course files and their reloads."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.directory = broker.app.course_dir
        self.seen = signature(self.directory)
        self.loaded_at = time.time()
        #: The last reload's refusal (file and error), cleared by a good one.
        self.error: str | None = None

    def reload(self, force: bool = False) -> bool:
        """Reread the course files when they changed; True when new courses apply."""
        now = signature(self.directory)
        if now == self.seen and not force:
            return False
        self.seen = now
        try:
            courses = load_courses(self.directory)
            default = self.broker.app.default_course
            if default and default not in courses:
                raise CourseError(f"c.BrokerApp.default_course: no course {default!r} any more")
        except (CourseError, OSError, ValueError) as e:
            self.error = str(e)
            log.error("aiide broker: course files not reloaded, the loaded ones stay: %s", e)
            return False
        except Exception as e:  # yaml's own errors: the old courses must stay in force
            self.error = f"{type(e).__name__}: {e}"
            log.error("aiide broker: course files not reloaded, the loaded ones stay: %s", e)
            return False
        self.broker.replace_courses(courses)
        self.error = None
        self.loaded_at = time.time()
        log.info("aiide broker: course files reloaded: %s", sorted(courses))
        return True

    async def watch(self, interval: float) -> None:
        """Check for edits every ``interval`` seconds, until cancelled. On the event loop:
        a few small files, and the broker's parsed-courses cache is replaced between two
        requests, never while one is using it."""
        while True:
            await asyncio.sleep(interval)
            self.reload()


class HealthHandler(web.RequestHandler):
    """``GET <prefix>``: is the broker up and configured as the admin meant (no token)."""

    def initialize(self, broker: Broker) -> None:
        self.broker = broker

    def check_xsrf_cookie(self) -> None:
        """GET only, nothing to forge."""

    async def get(self) -> None:
        b = self.broker
        files: CourseFiles = b.course_files
        checks: dict[str, Any] = {}
        try:
            await asyncio.wait_for(b.state.ping(), b.app.redis_timeout)
            checks["redis"] = "ok" if b.state.redis_url else "not configured (one broker)"
        except Exception as e:  # any failure is the answer here
            checks["redis"] = f"unavailable: {type(e).__name__}"
        try:
            await asyncio.to_thread(b.store.version)
            checks["database"] = "ok"
        except Exception as e:
            checks["database"] = f"unavailable: {type(e).__name__}"
        ok = files.error is None and all(v == "ok" or v.startswith("not ") for v in checks.values())
        self.set_status(200 if ok else 503)
        self.finish(
            {
                "service": "aiide-broker",
                "status": "ok" if ok else "degraded",
                "courses": len(b.files),
                "course_dir": files.directory,
                "courses_loaded_at": time.strftime(
                    "%Y-%m-%dT%H:%M:%SZ", time.gmtime(files.loaded_at)
                ),
                "course_file_error": files.error,
                "providers": {n: bool(k) for n, k in b.keys.items()},
                **checks,
            }
        )
