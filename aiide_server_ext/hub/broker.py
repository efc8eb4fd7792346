"""``aiide-broker``: the JupyterHub service that holds the provider keys.

Single-user servers point their Anthropic provider at ``<broker>/anthropic`` with their
hub token as the "API key". The broker identifies the student with the hub, applies
their courses (allowed models, exam mode, daily/weekly token budget, rate limit), adds
the real key and streams the provider's answer back chunk by chunk, counting the tokens
it sees. Instructors read and change their courses through ``/api/courses/...``.

Run as a hub-managed service: ``python -m aiide_server_ext.hub --config broker_config.py``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from typing import Any
from urllib.parse import urlparse

from tornado import web
from traitlets import Dict, Enum, Float, Int, List, Unicode
from traitlets.config import Application

from .course import Course, CourseError, Effective, effective, load_courses, validate_changes
from .identity import (
    HubCaller,
    HubIdentity,
    HubUnavailable,
    fingerprint,
    identity_claims,
    token_of,
)
from .state import SharedState, StateUnavailable

log = logging.getLogger("aiide.broker")
#: Response headers passed back from the provider.
PASS_HEADERS = ("content-type", "request-id", "retry-after", "anthropic-ratelimit-requests-limit")


class Broker:
    """Everything the handlers use; no tornado in here beyond the HTTP client."""

    def __init__(self, app: BrokerApp) -> None:
        from aiide_server_ext.gateway.audit import AuditLog
        from aiide_server_ext.gateway.ratelimit import MemoryRateLimiter, RedisRateLimiter
        from aiide_server_ext.gateway.redaction import Redactor
        from aiide_server_ext.gateway.store import Store

        self.app = app
        self.files = load_courses(app.course_dir)
        self.state = SharedState(app.redis_url, app.redis_timeout)
        self.hub = HubIdentity(
            os.environ.get("JUPYTERHUB_API_URL", app.hub_api_url),
            os.environ.get("JUPYTERHUB_API_TOKEN", ""),
            cache_seconds=app.identity_cache_seconds,
            timeout=app.hub_timeout,
        )
        self.upstreams = {name: dict(spec) for name, spec in app.upstreams.items()}
        secrets = [
            os.environ.get(str(s.get("api_key_env", "")), "") for s in self.upstreams.values()
        ]
        self.redactor = Redactor(secrets)
        self.store = Store(app.db_path or os.path.join(os.getcwd(), "aiide-broker.sqlite"))
        self.audit = AuditLog(self.store, self.redactor)
        self.limiter: Any = (
            RedisRateLimiter(app.redis_url, failure_mode=app.redis_failure_mode)
            if app.redis_url
            else MemoryRateLimiter()
        )
        self._http: Any = None

    def http(self) -> Any:
        if self._http is None:
            import httpx

            timeout = httpx.Timeout(self.app.upstream_timeout, connect=10.0)
            self._http = httpx.AsyncClient(timeout=timeout)
        return self._http

    async def course(self, name: str) -> Course:
        return self.files[name].with_changes(await self.state.changes(name))

    async def policy_for(self, caller: HubCaller) -> Effective:
        mine = [c for c in self.files.values() if c.groups & caller.groups]
        return effective([await self.course(c.name) for c in mine], caller.groups)

    def teaches(self, caller: HubCaller, course: Course) -> bool:
        staff = set(self.app.admin_groups) | course.instructors
        return caller.admin or bool(staff & caller.groups)

    async def remaining(self, caller: HubCaller, policy: Effective) -> dict[str, int]:
        used = await self.state.used(caller.name)
        return {k: max(0, v - used.get(k, 0)) for k, v in policy.budget().items()}

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        self.hub.close()
        await self.limiter.close()
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
        """Errors in the Anthropic shape (the SDK shows ``message``) plus aiide's ``code``."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        body = {"type": "error", "error": {"type": code, "message": message}, "code": code}
        self.finish(json.dumps({**body, "message": message}))

    async def prepare(self) -> None:
        token = token_of(self.request.headers)
        try:
            caller = await self.broker.hub.identify(token) if token else None
        except HubUnavailable as e:
            self.fail(503, "hub_unavailable", f"{e}; the assistant is unavailable until it is back")
            return
        if caller is None:
            detail = {"token": fingerprint(token) if token else None, "ip": self.request.remote_ip}
            await self._record(None, "auth.refused", self.request.path, "unauthenticated", detail)
            self.fail(401, "unauthenticated", "a valid JupyterHub token is required")
            return
        self.caller = caller
        claims = identity_claims(self.request.headers)
        if claims:
            detail = {"claims": claims, "hub_groups": sorted(caller.groups)}
            await self.audit("identity.forged", self.request.path, "refused", detail)
            log.warning("aiide broker: %s sent identity claims %s", caller.name, sorted(claims))
            self.fail(403, "forged_claim", "identity comes from the hub; claims are refused")

    async def _record(
        self, actor: str | None, action: str, target: str, outcome: str, detail: Any
    ) -> None:
        from aiide_server_ext.gateway.errors import GatewayError

        try:
            await self.broker.audit.record(actor, action, target, outcome, detail)
        except GatewayError as e:
            log.warning("aiide broker: %s not audited: %s", action, e)

    async def count(self, **metrics: int) -> None:
        """Per-student, per-day figures for instructors; never fails the request."""
        from .course import periods

        day = periods()["daily_tokens"][0]
        try:
            await self.broker.state.count(self.caller.name, self.caller.groups, day, **metrics)
        except StateUnavailable as e:
            log.warning("aiide broker: usage of %s not counted: %s", self.caller.name, e)

    async def audit(self, action: str, target: str, outcome: str, detail: Any = None) -> None:
        await self._record(self.caller.name, action, target, outcome, detail)


class MessagesHandler(BrokerHandler):
    """``POST <prefix>/anthropic/v1/messages``: checked, keyed, streamed through."""

    async def post(self) -> None:
        b, caller = self.broker, self.caller
        try:
            body = json.loads(self.request.body or b"{}")
            model = str(body.get("model", ""))
        except (ValueError, AttributeError):
            self.fail(400, "invalid_request_error", "the body must be a JSON object")
            return
        try:
            policy = await b.policy_for(caller)
            refusal = _model_refusal(policy)
            if refusal is None and not policy.model_allowed(model):
                refusal = ("model_not_allowed", f"model {model!r} is not allowed in your course")
            if refusal is None:
                refusal = await _budget_refusal(b, caller, policy)
        except StateUnavailable as e:
            if b.app.redis_failure_mode == "closed":
                message = f"usage limits cannot be checked ({e}); try again later"
                await self.audit("model.refused", f"model:{model}", "broker_unavailable")
                self.fail(503, "broker_unavailable", message)
                return
            log.warning("aiide broker: %s; failing open", e)
            policy = await _file_policy(b, caller)  # the files still hold; no budgets
            refusal = _model_refusal(policy)
        if refusal is not None:
            code, message = refusal
            await self.audit("model.refused", f"model:{model}", code, {"message": message})
            await self.count(**{f"limit:{code}": 1})
            self.fail(402 if code == "budget_exceeded" else 403, code, message)
            return
        if not await self._within_rate(policy):
            return
        await self._forward(body)

    async def _within_rate(self, policy: Effective) -> bool:
        from aiide_server_ext.gateway.ratelimit import RateLimit

        text = policy.rate_limit("model") or self.broker.app.rate_limit
        if not text:
            return True
        from aiide_server_ext.gateway.errors import GatewayError

        limit = RateLimit.parse(text)
        try:
            decision = await self.broker.limiter.hit(f"broker:model:{self.caller.name}", limit)
        except GatewayError as e:  # Redis down, failing closed
            self.fail(503, "broker_unavailable", f"rate limits cannot be checked ({e}); try later")
            return False
        for k, v in decision.headers().items():
            self.set_header(k, v)
        if not decision.allowed:
            await self.count(**{"limit:rate_limited": 1})
            self.fail(429, "rate_limited", f"rate limit for model calls ({text}) reached")
        return bool(decision.allowed)

    async def _forward(self, body: dict[str, Any]) -> None:
        import httpx

        b = self.broker
        spec = b.upstreams.get("anthropic")
        key = os.environ.get(str((spec or {}).get("api_key_env", ""))) if spec else None
        if spec is None or not key:
            self.fail(503, "no_provider", "the broker has no Anthropic key configured")
            return
        url = str(spec.get("base_url") or "https://api.anthropic.com").rstrip("/")
        headers = {
            "x-api-key": key,
            "anthropic-version": self.request.headers.get("anthropic-version", "2023-06-01"),
            "content-type": "application/json",
        }
        if beta := self.request.headers.get("anthropic-beta"):
            headers["anthropic-beta"] = beta
        counter = UsageCounter()
        try:
            async with b.http().stream(
                "POST", url + "/v1/messages", content=self.request.body, headers=headers
            ) as r:
                self.set_status(r.status_code)
                for name in PASS_HEADERS:
                    if name in r.headers:
                        self.set_header(name, r.headers[name])
                async for chunk in r.aiter_raw():
                    counter.feed(chunk)
                    self.write(chunk)
                    await self.flush()  # no added buffering: each chunk goes out now
        except httpx.HTTPError as e:
            if not self._headers_written:
                self.fail(502, "provider_unavailable", f"the provider is unreachable: {e}")
                return
        except web.iostream.StreamClosedError:  # type: ignore[attr-defined]
            pass  # the student went away; closing the stream cancels the upstream call
        finally:
            await self._meter(body, counter)
        if not self._finished:
            self.finish()

    async def _meter(self, body: dict[str, Any], counter: UsageCounter) -> None:
        tokens = counter.input_tokens + counter.output_tokens
        try:
            await self.broker.state.add_used(self.caller.name, tokens)
        except StateUnavailable as e:
            log.warning("aiide broker: usage of %s not counted: %s", self.caller.name, e)
        await self.count(input=counter.input_tokens, output=counter.output_tokens, calls=1)
        await self.audit(
            "model.used",
            f"model:{body.get('model', '')}",
            "ok",
            {"input_tokens": counter.input_tokens, "output_tokens": counter.output_tokens},
        )


class UsageCounter:
    """Reads ``usage`` from the SSE lines (or a JSON body) as they pass; never holds them."""

    def __init__(self) -> None:
        self.input_tokens = 0
        self.output_tokens = 0
        self._tail = b""

    def feed(self, chunk: bytes) -> None:
        lines = (self._tail + chunk).split(b"\n")
        self._tail = lines.pop()
        for line in lines:
            self._line(line)
        if self._tail.startswith(b"{") and self._tail.rstrip().endswith(b"}"):
            self._line(self._tail)  # a complete non-streaming JSON answer

    def _line(self, line: bytes) -> None:
        text = line[5:] if line.startswith(b"data:") else line
        if b'"usage"' not in text:
            return
        try:
            event = json.loads(text)
        except ValueError:
            return
        usage = (event.get("message") or {}).get("usage") or event.get("usage") or {}
        if event.get("type") in ("message_start", "message", None) or "message" in event:
            self.input_tokens = max(self.input_tokens, int(usage.get("input_tokens") or 0))
        self.output_tokens = max(self.output_tokens, int(usage.get("output_tokens") or 0))


def _model_refusal(policy: Effective) -> tuple[str, str] | None:
    """Exam mode that turns off every model feature closes the broker to the student too,
    so a student calling it directly (their hub token is in their environment) gets nothing."""
    refusals = [policy.refusal(f) for f in ("chat", "agent", "complete")]
    if all(refusals):
        return refusals[0]
    return None


async def _budget_refusal(
    b: Broker, caller: HubCaller, policy: Effective
) -> tuple[str, str] | None:
    left = await b.remaining(caller, policy)
    for kind, value in left.items():
        if value <= 0:
            period = "today" if kind == "daily_tokens" else "this week"
            limit = policy.budget()[kind]
            return "budget_exceeded", (
                f"your token budget for {period} ({limit} tokens) is used up; "
                "ask your instructor or wait for the next period"
            )
    return None


class MeHandler(BrokerHandler):
    """``GET <prefix>/api/me``: the student's effective policy and what budget is left."""

    async def get(self) -> None:
        b, caller = self.broker, self.caller
        try:
            policy = await b.policy_for(caller)
            remaining: dict[str, int] | None = await b.remaining(caller, policy)
            used: dict[str, int] | None = await b.state.used(caller.name)
        except StateUnavailable as e:
            if b.app.redis_failure_mode == "closed":
                self.fail(503, "broker_unavailable", f"usage limits cannot be checked: {e}")
                return
            policy = await _file_policy(b, caller)
            remaining = used = None
        body = {
            "user": caller.name,
            "groups": sorted(caller.groups),
            **policy.public(),
            "used": used,
            "remaining": remaining,
        }
        budget = await _budget_refusal(b, caller, policy) if remaining is not None else None
        body["budget_refusal"] = {"code": budget[0], "message": budget[1]} if budget else None
        feature = self.get_argument("feature", "")
        if feature:  # a server asks before using a feature: a refusal is a limit hit
            hit = policy.refusal(feature) or (budget if feature != "agent" else None)
            if hit is not None:
                await self.count(**{f"limit:{hit[0]}": 1})
                await self.audit("course.refused", f"feature:{feature}", hit[0])
        self.finish(body)


async def _file_policy(b: Broker, caller: HubCaller) -> Effective:
    return effective(b.files.values(), caller.groups)


class CourseHandler(BrokerHandler):
    """``GET/PATCH <prefix>/api/courses/<name>``: instructors of the course (or admins)."""

    async def _course(self, name: str) -> Course | None:
        if name not in self.broker.files:
            self.fail(404, "unknown_course", f"no course {name!r}")
            return None
        course = await self.broker.course(name)
        if not self.broker.teaches(self.caller, course):
            await self.audit("course.refused", f"course:{name}", "forbidden")
            self.fail(403, "forbidden", f"only instructors of {name} may do this")
            return None
        return course

    async def get(self, name: str) -> None:
        course = await self._course(name)
        if course is not None:
            self.finish({**course.raw(), "changes": await self.broker.state.changes(name)})

    async def patch(self, name: str) -> None:
        course = await self._course(name)
        if course is None:
            return
        try:
            changes = validate_changes(json.loads(self.request.body or b"null"))
            current = await self.broker.state.changes(name)
            merged = {**current, **changes}
            updated = self.broker.files[name].with_changes(merged)
        except (ValueError, CourseError) as e:
            self.fail(400, "invalid_change", str(e))
            return
        await self.broker.state.set_changes(name, merged)
        await self.audit("course.changed", f"course:{name}", "applied", {"changes": changes})
        log.info("aiide broker: %s changed course %s: %s", self.caller.name, name, changes)
        self.finish({**updated.raw(), "changes": merged})


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
    redis_url = Unicode("", config=True, help="Redis shared by broker replicas (limits, usage).")
    redis_failure_mode = Enum(
        ["open", "closed"], "closed", config=True, help="Redis down: refuse (closed) or admit."
    )
    redis_timeout = Float(2.0, config=True, help="Seconds to wait for Redis.")
    rate_limit = Unicode(
        "60/minute", config=True, help="Model calls per student when no course sets one."
    )
    db_path = Unicode("", config=True, help="sqlite file for the audit trail.")
    hub_api_url = Unicode(
        "http://127.0.0.1:8081/hub/api", config=True, help="Used when JUPYTERHUB_API_URL is unset."
    )
    upstream_timeout = Float(300.0, config=True, help="Seconds a model answer may take.")
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
        from .usage import usage_handlers

        broker = Broker(self)
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/aiide-broker/")
        prefix = "/" + prefix.strip("/") + "/"
        kw = {"broker": broker}
        handlers: list[Any] = [
            (prefix + "anthropic/v1/messages", MessagesHandler, kw),
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
