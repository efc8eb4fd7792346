"""Refusals with a stable ``code``: the one error shape from plain classes to HTTP.

Plain classes raise ``GatewayError`` (a ``GateRefusal``, so the agent and knowledge
parts catch one type; rendered by ``json_api.py`` like every ``ApiError``); code that
runs inside jupyter_server's own machinery (identity provider, authorizer) raises
``GatewayHTTPError`` so that Jupyter's stock handlers turn it into a JSON error too,
with the code in ``reason``.
"""

from __future__ import annotations

from tornado import web

from aiide_server_ext.seams import GateRefusal


class GatewayError(GateRefusal):
    """A refusal from the gateway's services."""


class GatewayHTTPError(web.HTTPError):  # type: ignore[misc]
    """A refusal raised inside jupyter_server's auth hooks; ``reason`` carries the code."""

    def __init__(self, refusal: GateRefusal) -> None:
        super().__init__(refusal.status, "%s", refusal.message, reason=refusal.code)
        self.refusal = refusal


def http_error(refusal: GateRefusal) -> GatewayHTTPError:
    return GatewayHTTPError(refusal)


def bad_request(code: str, message: str) -> GatewayError:
    return GatewayError(400, code, message)


def unauthenticated(code: str, message: str) -> GatewayError:
    header = f'Bearer error="invalid_token", error_description="{code}"'
    return GatewayError(401, code, message, {"WWW-Authenticate": header})


def forbidden(code: str, message: str) -> GatewayError:
    return GatewayError(403, code, message)


def missing_scope(scope: str) -> GatewayError:
    header = f'Bearer error="insufficient_scope", scope="{scope}"'
    return GatewayError(
        403, "insufficient_scope", f"this needs the '{scope}' scope", {"WWW-Authenticate": header}
    )


def not_found(code: str, message: str) -> GatewayError:
    return GatewayError(404, code, message)


def unavailable(code: str, message: str) -> GatewayError:
    return GatewayError(503, code, message)
