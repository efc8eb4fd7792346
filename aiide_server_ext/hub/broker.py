"""``aiide-broker``: the JupyterHub service that holds the provider keys.

Single-user servers point their model providers at the broker (``<broker>/anthropic``,
``<broker>/openai/v1``; see ``providers.py``) with their hub token as the "API key". The
broker identifies the student with the hub, applies their courses (allowed models, exam
mode, daily/weekly token budget, rate limit), adds the real key and streams the provider's
answer back chunk by chunk, counting the tokens it sees (the model routes live in
``relay.py``). Instructors read and change their courses through ``/api/courses/...``.

Run as a hub-managed service: ``python -m aiide_server_ext.hub --config broker_config.py``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

from tornado import web
from traitlets import Dict, Enum, Float, Int, List, Unicode
from traitlets.config import Application

from .course import (
    Course,
    CourseError,
    Effective,
    effective,
    load_courses,
    merge_changes,
    validate_changes,
)
from .identity import (
    HubCaller,
    HubIdentity,
    HubUnavailable,
    fingerprint,
    identity_claims,
    token_of,
)
from .recorder import Event
from .state import SharedState, StateUnavailable, Usage

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
        secrets = [
            os.environ.get(str(s.get("api_key_env", "")), "") for s in self.upstreams.values()
        ]
        self.redactor = Redactor(secrets)
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
        """(spec, key) of a configured provider with its key in the environment."""
        spec = self.upstreams.get(name)
        key = os.environ.get(str((spec or {}).get("api_key_env", ""))) if spec else None
        return (spec, key) if spec is not None and key else None

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
        courses = self._courses(version, changes).values()
        return version, effective(courses, caller.groups, caller.name)

    async def snapshot(self, caller: HubCaller) -> tuple[Effective, dict[str, int]]:
        """The caller's current policy and token use (one Redis round trip)."""
        version, changes, used = await self.state.snapshot(caller.name, self.files)
        courses = self._courses(version, changes).values()
        return effective(courses, caller.groups, caller.name), used

    def file_policy(self, caller: HubCaller) -> Effective:
        """The course files alone (Redis down, failing open): no run-time changes."""
        return effective(self.files.values(), caller.groups, caller.name)

    def teaches(self, caller: HubCaller, course: Course) -> bool:
        staff = set(self.app.admin_groups) | course.instructors
        return caller.admin or bool(staff & caller.groups)

    async def close(self) -> None:
        await self.recorder.close()  # what the last calls recorded, before anything closes
        if self._http is not None:
            await self._http.close()
        self.hub.close()
        await self.state.close()
        self.store.close()


class BrokerHandler(web.RequestHandler):
    broker: Broker
    caller: HubCaller

    def initialize(self, broker: Broker) -> None:
        self.broker = broker

    def check_xsrf_cookie(self) -> None:
        """Token in a header only: no ambient credential, nothing to forge."""

    def fail(self, status: int, code: str, message: str) -> None:
        """Errors in the Anthropic and OpenAI shapes (each SDK shows ``error.message``)
        plus aiide's ``code``."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        error = {"type": code, "message": message, "code": code}
        self.finish(json.dumps({"type": "error", "error": error, "code": code, "message": message}))

    async def prepare(self) -> None:
        token = token_of(self.request.headers)
        try:
            caller = await self.broker.hub.identify(token) if token else None
        except HubUnavailable as e:
            self.fail(503, "hub_unavailable", f"{e}; the assistant is unavailable until it is back")
            return
        if caller is None:
            detail = {"token": fingerprint(token) if token else None, "ip": self.request.remote_ip}
            await self.record(events=[Event(None, "auth.refused", self.request.path,
                                            "unauthenticated", detail)])  # fmt: skip
            self.fail(401, "unauthenticated", "a valid JupyterHub token is required")
            return
        self.caller = caller
        claims = identity_claims(self.request.headers)
        if claims:
            detail = {"claims": claims, "hub_groups": sorted(caller.groups)}
            await self.audit("identity.forged", self.request.path, "refused", detail)
            log.warning("aiide broker: %s sent identity claims %s", caller.name, sorted(claims))
            self.fail(403, "forged_claim", "identity comes from the hub; claims are refused")

    async def record(self, usage: Sequence[Usage] = (), events: Sequence[Event] = ()) -> None:
        """Usage and audit, batched with other calls; returns once written."""
        await self.broker.recorder.record(usage, events)

    async def count(self, **metrics: int) -> None:
        """Per-student, per-day figures for instructors; never fails the request."""
        await self.record(usage=[Usage(self.caller.name, self.caller.groups, 0, metrics)])

    async def audit(self, action: str, target: str, outcome: str, detail: Any = None) -> None:
        await self.record(events=[Event(self.caller.name, action, target, outcome, detail)])

    async def refused(self, status: int, code: str, message: str, target: str) -> None:
        """A model call refused by the course: audited, counted as a limit hit, answered."""
        await self.record(
            usage=[Usage(self.caller.name, self.caller.groups, 0, {f"limit:{code}": 1})],
            events=[Event(self.caller.name, "model.refused", target, code, {"message": message})],
        )
        self.fail(status, code, message)


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


class MeHandler(BrokerHandler):
    """``GET <prefix>/api/me``: the student's effective policy and what budget is left."""

    async def get(self) -> None:
        b, caller = self.broker, self.caller
        used: dict[str, int] | None
        remaining: dict[str, int] | None
        try:
            policy, used = await b.snapshot(caller)
            remaining = {k: max(0, v - used.get(k, 0)) for k, v in policy.budget().items()}
        except StateUnavailable as e:
            if b.app.redis_failure_mode == "closed":
                self.fail(503, "broker_unavailable", f"usage limits cannot be checked: {e}")
                return
            policy, remaining, used = b.file_policy(caller), None, None
        body = {
            "user": caller.name,
            "groups": sorted(caller.groups),
            "hub_roles": sorted(caller.roles),
            **policy.public(),
            "used": used,
            "remaining": remaining,
        }
        budget = budget_refusal(policy, used) if used is not None else None
        body["budget_refusal"] = {"code": budget[0], "message": budget[1]} if budget else None
        feature = self.get_argument("feature", "")
        if feature:  # a server asks before using a feature: a refusal is a limit hit
            hit = policy.refusal(feature) or (budget if feature != "agent" else None)
            if hit is not None:
                await self.record(
                    usage=[Usage(caller.name, caller.groups, 0, {f"limit:{hit[0]}": 1})],
                    events=[Event(caller.name, "course.refused", f"feature:{feature}", hit[0])],
                )
        self.finish(body)


class CourseHandler(BrokerHandler):
    """``GET/PATCH <prefix>/api/courses/<name>``: instructors of the course (or admins)."""

    async def _course(self, name: str) -> Course | None:
        if name not in self.broker.files:
            self.fail(404, "unknown_course", f"no course {name!r}")
            return None
        try:
            course = await self.broker.course(name)
        except StateUnavailable as e:  # the course's changes live in Redis
            self.fail(503, "broker_unavailable", f"the course cannot be read: {e}")
            return None
        if not self.broker.teaches(self.caller, course):
            await self.audit("course.refused", f"course:{name}", "forbidden")
            self.fail(403, "forbidden", f"only instructors of {name} may do this")
            return None
        return course

    async def get(self, name: str) -> None:
        course = await self._course(name)
        if course is None:
            return
        try:
            changes = await self.broker.state.changes(name)
        except StateUnavailable as e:
            self.fail(503, "broker_unavailable", f"the course cannot be read: {e}")
            return
        self.finish({**course.raw(), "changes": changes})

    async def patch(self, name: str) -> None:
        course = await self._course(name)
        if course is None:
            return
        file = self.broker.files[name]
        try:
            changes = validate_changes(json.loads(self.request.body or b"null"))
        except (ValueError, CourseError) as e:
            self.fail(400, "invalid_change", str(e))
            return
        before: dict[str, Any] = {}
        updated: list[Course] = []  # the course with the changes that were stored

        def update(current: dict[str, Any]) -> dict[str, Any]:
            merged = merge_changes(file, current, changes)
            # still a valid course (raises: nothing is written)
            updated[:] = [file.with_changes(merged)]
            if "student_budgets" in changes:  # the audit says what each student had
                had = file.with_changes(current).student_budgets
                before["student_budgets"] = {
                    u: dict(had[u]) if u in had else None for u in changes["student_budgets"]
                }
            return merged

        try:
            merged = await self.broker.state.update_changes(name, update)
        except CourseError as e:
            self.fail(400, "invalid_change", str(e))
            return
        except StateUnavailable as e:
            self.fail(503, "broker_unavailable", f"the change cannot be stored: {e}")
            return
        detail: dict[str, Any] = {"changes": changes}
        if before:
            detail["before"] = before
        await self.audit("course.changed", f"course:{name}", "applied", detail)
        log.info("aiide broker: %s changed course %s: %s", self.caller.name, name, changes)
        self.finish({**updated[0].raw(), "changes": merged})


class BrokerApp(Application):  # type: ignore[misc]
    """``c.BrokerApp.*``: the aiide key broker (a JupyterHub service)."""

    name = "aiide-broker"
    config_file = Unicode("", config=True, help="A Python or JSON config file to load.")
    course_dir = Unicode("", config=True, help="Directory of course files (YAML or JSON).")
    upstreams = Dict(
        {
            "anthropic": {
                "base_url": "https://api.anthropic.com",
                "api_key_env": "ANTHROPIC_API_KEY",
            }
        },
        config=True,
        help="Provider -> {base_url, api_key_env}. Keys come from the broker's environment.",
    )
    admin_groups = List(
        Unicode(), config=True, help="Hub groups that may change every course and read audit."
    )
    role_groups = Dict(
        config=True,
        help="Hub role -> groups a holder of the role counts as, so hub roles join the "
        "group-based course policy, e.g. {'instructor': ['instructors'], 'course-admin': "
        "['staff']} (with 'staff' in admin_groups). Needs the broker's hub role to hold "
        "'read:roles:users' when a caller's token cannot read its own roles.",
    )
    redis_url = Unicode("", config=True, help="Redis shared by broker replicas (limits, usage).")
    redis_failure_mode = Enum(
        ["open", "closed"], "closed", config=True, help="Redis down: refuse (closed) or admit."
    )
    redis_timeout = Float(2.0, config=True, help="Seconds to wait for Redis.")
    rate_limit = Unicode(
        "60/minute", config=True, help="Model calls per student when no course sets one."
    )
    db_path = Unicode("", config=True, help="sqlite file for the audit trail.")
    database_url = Unicode(
        "",
        config=True,
        help="PostgreSQL URL for the audit trail shared by broker replicas "
        "(postgresql://user@host/db). Empty: the sqlite file db_path.",
    )
    hub_api_url = Unicode(
        "http://127.0.0.1:8081/hub/api", config=True, help="Used when JUPYTERHUB_API_URL is unset."
    )
    upstream_timeout = Float(
        300.0,
        config=True,
        help="Seconds the provider may stay silent (before its answer starts, between chunks).",
    )
    hub_timeout = Float(3.0, config=True, help="Seconds to wait for the hub's API.")
    identity_cache_seconds = Float(
        30.0, config=True, help="Seconds a token's owner and groups are cached (hub outages)."
    )
    port = Int(0, config=True, help="Port (default: from JUPYTERHUB_SERVICE_URL).")
    aliases = {"config": "BrokerApp.config_file", "port": "BrokerApp.port"}

    def initialize(self, argv: Any = None) -> None:
        super().initialize(argv)
        if self.config_file:
            directory, name = os.path.split(os.path.abspath(self.config_file))
            self.load_config_file(name, path=directory)
            self.update_config(self.cli_config)

    def make_app(self) -> tuple[web.Application, Broker]:
        from .relay import relay_handlers
        from .usage import usage_handlers

        broker = Broker(self)
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/aiide-broker/")
        prefix = "/" + prefix.strip("/") + "/"
        kw = {"broker": broker}
        handlers: list[Any] = [
            *relay_handlers(prefix, kw),
            (prefix + "api/me", MeHandler, kw),
            (prefix + r"api/courses/([\w.-]+)", CourseHandler, kw),
            *usage_handlers(prefix, kw),
        ]
        return web.Application(handlers), broker

    def start(self) -> None:
        import asyncio
        import signal

        signal.signal(signal.SIGINT, signal.default_int_handler)  # hub shutdown must not wait
        url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:0"))
        port = self.port or url.port or 0

        async def main() -> None:
            app, broker = self.make_app()
            # The upstream client (its import and TLS context take ~0.3 s of CPU) is made
            # now, not by the first student's call while 49 others wait behind it.
            broker.http()
            server = app.listen(port, url.hostname or "127.0.0.1", xheaders=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGTERM, stop.set)
            self.log.info(
                "aiide broker on %s:%s (%d courses)", url.hostname, port, len(broker.files)
            )
            try:
                await stop.wait()
            finally:
                server.stop()
                await broker.close()

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(main())


def main(argv: list[str] | None = None) -> None:
    app = BrokerApp.instance()
    app.initialize(argv)
    app.start()
