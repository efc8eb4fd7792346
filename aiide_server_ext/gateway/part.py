"""The gateway part of the extension: configuration (``c.Gateway.*``) and wiring.

Nothing here is heavy at import or at server start: the database opens on first
use, PyJWT and redis are imported when the first token or limited request comes.
With no configuration a single-user ``jupyter lab`` behaves exactly as before:
the owner holds every scope and is exempt from limits and quotas.
"""

from __future__ import annotations

import getpass
import logging
import os
from collections.abc import Callable
from typing import Any

from traitlets import Bool, Dict, Enum, Float, Int, List, Type, Unicode, default

from aiide_server_ext.extension_parts import ExtensionPart

#: USD per million tokens, the providers' list prices for the built-in models (by model
#: id prefix, so dated ids match); what an institution pays it configures itself. Prompt
#: cache reads and (5-minute) writes have their own prices: Anthropic's are 0.1x and
#: 1.25x the input price; OpenAI's cached input is half price and writing costs nothing extra.
LIST_PRICES: dict[str, dict[str, float]] = {
    "claude-sonnet-4": {
        "input_per_mtok": 3.0,
        "output_per_mtok": 15.0,
        "cache_read_per_mtok": 0.3,
        "cache_write_per_mtok": 3.75,
    },
    "claude-haiku-4": {
        "input_per_mtok": 1.0,
        "output_per_mtok": 5.0,
        "cache_read_per_mtok": 0.1,
        "cache_write_per_mtok": 1.25,
    },
    "gpt-4o-mini": {
        "input_per_mtok": 0.15,
        "output_per_mtok": 0.6,
        "cache_read_per_mtok": 0.075,
        "cache_write_per_mtok": 0.15,
    },
}


class Gateway(ExtensionPart):
    """Identity, scopes, rate limits, metering, quotas and audit (``c.Gateway.*``)."""

    enabled = Bool(
        True,
        config=True,
        help="Load the gateway. When False, aiide admits every Jupyter-authenticated "
        "request (the identity provider and authorizer then behave like Jupyter's own).",
    )
    owner = Unicode(
        config=True,
        help="User name of the server's owner: whoever logs in with Jupyter's own token, "
        "password or cookie. Defaults to $JUPYTERHUB_USER or the system user.",
    )
    owner_scopes = List(
        Unicode(), ["*"], config=True, help="Scopes of the owner ('*': every scope)."
    )
    limit_owner = Bool(False, config=True, help="Apply rate limits and quotas to the owner too.")
    hub_identity = Bool(
        True,
        config=True,
        help="Under JupyterHub ($JUPYTERHUB_API_TOKEN set), the server's owner gets the roles "
        "of their hub groups (group_roles) like any other hub user, with limits and quotas, "
        "instead of owner_scopes. False: the owner of a hub server holds owner_scopes.",
    )
    roles = Dict(
        config=True,
        help="Role name -> list of scopes, added to the built-in roles 'admin' (['*']) and "
        "'user' (every scope but admin). E.g. {'student': ['chat', 'complete', 'kernels', "
        "'contents:read', 'contents:write', 'usage:read']}.",
    )
    user_roles = Dict(config=True, help="User name -> list of role names.")
    group_roles = Dict(config=True, help="Group name -> list of role names.")
    user_groups = Dict(
        config=True,
        help="User name -> list of groups, for users not from JupyterHub or SSO (which "
        "bring their own groups).",
    )
    default_roles = List(
        Unicode(), ["user"], config=True, help="Roles of users no other rule gives a role."
    )
    issuer = Unicode("aiide", config=True, help="'iss' of the tokens this server issues.")
    audience = Unicode("aiide", config=True, help="'aud' of the tokens this server issues.")
    signing_secret = Unicode(
        "",
        config=True,
        help="HS256 secret for tokens (at least 32 bytes). Prefer the AIIDE_JWT_SECRET "
        "environment variable; when neither is set a secret is generated once into "
        "signing_secret_file. Servers sharing tokens must share the secret.",
    )
    signing_secret_file = Unicode(
        "", config=True, help="Where a generated secret lives (default: <data dir>/aiide/)."
    )
    sso_issuers = Dict(
        config=True,
        help="Trusted external issuers: iss -> {'algorithm': 'RS256'|'ES256', 'public_key': "
        "PEM (or 'public_key_file'), 'audience': ..., 'trust_groups': bool}.",
    )
    access_token_ttl = Int(900, config=True, help="Seconds an access token lives by default.")
    max_access_token_ttl = Int(86400, config=True, help="Longest access token one may ask for.")
    refresh_token_ttl = Int(30 * 86400, config=True, help="Seconds a refresh token lives.")
    leeway = Float(30.0, config=True, help="Seconds of clock skew tolerated on exp, nbf and iat.")
    revocation_refresh = Float(
        5.0, config=True, help="Seconds between reloads of revocations made by other servers."
    )
    rate_limits = Dict(
        # magic: %ai from inside a kernel, as whoever started it (agent/ask.py).
        {
            "complete": "60/minute",
            "chat": "30/minute",
            "execute": "20/minute",
            "magic": "30/minute",
        },
        config=True,
        help="Route class -> 'COUNT/UNIT' sliding-window limit per user (null: none).",
    )
    role_rate_limits = Dict(
        config=True,
        help="Role -> {route class: limit}; a caller gets the most generous of their roles'.",
    )
    resource_route_classes = Dict(
        config=True,
        help="Jupyter auth resource -> route class, to rate-limit any route by its "
        "auth_resource (e.g. {'aiide': 'api'} with rate_limits {'api': '600/minute'}).",
    )
    resource_scopes = Dict(
        config=True,
        help="Jupyter auth resource -> {action: scope or null}, for other extensions' "
        "resources (unknown resources need 'admin').",
    )
    route_scopes = Dict(
        config=True,
        help="Route pattern -> {'read': requirement, 'write': requirement}, for other "
        "extensions' routes (a route nobody mapped needs 'admin'). The pattern is the "
        "route's regex without the base URL and '$'; a trailing '*' makes it a prefix. "
        "A requirement is a scope ('a|b': either), 'public', 'authenticated' or 'owner'. "
        "E.g. {'/myext/api/*': {'read': 'contents:read', 'write': 'contents:write'}}.",
    )
    rate_limiter_class = Type(
        default_value="aiide_server_ext.gateway.ratelimit.MemoryRateLimiter",
        klass="aiide_server_ext.gateway.ratelimit.RateLimiter",
        config=True,
        help="Rate limiter backend. Setting redis_url selects the Redis backend.",
    )
    redis_url = Unicode("", config=True, help="Redis URL for limits shared by several servers.")
    redis_failure_mode = Enum(
        ["open", "closed"],
        "open",
        config=True,
        help="When Redis is unreachable: 'open' admits (quotas still apply), 'closed' "
        "refuses with 503. Either way a warning is logged.",
    )
    redis_timeout = Float(
        2.0,
        config=True,
        help="Seconds to wait for Redis to connect or answer. A busy server's event loop "
        "can delay reading an answer: too short a timeout makes a loaded server fail open.",
    )
    model_prices = Dict(
        default_value=LIST_PRICES,
        config=True,
        help="Model (or model-name prefix, or 'default') -> {'input_per_mtok': price, "
        "'output_per_mtok': price, 'cache_read_per_mtok': price, 'cache_write_per_mtok': "
        "price} per million tokens, in `currency` (cache prices: input tokens read from / "
        "written to the provider's prompt cache; left out, the input price). Default: the "
        "providers' published list prices (USD) of the built-in models, so usage has a "
        "cost out of the box; a table set here replaces them (an unlisted model costs 0 "
        "unless 'default' is set).",
    )
    kernel_second_price = Float(0.0, config=True, help="Price of one sandboxed-kernel second.")
    memory_gb_second_price = Float(
        0.0, config=True, help="Price of one GiB of kernel memory limit for one second."
    )
    volume_tiers = List(
        Dict(),
        config=True,
        help="[{'above_tokens': N, 'multiplier': m}, ...]: price multiplier once a user's "
        "tokens this month reach N.",
    )
    currency = Unicode("USD", config=True, help="Currency of the prices.")
    default_quota = Dict(
        config=True,
        help="Per-user quotas: {'monthly_tokens', 'daily_tokens', 'monthly_cost', "
        "'daily_kernel_hours', 'monthly_kernel_hours'} -> limit.",
    )
    user_quotas = Dict(config=True, help="User -> quotas, overriding the defaults.")
    group_quotas = Dict(config=True, help="Group -> per-member quotas (most generous wins).")
    group_budgets = Dict(config=True, help="Group -> quotas for all its members together.")
    db_path = Unicode(
        "",
        config=True,
        help="The gateway's sqlite file (default: <data dir>/aiide/gateway.sqlite).",
    )
    database_url = Unicode(
        "",
        config=True,
        help="PostgreSQL URL for audit, usage, API keys and revocations shared by several "
        "servers, e.g. postgresql://aiide@/aiide?host=/run/postgresql (password: PGPASSWORD "
        "or ~/.pgpass). Empty: the sqlite file db_path.",
    )
    db_busy_timeout = Float(
        5.0,
        config=True,
        help="Seconds to wait for a database locked by another process (PostgreSQL: also "
        "the connect timeout).",
    )
    max_body_bytes = Int(65536, config=True, help="Largest request body the gateway reads.")
    max_request_bytes = Int(
        2 << 20,
        config=True,
        help="Largest request body of any /aiide/ route, refused (413) before it is read "
        "(routes may accept less, e.g. chat frames). Jupyter's own routes keep their limits.",
    )
    json_logs = Bool(False, config=True, help="Log one JSON object per line.")

    _unsubscribe: Callable[[], None] | None = None
    _routed: list[logging.Handler] = []

    @default("owner")
    def _owner_default(self) -> str:
        try:
            return os.environ.get("JUPYTERHUB_USER") or getpass.getuser()
        except (KeyError, OSError):  # a container user without a passwd entry
            return "owner"

    @property
    def _server(self) -> Any:
        return getattr(self.parent, "serverapp", None)

    def _data_dir(self) -> str:
        server = self._server
        if server is not None and getattr(server, "data_dir", None):
            return os.path.join(str(server.data_dir), "aiide")
        from jupyter_core.paths import jupyter_data_dir

        return os.path.join(jupyter_data_dir(), "aiide")

    def initialize(self, settings: dict[str, Any]) -> None:
        if not self.enabled:
            return
        from .build import build_gate
        from .labextensions import default_to_read_only, multi_user
        from .redaction import install_json_logs, install_redaction, route_logs
        from .transform import GatewayHeaders

        self._gate = build_gate(self, self._data_dir())
        settings["aiide_gate"] = self._gate
        server = self._server
        web_app = getattr(server, "web_app", None)
        if web_app is not None and GatewayHeaders not in web_app.transforms:
            web_app.add_transform(GatewayHeaders)
        if web_app is not None:
            from .guard import RouteGuard

            base_url = str(server.base_url)
            guard = RouteGuard(self._gate, self._gate.routes, base_url, self.max_request_bytes)
            guard.install(web_app)
            settings["aiide_route_guard"] = web_app._aiide_route_guard
        install_redaction(self._gate.redaction_filter, [self.log])
        users = any((self.sso_issuers, self.user_roles, self.group_roles, self.user_groups))
        if server is not None and multi_user(users_configured=users):
            default_to_read_only(server, self.log)
        if server is not None:
            self._gate.redaction_filter.own_urls = lambda: _startup_urls(server)
            self._routed = route_logs(server.log)
        if self._gate.kernels is not None:  # only a listener: no loop needed yet
            from aiide_kernel.events import KernelEvents

            self._unsubscribe = KernelEvents.instance().subscribe(self._gate.kernels.on_lifecycle)
        if self.json_logs:
            install_json_logs(
                [self.log, logging.getLogger("aiide")] + ([server.log] if server else [])
            )

    def handlers(self) -> list[tuple[str, Any]]:
        if not self.enabled:
            return []
        from .handlers import default_handlers

        return list(default_handlers)

    async def start(self) -> None:
        gate = getattr(self, "_gate", None)
        if gate is None:
            return
        await gate.audit_policy()

    async def stop(self) -> None:
        gate = getattr(self, "_gate", None)
        if gate is None:
            return
        from .redaction import uninstall_redaction, unroute_logs

        unsubscribe = getattr(self, "_unsubscribe", None)
        if unsubscribe is not None:
            unsubscribe()
            self._unsubscribe = None
        await gate.close()
        uninstall_redaction(gate.redaction_filter, [self.log])
        unroute_logs(self._routed)
        self._routed = []


def _startup_urls(server: Any) -> list[str]:
    """The login links Jupyter prints at start (each property may hold two lines)."""
    urls: list[str] = []
    for name in ("display_url", "connect_url", "public_url", "local_url"):
        value = getattr(server, name, "")
        urls += [line.strip() for line in str(value).splitlines() if "token=" in line]
    return urls
