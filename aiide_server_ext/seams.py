"""Contracts between the gateway and the parts that serve users (agent, knowledge).

The agent and knowledge parts call the gate through these methods only, so either
side can land first: without the gateway, ``OpenGate`` admits everyone (a plain
single-user ``jupyter lab``). The gateway part puts its implementation in the
tornado settings as ``aiide_gate``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class ApiError(Exception):
    """The one error type of aiide's routes: HTTP status, stable code, clear message.

    Plain classes raise it (or a subclass) and the handlers let it through; one
    ``write_error`` (``json_api.py``) renders it as ``{code, message, **extra}``.
    ``extra`` carries fields a client acts on (e.g. an install's progress)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.extra}


class GateRefusal(ApiError):
    """A request the gateway refuses."""


@dataclass(frozen=True)
class Caller:
    """Who is calling, as the gateway established it."""

    username: str
    scopes: frozenset[str] = frozenset({"*"})
    groups: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def has_scope(self, scope: str) -> bool:
        return "*" in self.scopes or scope in self.scopes

    @property
    def credential(self) -> str:
        """The gateway credential behind this caller, ``via:id`` (an API key, or a token's
        refresh family); "" for Jupyter's own login (a browser cookie, Jupyter's or
        JupyterHub's token)."""
        found = self.extra.get("family") or self.extra.get("credential_id")
        return f"{self.extra.get('via', 'gateway')}:{found}" if found else ""

    def to_dict(self) -> dict[str, Any]:
        """The caller as JSON (a run stores who started it). ``credential`` is kept for
        the record (it may not approve that run's calls); ``extra`` is not."""
        return {
            "username": self.username,
            "scopes": sorted(self.scopes),
            "groups": sorted(self.groups),
            "roles": sorted(self.roles),
            "credential": self.credential,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Caller:
        """The caller ``to_dict`` stored, acting as its user again (no credential)."""
        return cls(
            username=data["username"],
            scopes=frozenset(data.get("scopes", ["*"])),
            groups=frozenset(data.get("groups", [])),
            roles=frozenset(data.get("roles", [])),
        )


class Gate(Protocol):
    def caller(self, handler: Any) -> Caller:
        """The caller of an authenticated tornado handler (HTTP or WebSocket)."""
        ...

    async def admit(self, caller: Caller, route_class: str, scope: str | None = None) -> None:
        """Raise GateRefusal (403 scope, 429 rate limit, 402/429 quota) or return."""
        ...

    async def record_model_usage(
        self,
        caller: Caller,
        *,
        provider: str,
        model: str,
        feature: str,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> None:
        """``input_tokens`` includes the prompt-cache reads and writes, which are also
        given apart (they are priced apart)."""
        ...

    async def audit(
        self,
        caller: Caller | None,
        action: str,
        target: str,
        outcome: str,
        detail: dict[str, Any] | None = None,
    ) -> None: ...


class OpenGate:
    """No gateway loaded: everyone authenticated by Jupyter may do everything."""

    def caller(self, handler: Any) -> Caller:
        user = getattr(handler, "current_user", None)
        name = getattr(user, "username", None) or "anonymous"
        return Caller(username=str(name))

    async def admit(self, caller: Caller, route_class: str, scope: str | None = None) -> None:
        return None

    async def record_model_usage(
        self,
        caller: Caller,
        *,
        provider: str,
        model: str,
        feature: str,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> None:
        return None

    async def audit(
        self,
        caller: Caller | None,
        action: str,
        target: str,
        outcome: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        return None


class DelegatingGate:
    """A gate that hands every call to another gate: wrappers (the agent's late-bound gate,
    the hub's course gate) subclass it and override only what they change."""

    def inner_gate(self) -> Gate:
        raise NotImplementedError

    def caller(self, handler: Any) -> Caller:
        return self.inner_gate().caller(handler)

    async def admit(self, caller: Caller, route_class: str, scope: str | None = None) -> None:
        await self.inner_gate().admit(caller, route_class, scope=scope)

    async def record_model_usage(self, caller: Caller, **usage: Any) -> None:
        await self.inner_gate().record_model_usage(caller, **usage)

    async def audit(
        self,
        caller: Caller | None,
        action: str,
        target: str,
        outcome: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        await self.inner_gate().audit(caller, action, target, outcome, detail)


def gate_of(settings: dict[str, Any]) -> Gate:
    gate: Gate = settings.get("aiide_gate") or OpenGate()
    return gate
