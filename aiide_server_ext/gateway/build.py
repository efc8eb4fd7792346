"""Assemble the gate from ``c.Gateway.*`` (the server part and the CLI share this)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from aiide_server_ext.seams import Caller
from aiide_server_ext.stores.conn import check_database_url

from .apikeys import ApiKeyService
from .audit import AuditLog
from .authorizer import ResourceScopes
from .gate import GatewayGate
from .kernels import KernelMeter, Owner
from .metering import Prices, UsageMeter
from .quotas import Quotas
from .ratelimit import MemoryRateLimiter, RateLimiter, RateLimits, RedisRateLimiter
from .redaction import SECRET_ENVS, RedactingFilter, Redactor
from .routes import RouteTable
from .scopes import Policy
from .signing import load_secret
from .store import Store
from .tokens import SsoIssuer, TokenService

if TYPE_CHECKING:
    from .part import Gateway


def build_gate(part: Gateway, data_dir: str) -> GatewayGate:
    """Validates all configuration first: a bad value fails here, with the trait's name."""
    redactor = Redactor(os.environ.get(name, "") for name in SECRET_ENVS)
    redactor.add_secret(part.signing_secret)
    for url in (part.redis_url, part.database_url):
        if "@" in url:
            redactor.add_secret(url)
    policy = Policy.from_config(
        roles=part.roles,
        user_roles=part.user_roles,
        group_roles=part.group_roles,
        user_groups=part.user_groups,
        default_roles=part.default_roles,
        owner=part.owner,
        owner_scopes=part.owner_scopes,
    )
    limits = RateLimits.from_config(part.rate_limits, part.role_rate_limits)
    prices = Prices.from_config(
        part.model_prices,
        part.kernel_second_price,
        part.memory_gb_second_price,
        part.volume_tiers,
        part.currency,
    )
    resources = ResourceScopes(part.resource_scopes)
    routes = RouteTable(part.route_scopes)
    sso = [SsoIssuer.from_config(iss, e, part.audience) for iss, e in part.sso_issuers.items()]

    check_database_url(part.database_url, "c.Gateway.database_url")
    store = Store(
        part.db_path or os.path.join(data_dir, "gateway.sqlite"),
        part.db_busy_timeout,
        url=part.database_url,
        connect_timeout=part.db_busy_timeout,
    )
    audit = AuditLog(store, redactor)
    secret_file = part.signing_secret_file or os.path.join(data_dir, "jwt_secret")

    def secret() -> bytes:
        value = load_secret(part.signing_secret, secret_file)
        redactor.add_secret(value.decode(errors="replace"))
        return value

    tokens = TokenService(
        store,
        audit,
        secret,
        issuer=part.issuer,
        audience=part.audience,
        access_ttl=part.access_token_ttl,
        refresh_ttl=part.refresh_token_ttl,
        max_ttl=part.max_access_token_ttl,
        leeway=part.leeway,
        sso=sso,
        owner=policy.owner,
        revocation_refresh=part.revocation_refresh,
    )
    limiter_class: type[RateLimiter] = part.rate_limiter_class
    if part.redis_url and limiter_class is MemoryRateLimiter:
        limiter_class = RedisRateLimiter
    limiter = limiter_class(
        redis_url=part.redis_url, failure_mode=part.redis_failure_mode, timeout=part.redis_timeout
    )
    meter = UsageMeter(store, prices)
    gate: GatewayGate | None = None

    def owner_of(handler: Any) -> Owner:
        assert gate is not None
        caller: Caller = gate.caller(handler)
        return caller.username, caller.groups

    def caller_of(handler: Any) -> Caller:
        assert gate is not None
        return gate.caller(handler)

    kernels = KernelMeter(meter, owner_of, policy.owner, caller_of)
    quotas = Quotas(
        meter,
        default=part.default_quota,
        users=part.user_quotas,
        groups=part.group_quotas,
        budgets=part.group_budgets,
        running_seconds=kernels.running_seconds,
    )
    gate = GatewayGate(
        policy=policy,
        store=store,
        audit=audit,
        tokens=tokens,
        # A key revoked on another server is refused here within one revocation poll.
        keys=ApiKeyService(
            store, audit, tokens=tokens, cache_seconds=min(5.0, part.revocation_refresh)
        ),
        limiter=limiter,
        limits=limits,
        meter=meter,
        quotas=quotas,
        kernels=kernels,
        redactor=redactor,
        redaction_filter=RedactingFilter(redactor),
        resources=resources,
        routes=routes,
        resource_classes=part.resource_route_classes,
        limit_owner=part.limit_owner,
        hub_identity=part.hub_identity and bool(os.environ.get("JUPYTERHUB_API_TOKEN")),
        max_body_bytes=part.max_body_bytes,
    )
    return gate
