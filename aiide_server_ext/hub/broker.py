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

import asyncio
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

from aiide_server_ext.json_api import JsonApi
from aiide_server_ext.seams import ApiError

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
    client_ip,
    fingerprint,
    identity_claims,
    token_of,
    trusted_networks,
)
from .notices import notices
from .recorder import Event
from .serving import unservable
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
        self.keys = {name: provider_key(name, spec) for name, spec in self.upstreams.items()}
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
        self.hub.close()
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


#: Audit writes started where nothing can wait for them (kept so they are not collected).
_AUDITS: set[asyncio.Future[None]] = set()


@web.stream_request_body
class BrokerHandler(JsonApi):
    """Identity first, then the body: a request is authenticated and its declared size
    checked as soon as its headers arrive, before any of its body is read; a body is
    buffered only up to the route's limit (``body_limit``)."""

    broker: Broker
    caller: HubCaller
    #: The caller's address for the audit trail (``X-Forwarded-For`` from trusted proxies).
    ip: str = ""
    _body: bytearray

    def initialize(self, broker: Broker) -> None:
        self.broker = broker
        self._body = bytearray()

    def check_xsrf_cookie(self) -> None:
        """Token in a header only: no ambient credential, nothing to forge."""

    def body_limit(self) -> int:
        return int(self.broker.app.max_api_body_bytes)

    def fail(self, status: int, code: str, message: str, kind: str = "") -> None:
        """Answer an error now, through the one ``write_error`` (``json_api.py``), keeping
        the headers already set (rate limits, ``retry-after``): for paths that cannot
        raise (``data_received``) or answer mid-relay. Verbs raise ``ApiError``."""
        if self._finished:
            return
        error = ApiError(status, code, message, kind=kind or code)
        self.write_error(status, exc_info=(ApiError, error, None))

    def error_document(self, body: dict[str, Any]) -> dict[str, Any]:
        """``{code, message}`` in the Anthropic and OpenAI error shapes too (each SDK shows
        ``error.message``); ``kind`` is ``error.type`` when it differs from the code."""
        kind = body.pop("kind", None) or body["code"]
        error = {"type": kind, "message": body["message"], "code": body["code"]}
        return {"type": "error", "error": error, **body}

    def redact(self, text: str) -> str:
        return str(self.broker.redactor.text(text))

    def too_large_error(self) -> ApiError:
        limit = self.body_limit()
        return ApiError(413, "body_too_large", f"the request body is larger than {limit} bytes")

    def too_large(self) -> None:
        # Tornado discards the rest of the body and closes the connection once this is sent.
        error = self.too_large_error()
        self.fail(error.status, error.code, error.message)
        task = asyncio.ensure_future(self.audit_too_large())  # data_received cannot wait
        _AUDITS.add(task)
        task.add_done_callback(_AUDITS.discard)

    async def audit_too_large(self) -> None:
        """A body refused for its size is audited like the broker's other refusals."""
        caller = getattr(self, "caller", None)
        headers = self.request.headers
        detail = {
            "ip": self.ip,
            "limit": self.body_limit(),
            "declared": headers.get("Content-Length"),
        }
        event = Event(caller.name if caller else None, "request.refused",
                      self.request.path[:256], "body_too_large", detail)  # fmt: skip
        await self.record(events=[event])

    async def prepare(self) -> None:
        b = self.broker
        self.ip = client_ip(
            self.request.remote_ip, self.request.headers.get("X-Forwarded-For"), b.trusted
        )
        declared = self.request.headers.get("Content-Length", "")
        if declared.strip().isdigit() and int(declared) > self.body_limit():
            await self.audit_too_large()
            raise self.too_large_error()
        token = token_of(self.request.headers)
        try:
            caller = await b.hub.identify(token) if token else None
        except HubUnavailable as e:
            raise ApiError(
                503, "hub_unavailable", f"{e}; the assistant is unavailable until it is back"
            ) from None
        if caller is None:
            detail = {"token": fingerprint(token) if token else None, "ip": self.ip}
            await self.record(events=[Event(None, "auth.refused", self.request.path,
                                            "unauthenticated", detail)])  # fmt: skip
            raise ApiError(401, "unauthenticated", "a valid JupyterHub token is required")
        self.caller = caller
        claims = identity_claims(self.request.headers)
        if claims:
            forged = {"claims": claims, "hub_groups": sorted(caller.groups), "ip": self.ip}
            await self.audit("identity.forged", self.request.path, "refused", forged)
            log.warning("aiide broker: %s sent identity claims %s", caller.name, sorted(claims))
            raise ApiError(403, "forged_claim", "identity comes from the hub; claims are refused")

    def data_received(self, chunk: bytes) -> None:
        if self._finished:
            return
        if len(self._body) + len(chunk) > self.body_limit():
            self.too_large()  # a chunked body (no Content-Length) that keeps coming
            return
        self._body += chunk

    def body(self) -> bytes:
        """The request body, read whole (within ``body_limit``)."""
        return bytes(self._body)

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
                raise ApiError(
                    503, "broker_unavailable", f"usage limits cannot be checked: {e}"
                ) from None
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
        outside = b.outside_refusal(caller, policy)
        body["refusal"] = {"code": outside[0], "message": outside[1]} if outside else None
        # Who teaches is named once, in the course files: the student's server takes it
        # from here (singleuser.CourseTeachers), no second list to keep in agreement.
        body["teaches"] = sorted(c.name for c in b.files.values() if b.teaches(caller, c))
        body["notices"] = notices(policy)  # announcements and rules, before any refusal
        feature = self.get_argument("feature", "")
        if feature and outside:  # a server asks before using a feature: refuse it all
            await self.record(
                usage=[Usage(caller.name, caller.groups, 0, {f"limit:{outside[0]}": 1})],
                events=[Event(caller.name, "course.refused", f"feature:{feature}", outside[0])],
            )
            raise ApiError(403, *outside)
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

    async def _course(self, name: str) -> Course:
        if name not in self.broker.files:
            raise ApiError(404, "unknown_course", f"no course {name!r}")
        try:
            course = await self.broker.course(name)
        except StateUnavailable as e:  # the course's changes live in Redis
            raise ApiError(503, "broker_unavailable", f"the course cannot be read: {e}") from None
        if not self.broker.teaches(self.caller, course):
            await self.audit("course.refused", f"course:{name}", "forbidden")
            raise ApiError(403, "forbidden", f"only instructors of {name} may do this")
        return course

    async def get(self, name: str) -> None:
        course = await self._course(name)
        try:
            changes = await self.broker.state.changes(name)
        except StateUnavailable as e:
            raise ApiError(503, "broker_unavailable", f"the course cannot be read: {e}") from None
        self.finish({**course.raw(), "changes": changes})

    async def patch(self, name: str) -> None:
        await self._course(name)  # instructors only
        b = self.broker
        file = b.files[name]
        try:
            changes = validate_changes(json.loads(self.body() or b"null"))
        except (ValueError, CourseError) as e:
            raise ApiError(400, "invalid_change", str(e)) from None
        cannot = unservable(changes.get("models") or (), b.upstreams, b.keys)
        if cannot:
            refused = {"changes": changes, "why": cannot}
            await self.audit("course.refused", f"course:{name}", "model_unavailable", refused)
            why = "; ".join(cannot)
            raise ApiError(400, "model_unavailable", f"the broker cannot serve {why}")
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
            raise ApiError(400, "invalid_change", str(e)) from None
        except StateUnavailable as e:
            raise ApiError(503, "broker_unavailable", f"the change cannot be stored: {e}") from None
        detail: dict[str, Any] = {"changes": changes}
        if before:
            detail["before"] = before
        await self.audit("course.changed", f"course:{name}", "applied", detail)
        log.info("aiide broker: %s changed course %s: %s", self.caller.name, name, changes)
        self.finish({**updated[0].raw(), "changes": merged})


class NotFoundHandler(BrokerHandler):
    """Any other path: 404 with a code, before authentication or any body is read."""

    async def prepare(self) -> None:
        raise ApiError(404, "not_found", f"no broker route {self.request.path[:200]}")


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
        help="Provider -> {base_url, api_key_file or api_key_env, models}. models: the "
        "model id prefixes it serves (hub/serving.py has the defaults), against which an "
        "instructor's switch of a course's models is checked. api_key_file: a file "
        "holding the key, owned by the broker's user and readable by nobody else (the broker "
        "refuses to start otherwise); api_key_env: an environment variable of the broker's "
        "(visible in /proc to every process of the same user: use it only when no student "
        "code runs as that user).",
    )
    default_course = Unicode(
        "",
        config=True,
        help="What hub users in no course get (and teaching none): empty (the default) "
        "refuses their model calls with code 'no_course'; a course name applies that "
        "course's models, budgets, limits and exam mode to them.",
    )
    max_body_bytes = Int(
        32 * 1024 * 1024,
        config=True,
        help="Largest model request body (bytes; the provider's own request limit). Larger "
        "ones are refused with 413 'body_too_large' from their headers, before any body is "
        "read; chunked bodies as they pass the limit.",
    )
    max_api_body_bytes = Int(
        1024 * 1024,
        config=True,
        help="Largest body on the broker's other routes (course changes, instructor API).",
    )
    trusted_proxies = List(
        Unicode(),
        config=True,
        help="Addresses or networks of proxies in front of the broker (e.g. "
        "['10.0.0.5', '10.1.0.0/16']) whose X-Forwarded-For is believed for the audited "
        "client address. Empty (the default): the connection's own address, so a caller "
        "cannot write another address into the audit trail.",
    )
    allowed_anthropic_betas = List(
        Unicode(),
        config=True,
        help="anthropic-beta values callers may send through the broker. Empty (the "
        "default): none; a request with another beta is refused ('header_not_allowed'). "
        "Betas can turn on provider-run tools billed outside the token budgets.",
    )
    allowed_tool_types = List(
        Unicode(),
        config=True,
        help="Tool types besides plain client tools ('custom' / 'function') a request may "
        "declare, e.g. ['web_search_20250305']. Empty (the default): provider-run tools "
        "(web search, code execution…; billed per use, outside the budgets) are refused "
        "('tool_not_allowed').",
    )
    completion_max_tokens = Int(
        1024,
        config=True,
        help="While exam mode turns chat off but leaves completion on: the most tokens a "
        "call may ask for and still count as an inline completion (the completer's own cap).",
    )
    completion_max_prompt_chars = Int(
        8000,
        config=True,
        help="While exam mode turns chat off but leaves completion on: the longest prompt "
        "text a call may carry and still count as an inline completion.",
    )
    audit_scan_rows = Int(
        20000,
        config=True,
        help="Audit rows one api/audit request examines at most; a search that has not "
        "found enough by then answers with what it found and where to continue (more, "
        "next_after), so a search with no match never reads the whole table at once.",
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
    course_reload_interval = Float(
        5.0,
        config=True,
        help="Seconds between checks of course_dir for edited, added or removed course "
        "files; an edit applies to the next request, no restart (SIGHUP rereads at once). "
        "A file that does not parse is refused (logged, shown on the broker's health page) "
        "and the courses loaded before stay. 0: only SIGHUP.",
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
        from .audit import audit_handlers
        from .health import CourseFiles, HealthHandler
        from .relay import relay_handlers
        from .roster import roster_handlers
        from .sharing import sharing_handlers
        from .usage import usage_handlers

        broker = Broker(self)
        broker.course_files = CourseFiles(broker)
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/aiide-broker/")
        prefix = "/" + prefix.strip("/") + "/"
        kw = {"broker": broker}
        handlers: list[Any] = [
            *relay_handlers(prefix, kw),
            (prefix + "(?:health)?", HealthHandler, kw),
            (prefix + "api/me", MeHandler, kw),
            (prefix + r"api/courses/([\w.-]+)", CourseHandler, kw),
            *audit_handlers(prefix, kw),
            *usage_handlers(prefix, kw),
            *roster_handlers(prefix, kw),
            *sharing_handlers(prefix, kw),
        ]
        app = web.Application(
            handlers, default_handler_class=NotFoundHandler, default_handler_args=kw
        )
        return app, broker

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
            # No xheaders: X-Forwarded-For is believed from trusted_proxies only (prepare).
            # Bodies are limited per route as they stream in (BrokerHandler), so tornado's
            # own cap must not cut a connection before the handler can answer 413.
            server = app.listen(port, url.hostname or "127.0.0.1", max_body_size=1 << 40)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGTERM, stop.set)
            files = broker.course_files
            loop.add_signal_handler(signal.SIGHUP, lambda: files.reload(force=True))
            watcher = None
            if self.course_reload_interval > 0:
                watcher = asyncio.ensure_future(files.watch(self.course_reload_interval))
            self.log.info(
                "aiide broker on %s:%s (%d courses)", url.hostname, port, len(broker.files)
            )
            try:
                await stop.wait()
            finally:
                if watcher is not None:
                    watcher.cancel()
                server.stop()
                await broker.close()

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(main())


def main(argv: list[str] | None = None) -> None:
    app = BrokerApp.instance()
    app.initialize(argv)
    app.start()
