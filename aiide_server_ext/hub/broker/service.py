"""The broker's logic: courses, keys, identity and shared state, with no tornado in here.

``Broker`` is what every broker handler uses; ``model_refusal`` and ``budget_refusal``
say whether a course lets a call through. The app (``app.py``) builds one ``Broker`` and
hands it to the handlers (``handlers.py``, ``relay.py``, ``usage.py``, ...).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..course import (
    Course,
    CourseError,
    Effective,
    effective,
    load_courses,
)
from .identity import (
    HubCaller,
    HubIdentity,
    trusted_networks,
)
from .state import SharedState

if TYPE_CHECKING:
    from .app import BrokerApp

log = logging.getLogger("aiide.broker")


class Broker:
    """Everything the handlers use; no tornado in here."""

    def __init__(self, app: BrokerApp) -> None:
        from aiide_server_ext.gateway.audit import AuditLog
        from aiide_server_ext.gateway.redaction import Redactor
        from aiide_server_ext.gateway.store import Store

        from .durable import DurableState
        from .recorder import Recorder

        self.app = app
        self.files = load_courses(app.course_dir)
        self.state = SharedState(app.redis_url, app.redis_timeout)
        self.hub = HubIdentity(
            os.environ.get("JUPYTERHUB_API_URL", app.hub_api_url),
            os.environ.get("JUPYTERHUB_API_TOKEN", ""),
            cache_seconds=app.identity_cache_seconds,
            timeout=app.hub_timeout,
            role_groups=app.role_groups,
        )
        self.upstreams = {name: dict(spec) for name, spec in app.upstreams.items()}
        self.keys = {name: provider_key(name, spec) for name, spec in self.upstreams.items()}
        from .upstreams import described_providers

        #: The described upstreams' providers (their descriptors checked now).
        self.described = described_providers(self.upstreams, app.upstream_timeout)
        if app.default_course and app.default_course not in self.files:
            raise CourseError(
                f"c.BrokerApp.default_course: no course {app.default_course!r} in {app.course_dir}"
            )
        self.trusted = trusted_networks(app.trusted_proxies)
        self.redactor = Redactor(k for k in self.keys.values() if k)
        self.store = Store(
            app.db_path or os.path.join(os.getcwd(), "aiide-broker.sqlite"),
            url=app.database_url,
            label="the broker database",
        )
        self.audit = AuditLog(self.store, self.redactor)
        # The database is the record of course changes and usage; Redis is rebuilt from it.
        self.state.durable = DurableState(self.store)
        self.recorder = Recorder(self.state, self.audit)
        self._http: Any = None
        #: (changes version, courses with the changes applied): parsed once per version.
        self._applied: tuple[str, dict[str, Course]] | None = None
        #: Set by make_app (health.CourseFiles): the files' reloads.
        self.course_files: Any = None

    def http(self) -> Any:
        """The upstream client (aiohttp: a C HTTP parser and cheap connection reuse; the
        relay's per-call and per-chunk cost is what a class of 50 adds up)."""
        if self._http is None:
            import aiohttp

            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=10.0, sock_read=self.app.upstream_timeout
            )
            # One connection per stream in flight: no limit, or calls would queue here.
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
            self._http = aiohttp.ClientSession(timeout=timeout, connector=connector)
        return self._http

    def upstream(self, name: str) -> tuple[dict[str, Any], str] | None:
        """(spec, key) of a configured provider with a key."""
        spec, key = self.upstreams.get(name), self.keys.get(name)
        return (spec, key) if spec is not None and key else None

    def replace_courses(self, courses: dict[str, Course]) -> None:
        """Reloaded course files (health.CourseFiles): the next request applies them."""
        self.files = courses
        self._applied = None

    async def course(self, name: str) -> Course:
        """A course with its current run-time changes (read from the shared state)."""
        return self.files[name].with_changes(await self.state.changes(name))

    def _courses(self, version: str, changes: dict[str, dict[str, Any]]) -> dict[str, Course]:
        if version and self._applied is not None and self._applied[0] == version:
            return self._applied[1]
        courses = {
            name: course.with_changes(changes[name]) if changes.get(name) else course
            for name, course in self.files.items()
        }
        self._applied = (version, courses)
        return courses

    async def policy_for(self, caller: HubCaller, refresh: bool = False) -> tuple[str, Effective]:
        """(changes version, policy) from the cached course changes; ``refresh`` rereads
        them. The version lets ``SharedState.admit`` refuse to act on stale changes."""
        version, changes = await self.state.course_changes(self.files, refresh)
        return version, self._effective(self._courses(version, changes), caller)

    async def snapshot(self, caller: HubCaller) -> tuple[Effective, dict[str, int]]:
        """The caller's current policy and token use (one Redis round trip)."""
        version, changes, used = await self.state.snapshot(caller.name, self.files)
        return self._effective(self._courses(version, changes), caller), used

    def file_policy(self, caller: HubCaller) -> Effective:
        """The course files alone (Redis down, failing open): no run-time changes."""
        return self._effective(self.files, caller)

    def _effective(self, courses: Mapping[str, Course], caller: HubCaller) -> Effective:
        """The caller's courses; a user in none gets ``default_course`` when one is named."""
        policy = effective(courses.values(), caller.groups, caller.name)
        default = self.app.default_course
        if not policy.courses and default and not self.staff(caller):
            return Effective((courses[default],), caller.name)
        return policy

    def teaches(self, caller: HubCaller, course: Course) -> bool:
        staff = set(self.app.admin_groups) | course.instructors
        return caller.admin or bool(staff & caller.groups)

    def staff(self, caller: HubCaller) -> bool:
        """Admins, ``admin_groups`` and instructors of any course."""
        return any(self.teaches(caller, c) for c in self.files.values()) or (
            caller.admin or bool(set(self.app.admin_groups) & caller.groups)
        )

    def outside_refusal(self, caller: HubCaller, policy: Effective) -> tuple[str, str] | None:
        """A user in no course (and teaching none) spends nobody's key: refused, unless
        ``default_course`` names a course for them (then ``policy`` is that course)."""
        if policy.courses or self.staff(caller):
            return None
        return "no_course", (
            f"{caller.name} is in no course on this hub, so the assistant is off for them; "
            "ask an instructor to add you to a course (the broker refuses users in no course "
            "unless c.BrokerApp.default_course names one)"
        )

    async def close(self) -> None:
        await self.recorder.close()  # what the last calls recorded, before anything closes
        if self._http is not None:
            await self._http.close()
        await self.hub.close()
        await self.state.close()
        self.store.close()


def provider_key(name: str, spec: Mapping[str, Any]) -> str | None:
    """A provider's key: from ``api_key_file`` (readable by the broker's user only, so
    student code running as another user, or as this one through a shared /proc, cannot
    read it from the process environment) or else the ``api_key_env`` variable."""
    path = str(spec.get("api_key_file") or "")
    if not path:
        return os.environ.get(str(spec.get("api_key_env", ""))) or None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as e:
        raise CourseError(f"upstreams.{name}.api_key_file: cannot read {path}: {e}") from None
    with os.fdopen(fd, "rb") as f:
        if os.fstat(f.fileno()).st_mode & 0o077:
            raise CourseError(
                f"upstreams.{name}.api_key_file: {path} is readable by other users; "
                f"chmod 600 it (owned by the broker's user)"
            )
        key = f.read(4096).decode().strip()
    return key or None


def model_refusal(policy: Effective) -> tuple[str, str] | None:
    """Exam mode that turns off every model feature closes the broker to the student too,
    so a student calling it directly (their hub token is in their environment) gets nothing."""
    refusals = [policy.refusal(f) for f in ("chat", "agent", "complete")]
    if all(refusals):
        return refusals[0]
    return None


def budget_refusal(policy: Effective, used: Mapping[str, int]) -> tuple[str, str] | None:
    for kind, limit in policy.budget().items():
        if used.get(kind, 0) >= limit:
            period = "today" if kind == "daily_tokens" else "this week"
            return "budget_exceeded", (
                f"your token budget for {period} ({limit} tokens) is used up; "
                "ask your instructor or wait for the next period"
            )
    return None
