"""The broker's HTTP base and its own routes: ``BrokerHandler`` (identity, body limits,
audit) under every route, ``api/me`` and ``api/courses/<name>``; the model relay and the
instructor API (``relay.py``, ``usage.py``, ``roster.py``, ``audit.py``, ``sharing.py``)
build on the same base."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

from tornado import web

from aiide_server_ext.json_api import JsonApi
from aiide_server_ext.seams import ApiError

from ..course import (
    Course,
    CourseError,
    merge_changes,
    validate_changes,
)
from ..notices import notices
from .durable import StateUnavailable
from .identity import (
    HubCaller,
    HubUnavailable,
    client_ip,
    fingerprint,
    identity_claims,
    token_of,
)
from .recorder import Event
from .service import Broker, budget_refusal
from .serving import unservable
from .state import Usage

log = logging.getLogger("aiide.broker")


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
