"""Inside a student's single-user server: the course policy in front of the gate.

``CourseGate`` wraps the gateway's gate: after its own checks (scopes, rate limits) it
asks the broker for the caller's course policy, refusing features exam mode turns off
(code ``exam_mode``) or a spent budget (``budget_exceeded``), with the broker's message
for the UI. When the broker cannot answer, model features fail fast with
``broker_unavailable`` instead of hanging.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiide_server_ext.seams import Caller, DelegatingGate, Gate, GateRefusal

from ..course import FEATURES

#: gate route class -> course feature
ROUTE_FEATURES = {rc: feature for feature, rcs in FEATURES.items() for rc in rcs}
MODEL_ROUTES = frozenset({"chat", "complete", "magic"})


#: Help-used token counts on their way to the broker (kept so they are not collected).
_RECORDING: set[Any] = set()

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
        self.tutor: Any = None  # tutoring.TutorGuard once the agent is there
        self.models = CourseModels()
        #: The agent's routers (their models' capabilities: is there a completion model?).
        self.routers: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def learn(self, policy: dict[str, Any]) -> None:
        """What the broker says of this server's user: the course's models, and whether
        they teach (the instructor API's scope ``course`` follows the course files)."""
        self.models.learn(policy)
        if self.tutor is not None:  # the help modes of the student's assignments
            self.tutor.learn(policy)
        user, teaches = str(policy.get("user") or ""), bool(policy.get("teaches"))
        current = getattr(self.inner, "policy", None)
        teachers = frozenset(getattr(current, "teachers", ()))
        wanted = teachers | {user} if teaches else teachers - {user}
        if user and current is not None and wanted != teachers:
            gateway: Any = self.inner
            gateway.policy = teaching_policy(current, wanted)

    def inner_gate(self) -> Gate:
        return self.inner

    async def record_model_usage(self, caller: Caller, **usage: Any) -> None:
        """The gateway's metering, and a chat's tokens counted to the assignment whose
        notebook the student's run is about (the dashboard's help used)."""
        await self.inner.record_model_usage(caller, **usage)
        path = self.tutor.current.get(caller.username) if self.tutor is not None else None
        if path and usage.get("feature") != "complete":
            import asyncio

            tokens = int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0)
            # In the background: the run's next step does not wait for the broker's count.
            task = asyncio.ensure_future(self.tutor.record_tokens(path, tokens))
            _RECORDING.add(task)
            task.add_done_callback(_RECORDING.discard)

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

    from ..course import periods

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
