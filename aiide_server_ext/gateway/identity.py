"""Identity inside jupyter_server: Bearer JWTs and aiide API keys beside Jupyter's own.

``GatewayIdentityProvider`` is what ``ServerApp.identity_provider_class`` names.
A request whose ``Authorization`` header carries a JWT or an ``aiide_`` key is
judged on that credential alone: no fallback to a cookie, no login cookie set,
so a bad or revoked token is a 401 even from a browser that is logged in.
Everything else (Jupyter's token, password, cookie) is Jupyter's unchanged
behaviour, so a plain single-user ``jupyter lab`` works as before. Credentials
in URLs are not accepted for JWTs or keys.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from jupyter_server.auth.identity import PasswordIdentityProvider, User

from aiide_server_ext.seams import Caller

from ..stores.errors import StoreError
from .apikeys import PREFIX
from .errors import GatewayError, http_error
from .tokens import looks_like_jwt

_AUTH_HEADER = re.compile(r"^\s*(?:bearer|token)\s+(\S+)\s*$", re.IGNORECASE)
_USER_FIELDS = tuple(f.name for f in dataclasses.fields(User))


@dataclasses.dataclass
class GatewayUser(User):  # type: ignore[misc]
    """A Jupyter user established by a gateway credential; carries the caller."""

    caller: Caller | None = None


def gateway_credential(header: str) -> tuple[str, str] | None:
    """("jwt" | "apikey", value) when the header holds a gateway credential."""
    m = _AUTH_HEADER.match(header)
    if not m:
        return None
    value = m.group(1)
    if value.startswith(PREFIX):
        return "apikey", value
    if looks_like_jwt(value):
        return "jwt", value
    return None


class GatewayIdentityProvider(PasswordIdentityProvider):  # type: ignore[misc]
    """``c.ServerApp.identity_provider_class``."""

    def get_user(self, handler: Any) -> Any:
        return self._gateway_user(handler)

    async def _gateway_user(self, handler: Any) -> User | None:
        current = getattr(handler, "_jupyter_current_user", None)
        if current:
            return current  # type: ignore[no-any-return]
        gate = handler.settings.get("aiide_gate")
        credential = gateway_credential(handler.request.headers.get("Authorization", ""))
        if credential is None or gate is None or not hasattr(gate, "authenticate"):
            return await super()._get_user(handler)  # type: ignore[no-any-return]
        try:
            caller: Caller = await gate.authenticate(handler, *credential)
        except (GatewayError, StoreError) as e:
            gate.stash_headers(handler, e.headers)
            raise http_error(e) from None
        # Header credentials are not ambient like cookies: no XSRF check needed.
        handler._token_authenticated = True
        return GatewayUser(username=caller.username, caller=caller)

    def identity_model(self, user: User) -> dict[str, Any]:
        """Only Jupyter's fields: the caller (scopes, groups) is not for ``/api/me``."""
        return {name: getattr(user, name) for name in _USER_FIELDS}
