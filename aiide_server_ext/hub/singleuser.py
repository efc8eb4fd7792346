"""Inside a student's single-user server: the course policy in front of the gate.

``CourseGate`` wraps the gateway's gate: after its own checks (scopes, rate limits) it
asks the broker for the caller's course policy, refusing features exam mode turns off
(code ``exam_mode``) or a spent budget (``budget_exceeded``), with the broker's message
for the UI. When the broker cannot answer, model features fail fast with
``broker_unavailable`` instead of hanging.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from jupyter_server.base.handlers import APIHandler
from tornado import web
from traitlets import Bool, Dict, Float, Unicode
from traitlets.config import Configurable

from aiide_server_ext.json_api import JsonApi
from aiide_server_ext.seams import Caller, DelegatingGate, Gate, GateRefusal, gate_of

from .course import FEATURES

#: gate route class -> course feature
ROUTE_FEATURES = {rc: feature for feature, rcs in FEATURES.items() for rc in rcs}
MODEL_ROUTES = frozenset({"chat", "complete", "magic"})
CHAT_SOCKET = "/aiide/api/chat/ws"


class AiideHub(Configurable):  # type: ignore[misc]
    """``c.AiideHub.*`` in the single-user server's config."""

    broker_url = Unicode(
        "",
        config=True,
        help="The broker's URL as this server reaches it, e.g. "
        "http://127.0.0.1:8765/services/aiide-broker/ (default: $AIIDE_BROKER_URL).",
    )
    timeout = Float(5.0, config=True, help="Seconds to wait for the broker.")
    role_groups = Dict(
        config=True,
        help="Hub role -> groups its holders count as here (so c.Gateway.group_roles gives "
        "them aiide roles), e.g. {'instructor': ['instructors']}; the broker's "
        "c.BrokerApp.role_groups should say the same.",
    )
    sandboxed_kernels_only = Bool(
        True,
        config=True,
        help="Offer only sandboxed kernelspecs in this server (others are hidden from the "
        "launcher and refused by name). Under a hub every user's server runs on shared "
        "machines next to the broker; an unsandboxed kernel runs code as the server's user, "
        "which can read what that user can (with the 'simple' spawner: the broker's "
        "process and files). Turn off only for servers of trusted staff.",
    )
    terminals = Bool(
        False,
        config=True,
        help="Offer terminals in this server. Off by default under a hub: a terminal is a "
        "shell outside the sandbox, as the server's user (what sandboxed_kernels_only "
        "keeps students from), and students' roles hold no 'terminals' scope, so the "
        "launcher's Terminal card would only fail. Turn on for servers of trusted staff.",
    )
    route_providers = Bool(
        True,
        config=True,
        help="Point the agent's anthropic and openai providers at the broker, with the "
        "hub token as their key (hub/providers.py); a provider spec with "
        "'via_broker': False is left alone.",
    )


#: The role a course's instructor gets in their server: the instructor API's scope.
TEACHER_ROLE = "course-instructor"


def teaching_policy(policy: Any, teachers: frozenset[str]) -> Any:
    """The gateway's policy with ``teachers`` (whom the broker says teach a course, from
    the course files' ``instructors``) holding ``course`` too: instructors are named in
    one place, not also in this server's ``c.Gateway.group_roles``."""
    from dataclasses import dataclass, fields

    from aiide_server_ext.gateway.scopes import Policy

    if not isinstance(policy, Policy):
        return policy

    @dataclass(frozen=True)
    class TeachingPolicy(Policy):  # type: ignore[misc]
        teachers: frozenset[str] = frozenset()

        def roles_for(self, username: str, groups: Any, *, member: bool = False) -> frozenset[str]:
            roles = super().roles_for(username, groups, member=member)
            if username not in self.teachers or "course" in self.scopes_for(
                username, roles, member=member
            ):
                return roles  # a role of this server's config says so already
            return roles | {TEACHER_ROLE}

    values = {f.name: getattr(policy, f.name) for f in fields(Policy)}
    values["roles"] = {**policy.roles, TEACHER_ROLE: frozenset({"course"})}
    return TeachingPolicy(**values, teachers=teachers)


class BrokerClient:
    def __init__(self, url: str, token: str, timeout: float) -> None:
        self.url = url.rstrip("/") + "/"
        self.token = token
        self.timeout = timeout

    async def raw(
        self, method: str, path: str, body: bytes | None = None, token: str | None = None
    ) -> tuple[int, bytes, str]:
        """(status, body, content type); GateRefusal(503) when the broker does not answer."""
        from tornado.httpclient import AsyncHTTPClient, HTTPClientError

        try:
            r = await AsyncHTTPClient().fetch(
                self.url + path,
                method=method,
                body=body,
                headers={
                    "Authorization": f"token {token or self.token}",
                    "Content-Type": "application/json",
                },
                raise_error=False,
                request_timeout=self.timeout,
                connect_timeout=self.timeout,
            )
            if r.code == 599:
                raise OSError(str(r.error))
        except (OSError, HTTPClientError) as e:  # timeouts raise the latter
            raise GateRefusal(
                503, "broker_unavailable", f"the aiide broker is not answering ({e}); try later"
            ) from None
        return r.code, r.body or b"", r.headers.get("Content-Type", "application/json")

    async def call(
        self, method: str, path: str, body: bytes | None = None, token: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        status, raw, _ = await self.raw(method, path, body, token)
        try:
            return status, dict(json.loads(raw or b"{}"))
        except ValueError:
            raise GateRefusal(
                503, "broker_unavailable", "the aiide broker answered something else than JSON"
            ) from None

    async def me(self, feature: str = "") -> dict[str, Any]:
        status, body = await self.call("GET", "api/me" + (f"?feature={feature}" if feature else ""))
        if status != 200:
            raise GateRefusal(status, str(body.get("code", "broker_error")), _message(body))
        return body


def _message(body: dict[str, Any]) -> str:
    return str(body.get("message") or (body.get("error") or {}).get("message") or body)


class CourseGate(DelegatingGate):
    """The gate with the course policy in front: same contract, delegates the rest."""

    def __init__(self, inner: Gate, broker: BrokerClient) -> None:
        self.inner = inner
        self.broker = broker
        self.tool_policy: Any = None  # hub.tools.CourseToolPolicy once the agent is there
        self.models = CourseModels()
        #: The agent's routers (their models' capabilities: is there a completion model?).
        self.routers: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def learn(self, policy: dict[str, Any]) -> None:
        """What the broker says of this server's user: the course's models, and whether
        they teach (the instructor API's scope ``course`` follows the course files)."""
        self.models.learn(policy)
        user, teaches = str(policy.get("user") or ""), bool(policy.get("teaches"))
        current = getattr(self.inner, "policy", None)
        teachers = frozenset(getattr(current, "teachers", ()))
        wanted = teachers | {user} if teaches else teachers - {user}
        if user and current is not None and wanted != teachers:
            gateway: Any = self.inner
            gateway.policy = teaching_policy(current, wanted)

    def inner_gate(self) -> Gate:
        return self.inner

    async def admit(self, caller: Caller, route_class: str, scope: str | None = None) -> None:
        await self.inner.admit(caller, route_class, scope=scope)
        feature = ROUTE_FEATURES.get(route_class)
        if feature is None:
            return
        try:
            policy = await self.broker.me(feature)
        except GateRefusal as e:
            await self.inner.audit(caller, "course.unavailable", f"feature:{feature}", e.code)
            raise
        disabled = policy.get("exam", {}).get("disabled", [])
        if self.tool_policy is not None:
            off = (
                str(policy["exam"].get("message") or "Exam mode is on.")
                if "agent" in disabled
                else ""
            )
            self.tool_policy.learn(caller.username, policy.get("tools") or {}, no_execution=off)
        self.learn(policy)
        if route_class == "complete":
            lacking = self.models.no_completion(self.routers)
            if lacking:
                await self.inner.audit(caller, "course.refused", "feature:complete", lacking[0])
                raise GateRefusal(403, *lacking)
        if feature in disabled:
            message = str(policy["exam"].get("message") or "exam mode is on")
            await self.inner.audit(caller, "course.refused", f"feature:{feature}", "exam_mode")
            raise GateRefusal(403, "exam_mode", message)
        refusal = policy.get("budget_refusal")
        if route_class in MODEL_ROUTES and refusal:
            message = str(refusal["message"])
            renews = renewal(policy)
            if renews is not None:  # "wait for the next period": say when it starts
                message += f" (the next period starts {_utc(renews)})"
            raise GateRefusal(429, str(refusal["code"]), message)


def budget_statuses(policy: dict[str, Any], now: float | None = None) -> list[Any]:
    """The course budget that applies to the student (the broker's ``api/me``) as quota
    statuses, so the usage panel and the status bar show it like any other quota: limit,
    used, left and when it renews. Empty while the broker cannot count (Redis down)."""
    from aiide_server_ext.gateway.quotas import QuotaStatus

    from .course import periods

    used = policy.get("used")
    budget = policy.get("budget") or {}
    if not isinstance(used, dict) or not isinstance(budget, dict):
        return []
    now = time.time() if now is None else now
    ends = periods(now)
    names = policy.get("own_budget") or policy.get("courses") or []
    scope = ("own budget in " if policy.get("own_budget") else "course ") + ", ".join(names)
    return [
        QuotaStatus(scope, kind, float(limit), float(used.get(kind, 0)), now + ends[kind][1])
        for kind, limit in sorted(budget.items())
        if kind in ends
    ]


def renewal(policy: dict[str, Any], now: float | None = None) -> float | None:
    """When the spent budget renews: the latest end among the periods used up."""
    spent = [s for s in budget_statuses(policy, now) if s.used >= s.limit]
    return max((s.resets_at for s in spent), default=None)


def _utc(moment: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(moment))


class CourseModels:
    """The course's allowed models, as the broker last said (at start and before every
    chat, agent step and completion), applied to the agent's router: the picker, the
    status bar and the default model only ever name a model the course allows, so the
    server never asks the broker for one it would refuse (no local list to keep in sync).
    Matching is the broker's (``Effective.model_allowed``): the id or a dated version."""

    def __init__(self) -> None:
        #: Allowed model ids; None: not known yet, () : the course allows every model.
        self.allowed: tuple[str, ...] | None = None

    def learn(self, policy: dict[str, Any]) -> None:
        models = policy.get("models")
        if isinstance(models, list):
            self.allowed = tuple(str(m) for m in models)

    def permits(self, spec: Any, caller: Any = None) -> bool:
        if not self.allowed:
            return True
        model = str(getattr(spec, "model", "") or getattr(spec, "name", ""))
        return any(model == m or model.startswith(m + "-") for m in self.allowed)

    def no_completion(self, routers: list[Any]) -> tuple[str, str] | None:
        """(code, message) when the course's models leave inline completion without a
        model here: the instructor's switch says so, and so does the student's refusal
        (instead of a bare 'no model is configured')."""
        if not self.allowed or not routers:
            return None
        for router in routers:
            if any("complete" in m.capabilities and self.permits(m) for m in router.models):
                return None
        able = sorted({m.model for r in routers for m in r.models if "complete" in m.capabilities})
        return "no_completion_model", (
            f"inline completion is off: none of the course's models ({', '.join(self.allowed)}) "
            f"does completion on this server (models that do: {', '.join(able) or 'none'}); "
            "the instructor can add one to the course's models"
        )


class CourseQuotas:
    """The gateway's quotas with the course budget added to what ``status`` reports (the
    usage API behind the status bar and usage panel). Checks stay the gateway's: the
    course budget is enforced by the gate above and by the broker."""

    def __init__(self, inner: Any, broker: BrokerClient) -> None:
        self.inner = inner
        self.broker = broker

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def status(self, user: str, groups: Any) -> list[Any]:
        mine = list(await self.inner.status(user, groups))
        try:
            policy = await self.broker.me()
        except GateRefusal:
            return mine  # the broker is away: the gate refuses model calls meanwhile
        return mine + budget_statuses(policy)


class CourseHandler(JsonApi, APIHandler):  # type: ignore[misc]
    """``/aiide/api/course`` (my policy) and ``/aiide/api/course/<name>`` (instructors):
    forwarded to the broker, which checks the instructor again with the hub."""

    auth_resource = "aiide"

    async def _forward(self, method: str, name: str | None) -> None:
        broker: BrokerClient = self.settings["aiide_broker"]
        gate = gate_of(self.settings)
        caller = gate.caller(self)
        if name is not None and not caller.has_scope("course"):
            await gate.audit(caller, "course.refused", f"course:{name}", "forbidden")
            self.set_status(403)
            self.finish(
                {"code": "insufficient_scope", "message": "changing a course needs 'course'"}
            )
            return
        path = "api/me" if name is None else f"api/courses/{name}"
        body = self.request.body if method == "PATCH" else None
        try:
            status, reply = await broker.call(method, path, body)
        except GateRefusal as e:
            status, reply = e.status, e.as_dict()
        if method == "PATCH" and status == 200 and isinstance(gate, CourseGate):
            reply["warnings"] = course_warnings(reply, gate.routers)
        self.set_status(status)
        self.finish(reply)

    @web.authenticated
    async def get(self, name: str | None = None) -> None:
        await self._forward("GET", name)

    @web.authenticated
    async def patch(self, name: str) -> None:
        await self._forward("PATCH", name)


def course_warnings(course: dict[str, Any], routers: list[Any]) -> list[dict[str, str]]:
    """What a course change turns off for its students that the instructor may not
    expect (the change is stored: the broker can serve it), shown with the change."""
    models = CourseModels()
    models.learn(course)
    lacking = models.no_completion(routers)
    return [{"code": lacking[0], "message": lacking[1]}] if lacking else []


class InstructorApiHandler(JsonApi, APIHandler):  # type: ignore[misc]
    """``GET /aiide/api/course-admin/{kind}`` (usage, limits, audit, courses; query passed on): the
    broker's instructor API, same-origin for the dashboard. Needs scope ``course`` here;
    the broker checks the instructor again with the hub."""

    auth_resource = "aiide"

    @web.authenticated
    async def get(self, kind: str) -> None:
        broker: BrokerClient = self.settings["aiide_broker"]
        gate = gate_of(self.settings)
        caller = gate.caller(self)
        if not caller.has_scope("course"):
            await gate.audit(caller, f"{kind}.read", "course-admin", "forbidden")
            self.set_status(403)
            self.finish({"code": "insufficient_scope", "message": "instructors only ('course')"})
            return
        query = self.request.query
        try:
            status, body, ctype = await broker.raw(
                "GET", f"api/{kind}" + (f"?{query}" * bool(query))
            )
        except GateRefusal as e:
            self.set_status(e.status)
            self.finish(e.as_dict())
            return
        self.set_status(status)
        self.set_header("Content-Type", ctype)
        self.finish(body)


def _openapi() -> dict[str, Any]:
    """This extension's routes for ``/aiide/api/openapi.json``."""
    from aiide_server_ext.gateway.openapi import _op, _path_param

    return {
        "/aiide/api/course": {"get": _op("The caller's course policy (from the broker)", 401, 503)},
        "/aiide/api/course/{name}": {
            "parameters": _path_param("name"),
            "get": _op("A course (instructors)", 401, 403, 404, 503),
            "patch": _op(
                "Change a course at run time: exam, budget, models, rate_limits, tools, "
                "student_budgets (a student's own budget; null: the course's) "
                "(instructors; audited)",
                400,
                401,
                403,
                503,
            ),
        },
        "/aiide/api/course-share": {
            "get": _op("The conversations the caller shares with their instructors", 401, 503)
        },
        "/aiide/api/course-share/{ref}": {
            "parameters": _path_param("ref"),
            "post": _op(
                "Share one's own conversation <ref> with one's instructors (a copy, audited; "
                "body {note})",
                401,
                404,
                409,
                413,
                503,
            ),
            "delete": _op("Stop sharing: the share <ref> is deleted (audited)", 401, 403, 404),
        },
        "/aiide/api/course-admin/{kind}": {
            "parameters": _path_param("kind"),
            "get": _op(
                "Instructor API: usage | limits | audit | courses | roster | export | shares "
                "| shares/<id> (JSON or ?format=csv)",
                401,
                403,
            ),
        },
    }


#: Background tasks of this extension (kept, so they are not garbage-collected).
_TASKS: set[Any] = set()


def _learn_at_start(gate: CourseGate, broker: BrokerClient, serverapp: Any) -> None:
    """Ask the broker for the course's models once the server runs, so the picker the
    student first sees is already the course's (and an instructor's dashboard is there)."""
    import asyncio

    from tornado.ioloop import IOLoop

    async def learn() -> None:
        try:
            gate.learn(await broker.me())
        except GateRefusal as e:
            serverapp.log.warning("aiide hub: course models not known yet: %s", e.message)

    def start() -> None:
        task = asyncio.ensure_future(learn())
        _TASKS.add(task)
        task.add_done_callback(_TASKS.discard)

    IOLoop.current().add_callback(start)


def _no_terminals(serverapp: Any) -> None:
    """No terminal service, and the lab told so (its launcher shows no Terminal card),
    whichever of this and the terminals extension loads first."""
    from tornado.ioloop import IOLoop

    serverapp.terminals_enabled = False
    settings = serverapp.web_app.settings
    settings["terminals_available"] = False
    IOLoop.current().add_callback(settings.__setitem__, "terminals_available", False)


class ChatSocketXsrfNoise(logging.Filter):
    """Drops JupyterHub's "Skipping XSRF check for insecure request GET …/chat/ws", logged
    for every chat socket a browser opens over plain http to a non-local address: the
    browser sends no ``Sec-Fetch-Mode`` there, so the hub cannot see the request is a
    WebSocket handshake, which it exempts from XSRF anyway (the handshake is
    origin-checked by jupyter_server). The warning said nothing true and hid real ones."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (
            message.startswith("Skipping XSRF check for insecure request GET ")
            and message.endswith(CHAT_SOCKET)
        )


def load(serverapp: Any) -> None:
    config = AiideHub(config=serverapp.config)
    app_log = logging.getLogger("tornado.application")
    if not any(isinstance(f, ChatSocketXsrfNoise) for f in app_log.filters):
        app_log.addFilter(ChatSocketXsrfNoise())
    if not config.terminals:
        _no_terminals(serverapp)
    if config.sandboxed_kernels_only:
        from aiide_server_ext.kernelspecs import install_defaults

        install_defaults(serverapp, hide_unsandboxed=True)
    url = config.broker_url or os.environ.get("AIIDE_BROKER_URL", "")
    if not url:
        serverapp.log.warning("aiide hub: no c.AiideHub.broker_url: course policies are off")
        return
    broker = BrokerClient(url, os.environ.get("JUPYTERHUB_API_TOKEN", ""), config.timeout)
    settings = serverapp.web_app.settings
    inner = gate_of(settings)
    if config.role_groups and hasattr(inner, "hub_role_groups"):
        inner.hub_role_groups = {str(r): frozenset(g) for r, g in config.role_groups.items()}
    gate = CourseGate(inner, broker)
    gateway: Any = inner  # the gateway's own gate (the usage API reads its quotas)
    if getattr(gateway, "quotas", None) is not None:
        gateway.quotas = CourseQuotas(gateway.quotas, broker)
    settings["aiide_gate"] = gate
    settings["aiide_broker"] = broker
    # The agent part reads the gate from its extension's own settings dict.
    from .tools import install

    for ext in serverapp.extension_manager.extension_apps.get("aiide_server_ext", ()):
        ext.settings["aiide_gate"] = gate
        gate.tool_policy = install(ext.settings) or gate.tool_policy
    if gate.tool_policy is None:
        gate.tool_policy = install(settings)
    if gate.tool_policy is None:
        serverapp.log.warning("aiide hub: no agent found: course tool policies are off")
    routers = [
        router
        for place in (*(e.settings for e in serverapp.extension_manager.extension_apps.get(
            "aiide_server_ext", ())), settings)
        if (router := getattr(place.get("aiide_agent"), "router", None)) is not None
    ]  # fmt: skip
    for router in routers:
        router.model_filter = gate.models.permits
    gate.routers = routers
    _learn_at_start(gate, broker, serverapp)  # the models, and whether the user teaches
    if config.route_providers:
        from . import providers

        apps = serverapp.extension_manager.extension_apps.get("aiide_server_ext", ())
        places = [*(e.settings for e in apps), settings]
        routed = {name for place in places for name in providers.install(place, url)}
        serverapp.log.info("aiide hub: providers through the broker: %s", sorted(routed))
        if routed:  # the broker holds the keys: the status must not ask the student for one
            for place in places:
                status = place.get("aiide_status")
                if status is not None:
                    status.model_source = "the course's key broker"
    base = serverapp.web_app.settings.get("base_url", "/")
    serverapp.web_app.add_handlers(
        ".*$",
        [
            (base.rstrip("/") + "/aiide/api/course", CourseHandler),
            (base.rstrip("/") + r"/aiide/api/course/(?P<name>[\w.-]+)", CourseHandler),
            (
                base.rstrip("/") + r"/aiide/api/course-admin/(?P<kind>"
                r"usage|limits|audit|courses|roster|export|shares(?:/[\w-]{1,64})?)",
                InstructorApiHandler,
            ),
        ],
    )
    from .share_client import share_routes

    serverapp.web_app.add_handlers(".*$", share_routes(base))
    settings.setdefault("aiide_openapi_paths", {}).update(_openapi())
    serverapp.log.info("aiide hub: course policies from %s", url)
