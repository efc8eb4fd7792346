"""HTTP routes of the gateway: thin adapters over ``GatewayAPI``.

Errors take the one path of ``json_api.py``: JSON ``{"code", "message"}`` with a stable
code and, where it applies, ``Retry-After``/``X-RateLimit-*``/``WWW-Authenticate``
headers (the gate stashes them on the request); never a traceback. Bodies are capped
at ``c.Gateway.max_body_bytes`` before they are parsed.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from aiide_server_ext.api_handler import AiideAPIHandler

from .api import GatewayAPI
from .gate import GatewayGate
from .openapi import document

try:
    from jupyter_server.auth.decorator import allow_unauthenticated
except ImportError:  # jupyter_server < 2.13 lets every handler decide for itself
    from collections.abc import Callable
    from typing import TypeVar

    F = TypeVar("F", bound=Callable[..., Any])

    def allow_unauthenticated(method: F) -> F:
        return method


class GatewayHandler(AiideAPIHandler):
    auth_resource = "aiide"

    @property
    def gate(self) -> GatewayGate:
        gate: GatewayGate = self.settings["aiide_gate"]
        return gate

    @property
    def api(self) -> GatewayAPI:
        return GatewayAPI(self.gate)

    @property
    def max_body_bytes(self) -> int:  # type: ignore[override]
        return int(self.gate.max_body_bytes)

    def json_object(self) -> dict[str, Any]:
        body: dict[str, Any] = self.json_body({}, object_only=True)
        return body

    def query(self, *names: str) -> dict[str, str | None]:
        return {name: self.get_query_argument(name, None) for name in names}


class TokenHandler(GatewayHandler):
    """Exchange a Jupyter session or an API key for an access (+ refresh) token."""

    auth_resource = "aiide:auth"

    @web.authenticated
    @authorized
    async def post(self) -> None:
        self.reply(await self.api.exchange(self.caller, self.json_object()), 201)


class RefreshHandler(GatewayHandler):
    """Rotate a refresh token. The refresh token in the body is the credential:
    the access token has usually expired by now, and a refresh token is never
    accepted as an ``Authorization`` header, so this one verb is unauthenticated
    at the Jupyter level, and needs no XSRF check (nothing ambient is used)."""

    auth_resource = "aiide:auth"

    def check_xsrf_cookie(self) -> None:
        return None

    @allow_unauthenticated
    async def post(self) -> None:
        self.reply(await self.api.refresh(self.json_object()), 201)


class RevokeHandler(GatewayHandler):
    auth_resource = "aiide:auth"

    @web.authenticated
    @authorized
    async def post(self) -> None:
        self.reply(await self.api.revoke(self.caller, self.json_object()))


class MeHandler(GatewayHandler):
    """Who the gateway thinks you are: scopes, groups, roles, limits."""

    auth_resource = "aiide:auth"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(self.api.me(self.caller))


class KeysHandler(GatewayHandler):
    auth_resource = "aiide:keys"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        args = self.query("user", "all")
        everyone = args["all"] in ("1", "true")
        self.reply(await self.api.list_keys(self.caller, args["user"], everyone))

    @web.authenticated
    @authorized
    async def post(self) -> None:
        self.reply(await self.api.create_key(self.caller, self.json_object()), 201)


class KeyHandler(GatewayHandler):
    auth_resource = "aiide:keys"

    @web.authenticated
    @authorized
    async def delete(self, key_id: str) -> None:
        self.reply(await self.api.revoke_key(self.caller, key_id))


class UserCredentialsHandler(GatewayHandler):
    """Admin: revoke every credential of a user (keys, refresh families, tokens)."""

    auth_resource = "aiide:keys"

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        self.reply(await self.api.revoke_user(self.caller, name))


class UsageHandler(GatewayHandler):
    auth_resource = "aiide:usage"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        args = self.query("user", "group", "by", "since", "until", "format")
        content_type, body = await self.api.usage(self.caller, args)
        if content_type.startswith("text/csv"):
            self.set_header("Content-Disposition", 'attachment; filename="aiide-usage.csv"')
        self.finish(body, set_content_type=content_type)


class AuditHandler(GatewayHandler):
    auth_resource = "aiide:audit"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        args = self.query("actor", "action", "since", "until", "after_id", "limit", "format")
        content_type, body = await self.api.audit(args)
        self.finish(body, set_content_type=content_type)


class OpenAPIHandler(GatewayHandler):
    auth_resource = "aiide"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(document(self.settings.get("aiide_openapi_paths", {}), self.gate.routes))


default_handlers: list[tuple[str, Any]] = [
    (r"/aiide/api/auth/token", TokenHandler),
    (r"/aiide/api/auth/refresh", RefreshHandler),
    (r"/aiide/api/auth/revoke", RevokeHandler),
    (r"/aiide/api/auth/me", MeHandler),
    (r"/aiide/api/keys", KeysHandler),
    (r"/aiide/api/keys/(?P<key_id>[0-9a-f]{1,32})", KeyHandler),
    (r"/aiide/api/users/(?P<name>[^/]{1,256})/credentials", UserCredentialsHandler),
    (r"/aiide/api/usage", UsageHandler),
    (r"/aiide/api/audit", AuditHandler),
    (r"/aiide/api/openapi.json", OpenAPIHandler),
]
