"""Scopes over jupyter_server's resources: the stock Jupyter APIs obey them too.

``GatewayAuthorizer`` is what ``ServerApp.authorizer_class`` names; it asks the
gate (``settings["aiide_gate"]``) and, when no gateway is loaded, allows every
authenticated request exactly like Jupyter's default. ``ResourceScopes`` is the
table: resource and action → the scope needed (None: any authenticated caller).
aiide's own parts use resources ``aiide:<scope>`` (e.g. ``aiide:chat``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jupyter_server.auth.authorizer import Authorizer

from .scopes import SCOPES

ACTIONS = ("read", "write", "execute")


def _same(scope: str | None) -> dict[str, str | None]:
    return dict.fromkeys(ACTIONS, scope)


#: jupyter_server, jupyterlab, jupyter_lsp and aiide resources.
DEFAULT_RESOURCES: dict[str, dict[str, str | None]] = {
    "api": _same(None),
    "csp": _same(None),
    "lab": _same(None),
    "events": {"read": None, "write": "admin", "execute": None},
    "config": {"read": None, "write": "admin", "execute": "admin"},
    "contents": {"read": "contents:read", "write": "contents:write", "execute": "contents:write"},
    "files": _same("contents:read"),
    "view": _same("contents:read"),
    "nbconvert": _same("contents:read"),
    "lsp": _same("contents:read"),
    "kernels": _same("kernels"),
    "kernelspecs": _same("kernels"),
    "sessions": _same("kernels"),
    "terminals": _same("admin"),
    "server": _same("admin"),
    "aiide": _same(None),
    "aiide:auth": _same(None),
    "aiide:keys": _same("tokens"),
    "aiide:usage": _same("usage:read"),
    "aiide:audit": _same("admin"),
}


class ResourceScopes:
    """Resource → action → required scope. Unknown resources need ``admin`` (fail closed)."""

    def __init__(self, overrides: Mapping[str, Mapping[str, str | None]] | None = None) -> None:
        self.table = {k: dict(v) for k, v in DEFAULT_RESOURCES.items()}
        for resource, actions in (overrides or {}).items():
            for action, scope in actions.items():
                if action not in ACTIONS:
                    raise ValueError(
                        f"c.Gateway.resource_scopes[{resource!r}]: bad action {action!r}"
                    )
                if scope is not None and scope not in SCOPES:
                    raise ValueError(
                        f"c.Gateway.resource_scopes[{resource!r}]: bad scope {scope!r}"
                    )
            self.table[resource] = {**_same("admin"), **self.table.get(resource, {}), **actions}

    def required(self, resource: str, action: str) -> str | None:
        actions = self.table.get(resource)
        if actions is None:
            name = resource[6:] if resource.startswith("aiide:") else ""
            return name if name in SCOPES else "admin"
        return actions.get(action, "admin")


class GatewayAuthorizer(Authorizer):  # type: ignore[misc]
    """``c.ServerApp.authorizer_class``: scope checks, plus limits on configured resources."""

    async def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        gate = handler.settings.get("aiide_gate")
        if gate is None or not hasattr(gate, "authorize"):
            return True  # no gateway loaded: Jupyter's AllowAllAuthorizer behaviour
        return bool(await gate.authorize(handler, action, resource))
