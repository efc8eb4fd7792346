"""The base of aiide's routes on the Jupyter server.

Authentication and scopes stay where Jupyter puts them: each verb is
``@web.authenticated`` and ``@authorized`` against the class's explicit
``auth_resource`` (the gateway's authorizer answers), and the route guard
(``gateway/guard.py``) checks the route table (``gateway/routes.py``) and bounds the
body before the verb runs. This base adds what every verb shares: the caller as the
gate sees it, admission to a route class, bounded JSON bodies and the one error path
of ``json_api.py``, so a handler is a few lines over a plain class.
"""

from __future__ import annotations

from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin

from .gateway.errors import missing_scope, unauthenticated
from .json_api import JsonApi
from .seams import ApiError, Caller, Gate, gate_of


class AiideAPIHandler(JsonApi, ExtensionHandlerMixin, APIHandler):  # type: ignore[misc]
    #: Every subclass names its resource (jupyter_server's ``@authorized`` asks for it).
    auth_resource = "aiide"

    @property
    def gate(self) -> Gate:
        return gate_of(self.settings)

    @property
    def caller(self) -> Caller:
        return self.gate.caller(self)

    async def admit(self, route_class: str, scope: str | None = None) -> Caller:
        """The caller, admitted to a route class (rate limits, quotas) or refused."""
        caller = self.caller
        await self.gate.admit(caller, route_class, scope=scope)
        return caller

    def error_for(self, status_code: int, exc: BaseException | None) -> BaseException | None:
        """``@authorized`` and ``@web.authenticated`` refuse with a bare 403: say which."""
        if status_code != 403 or isinstance(exc, ApiError):
            return exc
        missing = getattr(self, "_aiide_missing_scope", None)  # set by the gateway's authorizer
        if missing:
            return missing_scope(missing)
        if not getattr(self, "_jupyter_current_user", None):
            return unauthenticated("unauthenticated", "credentials are missing")
        return exc

    def redact(self, text: str) -> str:
        redactor = getattr(self.settings.get("aiide_gate"), "redactor", None)
        return str(redactor.text(text)) if redactor is not None else text
