"""The gate: the one object the rest of aiide talks to (``settings["aiide_gate"]``).

It implements the ``Gate`` contract of ``seams.py`` for the agent and knowledge
parts (caller, admit, record_model_usage, audit) and the two hooks jupyter_server
calls through the identity provider and the authorizer (authenticate, authorize).
The server's owner (Jupyter token or password) holds ``owner_scopes`` (all, by
default) and is exempt from limits and quotas unless ``limit_owner`` is set, so
a single user notices none of this.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from aiide_server_ext.seams import Caller, Gate
from aiide_server_ext.stores.conn import Conn

from ..stores.errors import StoreError
from .apikeys import ApiKeyService
from .audit import AuditLog
from .authorizer import ResourceScopes
from .errors import GatewayError, http_error, missing_scope
from .identity import GatewayUser
from .kernels import KernelMeter
from .metering import UsageMeter
from .quotas import KERNEL_KINDS, MODEL_KINDS, Quotas
from .ratelimit import Decision, MemoryRateLimiter, RateLimit, RateLimiter, RateLimits
from .redaction import RedactingFilter, Redactor
from .revocation import revoke_user_in
from .routes import RouteTable
from .scopes import Policy, intersect
from .store import Store
from .tokens import Principal, TokenService
from .transform import stash_headers

log = logging.getLogger("aiide.gateway")

#: Route classes whose use spends model tokens, or kernel time.
MODEL_ROUTE_CLASSES = frozenset({"chat", "complete", "agent", "magic"})
KERNEL_ROUTE_CLASSES = frozenset({"execute"})
KERNEL_RESOURCES = frozenset({"kernels", "sessions"})


class GatewayGate:
    def __init__(
        self,
        *,
        policy: Policy,
        store: Store,
        audit: AuditLog,
        tokens: TokenService,
        keys: ApiKeyService,
        limiter: RateLimiter,
        limits: RateLimits,
        meter: UsageMeter,
        quotas: Quotas,
        kernels: KernelMeter | None,
        redactor: Redactor,
        redaction_filter: RedactingFilter,
        resources: ResourceScopes,
        resource_classes: Mapping[str, str],
        limit_owner: bool = False,
        max_body_bytes: int = 65536,
        hub_identity: bool = False,
        routes: RouteTable | None = None,
    ) -> None:
        self.policy = policy
        self.store = store
        self.audit_log = audit
        self.tokens = tokens
        self.keys = keys
        self.limiter = limiter
        self.limits = limits
        self.meter = meter
        self.quotas = quotas
        self.kernels = kernels
        self.redactor = redactor
        self.redaction_filter = redaction_filter
        self.resources = resources
        #: What each route of the server needs (``routes.py``), enforced by ``guard.py``.
        self.routes = routes or RouteTable()
        self.resource_classes = dict(resource_classes)
        self.limit_owner = limit_owner
        self.max_body_bytes = max_body_bytes
        self.hub_identity = hub_identity
        #: Hub role -> groups its holders count as (``c.AiideHub.role_groups``, set by the
        #: aiide_server_ext.hub extension), so hub roles map to roles like hub groups do.
        self.hub_role_groups: dict[str, frozenset[str]] = {}
        owner_groups = policy.groups_for(policy.owner)
        self.owner = Caller(
            username=policy.owner,
            scopes=policy.owner_scopes,
            groups=owner_groups,
            roles=frozenset({"owner"}),
            extra={"via": "jupyter"},
        )
        self._refusal_audits = MemoryRateLimiter()

    # -- who ------------------------------------------------------------------------

    def caller(self, handler: Any) -> Caller:
        cached: Caller | None = getattr(handler, "_aiide_caller", None)
        if cached is not None:
            return cached
        user = getattr(handler, "current_user", None)
        if isinstance(user, GatewayUser) and user.caller is not None:
            caller = user.caller
        elif user is None:
            caller = Caller(username="anonymous", scopes=frozenset(), extra={"via": "none"})
        else:
            caller = self._jupyter_caller(user)
        handler._aiide_caller = caller
        return caller

    def _jupyter_caller(self, user: Any) -> Caller:
        """Jupyter's own login: the owner, or under JupyterHub the hub user with roles.

        With ``hub_identity`` the server's owner is no exception: a student's own server
        gives the student the roles of their hub groups, not every scope."""
        hub = getattr(user, "hub_user", None)
        if isinstance(hub, dict) and hub.get("name"):
            name = str(hub["name"])
            member = self.hub_identity
            if member or name != self.policy.owner:
                hub_groups = {str(g) for g in hub.get("groups") or ()}
                for role in hub.get("roles") or ():
                    hub_groups |= self.hub_role_groups.get(str(role), frozenset())
                groups = self.policy.groups_for(name, hub_groups)
                roles = self.policy.roles_for(name, groups, member=member)
                scopes = self.policy.scopes_for(name, roles, member=member)
                return Caller(name, scopes, groups, roles, extra={"via": "jupyterhub"})
        return self.owner

    def caller_for(self, principal: Principal) -> Caller:
        """Effective scopes: the credential's own, intersected with its owner's."""
        groups = self.policy.groups_for(principal.username, principal.groups)
        roles = self.policy.roles_for(principal.username, groups)
        held = self.policy.scopes_for(principal.username, roles)
        return Caller(
            username=principal.username,
            scopes=intersect(principal.scopes, held),
            groups=groups,
            roles=roles,
            extra={
                "via": principal.via,
                "credential_id": principal.credential_id,
                # A token refreshed stays the same credential (for approvals).
                "family": principal.family,
                # Lineage (revocation cascades): what a token or key minted now descends
                # from, and the time it may not outlive.
                "source": principal.source,
                "source_expires_at": principal.source_expires_at,
                "expires_at": principal.expires_at,
            },
        )

    async def authenticate(self, handler: Any, kind: str, value: str) -> Caller:
        """For the identity provider; a refusal is audited (at most 30 a minute per address)."""
        try:
            if kind == "jwt":
                principal = await self.tokens.verify_access(value)
            else:
                principal = await self.keys.verify(value)
        except (GatewayError, StoreError) as e:
            await self._audit_refusal(handler, kind, e)
            raise
        return self.caller_for(principal)

    async def _audit_refusal(self, handler: Any, kind: str, e: GatewayError | StoreError) -> None:
        ip = str(getattr(handler.request, "remote_ip", "") or "")
        log.warning("aiide gateway: refused %s credential from %s: %s", kind, ip, e.code)
        if e.status != 401 or not self._refusal_audits.hit_now(ip, RateLimit(30, 60)).allowed:
            return
        try:
            await self.audit_log.record(
                None, "token.refused", f"{kind}:{handler.request.path}", e.code, {"ip": ip}
            )
        except (GatewayError, StoreError) as store_error:
            log.warning("aiide gateway: refusal not audited: %s", store_error.message)

    def is_owner(self, caller: Caller) -> bool:
        return caller.username == self.policy.owner and "owner" in caller.roles

    def exempt(self, caller: Caller) -> bool:
        return self.is_owner(caller) and not self.limit_owner

    # -- may they -----------------------------------------------------------------------

    async def authorize(self, handler: Any, action: str, resource: str) -> bool:
        """For the authorizer: scopes; limits and kernel quotas on the request's own resource."""
        caller = self.caller(handler)
        scope = self.resources.required(resource, action)
        primary = resource == getattr(handler, "auth_resource", None) and not getattr(
            handler, "_aiide_checked", False
        )
        if primary:
            handler._aiide_checked = True
        if scope is not None and not caller.has_scope(scope):
            if primary:
                handler._aiide_missing_scope = scope
                self.stash_headers(handler, missing_scope(scope).headers)
            return False
        if primary and not self.exempt(caller):
            try:
                route_class = self.resource_classes.get(resource)
                if route_class:
                    await self.limit(caller, route_class, handler)
                starts_kernel = resource in KERNEL_RESOURCES and action == "write"
                if starts_kernel and handler.request.method == "POST":
                    await self._check_quota(caller, KERNEL_KINDS)
            except (GatewayError, StoreError) as e:
                self.stash_headers(handler, e.headers)
                raise http_error(e) from None
        return True

    async def admit(self, caller: Caller, route_class: str, scope: str | None = None) -> None:
        """For the agent and knowledge parts, before each chat, completion or execution."""
        if scope is not None and not caller.has_scope(scope):
            raise missing_scope(scope)
        if self.exempt(caller):
            return
        await self.limit(caller, route_class, _current_handler())
        if route_class in MODEL_ROUTE_CLASSES:
            await self._check_quota(caller, MODEL_KINDS)
        elif route_class in KERNEL_ROUTE_CLASSES:
            await self._check_quota(caller, KERNEL_KINDS)

    async def limit(self, caller: Caller, route_class: str, handler: Any = None) -> Decision | None:
        limit = self.limits.for_caller(caller.roles, route_class)
        if limit is None:
            return None
        decision = await self.limiter.hit(f"{route_class}:{caller.username}", limit)
        if handler is not None:
            self.stash_headers(handler, decision.headers())
        if not decision.allowed:
            raise GatewayError(
                429,
                "rate_limited",
                f"rate limit for {route_class} ({limit.describe()}) reached; "
                f"retry in {max(1, math.ceil(decision.retry_after))}s",
                decision.headers(),
            )
        return decision

    async def _check_quota(self, caller: Caller, kinds: frozenset[str]) -> None:
        try:
            await self.quotas.check(caller.username, caller.groups, kinds)
        except (GatewayError, StoreError) as e:
            if e.code == "quota_exceeded":
                await self.audit(
                    caller,
                    "quota.exceeded",
                    f"user:{caller.username}",
                    "refused",
                    {"message": e.message},
                )
            raise

    @staticmethod
    def stash_headers(handler: Any, headers: Mapping[str, str]) -> None:
        request = getattr(handler, "request", None)
        if request is not None:
            stash_headers(request, headers)

    # -- what it costs, what happened -------------------------------------------------------

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
        """Never fails the model call that already happened; a store error is logged."""
        try:
            await self.meter.record_model(
                caller.username,
                caller.groups,
                provider=provider,
                model=model,
                feature=feature,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cache_read_tokens=cache_read_tokens,
                cache_write_tokens=cache_write_tokens,
            )
        except (GatewayError, StoreError) as e:
            log.warning("aiide gateway: model usage of %s not recorded: %s", caller.username, e)

    async def audit(
        self,
        caller: Caller | None,
        action: str,
        target: str,
        outcome: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Raises a 503 ``GatewayError`` if the event could not be written."""
        actor = caller.username if caller is not None else None
        await self.audit_log.record(actor, action, target, outcome, detail)

    # -- revocation ----------------------------------------------------------------------------

    async def revoke_user(self, caller: Caller, username: str) -> dict[str, Any]:
        """End every credential of ``username`` (keys, derived keys, families, tokens).

        One transaction; this server refuses them as soon as it returns, the others at
        their next revocation poll (``c.Gateway.revocation_refresh``)."""
        if not username or len(username) > 256:
            raise GatewayError(400, "invalid_user", "a user name is 1 to 256 characters")
        now = self.tokens.clock()
        reason = f"user revoked by {caller.username}"

        def revoke_in(c: Conn) -> tuple[list[str], int]:
            keys, families = revoke_user_in(c, username, now, reason)
            self.audit_log.append(
                c,
                caller.username,
                "user.credentials_revoked",
                f"user:{username}",
                "revoked",
                {"keys": keys, "families": families},
            )
            return keys, families

        keys, families = await self.store.awrite(revoke_in)
        self.keys.forget(keys)
        self.tokens.note_revoked(user=(username, now))
        return {"user": username, "revoked_keys": keys, "revoked_families": families}

    def kernel_caller(self, kernel_id: str) -> Caller | None:
        """Who started a kernel through the server (for ``%ai``); None: no request did."""
        started = self.kernels.started_by(kernel_id) if self.kernels is not None else None
        return started[0] if started is not None else None

    async def kernel_caller_revoked(self, kernel_id: str) -> str | None:
        """A refusal code when the credential that started the kernel has since ended."""
        started = self.kernels.started_by(kernel_id) if self.kernels is not None else None
        if started is None:
            return None
        caller, since = started
        extra = caller.extra
        via = extra.get("via")
        if via not in ("jwt", "apikey"):
            return None  # a Jupyter login: ended by Jupyter (or the hub), not here
        sxp = extra.get("source_expires_at")
        return await self.tokens.revoked_since(
            caller.username,
            since,
            # A key's own revocation is its source's ("apikey:<id>"); a JWT has a jti.
            credential_id=str(extra.get("credential_id") or "") if via == "jwt" else "",
            family=str(extra.get("family") or ""),
            source=str(extra.get("source") or ""),
            source_expires_at=float(sxp) if isinstance(sxp, int | float) else None,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def audit_policy(self) -> None:
        """Record the policy in force when it differs from the last server's (policy changes)."""
        fingerprint = self.policy.fingerprint()

        def compare(c: Conn) -> None:
            row = c.execute("SELECT value FROM meta WHERE key = 'policy'").fetchone()
            if row is not None and row[0] == fingerprint:
                return
            c.execute(
                "INSERT INTO meta VALUES ('policy', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (fingerprint,),
            )
            action = "policy.loaded" if row is None else "policy.changed"
            self.audit_log.append(c, None, action, "policy", "applied", self.policy.describe())

        try:
            await self.store.awrite(compare)
        # The server still starts; the problem is in the log.
        except (GatewayError, StoreError) as e:
            log.warning("aiide gateway: policy not audited: %s", e.message)

    async def close(self) -> None:
        await self.keys.drain()
        if self.kernels is not None:
            await self.kernels.drain()
        await self.limiter.close()
        self.store.close()


def _current_handler() -> Any:
    from jupyter_server.base.call_context import CallContext

    return CallContext.get(CallContext.JUPYTER_HANDLER)


def _satisfies_the_gate_contract(gate: GatewayGate) -> Gate:
    """mypy checks here that GatewayGate still matches ``seams.Gate``."""
    return gate
