"""Every route checks the route table (``routes.py``), whether or not its handler asks.

tornado builds each request's handler through ``Application.get_handler_delegate``,
for every route whoever added it (Jupyter, JupyterLab, other extensions, aiide, a
route added after the server started) and for the 404 fallback. The guard hooks that
one method on the server's application and hands tornado a subclass of the handler
class (made once per class, same name) whose ``prepare`` runs the handler's own
``prepare`` first (that is where Jupyter establishes the user and checks XSRF), then
the route's requirement. A refusal is written as JSON ``{code, message}`` and the verb
never runs; refusals are audited (at most 30 a minute per caller).

The same hook bounds aiide's request bodies before tornado buffers them (Jupyter lets a
body reach 512 MB): a declared length over the route's limit is answered 413 at once,
without reading the body; a chunked body is counted as it comes and answered 413 (with
its code, audited) the moment it passes the limit.
"""

from __future__ import annotations

import inspect
import json
import logging
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

from jupyter_server.base.handlers import JupyterHandler
from tornado.httputil import HTTPMessageDelegate
from tornado.routing import PathMatches, Rule
from tornado.web import RequestHandler, stream_request_body

from aiide_server_ext.seams import Caller, GateRefusal

from ..stores.errors import StoreError
from .errors import GatewayError
from .ratelimit import RateLimit
from .routes import (
    ADMIN,
    AUTHENTICATED,
    NOT_FOUND,
    OWNER,
    PUBLIC,
    UNMAPPED,
    RouteScope,
    RouteTable,
    normalise,
)

log = logging.getLogger("aiide.gateway")

AUDITS_PER_MINUTE = RateLimit(30, 60)
_Entries = list[tuple[Any, RouteScope]]


class RouteGuard:
    def __init__(
        self, gate: Any, table: RouteTable, base_url: str, max_request_bytes: int = 2 << 20
    ) -> None:
        self.gate = gate
        self.table = table
        self.base_url = base_url
        self.max_request_bytes = max_request_bytes
        self._aiide = base_url.rstrip("/") + "/aiide/"
        self._small = tuple(base_url.rstrip("/") + p for p in SMALL_BODY_ROUTES)
        self.web_app: Any = None
        self._guarded: dict[type, type] = {}
        self._by_class: dict[type, _Entries] = {}
        self._rule_count = -1

    # -- wiring ---------------------------------------------------------------------------

    def install(self, web_app: Any) -> None:
        """Idempotent: a second install on the same application changes nothing."""
        if getattr(web_app, "_aiide_route_guard", None) is not None:
            return
        self.web_app = web_app
        original: Callable[..., Any] = web_app.get_handler_delegate

        def get_handler_delegate(
            request: Any,
            target_class: type,
            target_kwargs: dict[str, Any] | None = None,
            path_args: list[bytes] | None = None,
            path_kwargs: dict[str, bytes] | None = None,
        ) -> Any:
            limit = self.body_limit(request.path)
            if limit is not None and not self._bound(request, limit):
                return original(request, BodyTooLarge, {"limit": limit, "guard": self}, [], {})
            guarded = self.guarded(target_class)
            delegate = original(request, guarded, target_kwargs, path_args, path_kwargs)
            if limit is not None and _chunked(request) and not _streams(guarded):

                def refuse() -> Any:
                    return original(request, BodyTooLarge, {"limit": limit, "guard": self}, [], {})

                return _Counted(delegate, refuse, limit)
            return delegate

        web_app.get_handler_delegate = get_handler_delegate
        web_app._aiide_route_guard = self

    def body_limit(self, path: str) -> int | None:
        """aiide's routes: the gateway's own (credentials, keys) take small bodies."""
        if not path.startswith(self._aiide):
            return None  # Jupyter's own routes (uploads through contents) keep their limits
        if path.startswith(self._small):
            return int(self.gate.max_body_bytes)
        return self.max_request_bytes

    @staticmethod
    def _bound(request: Any, limit: int) -> bool:
        """False when the declared body is over the limit. A chunked body declares none:
        ``_Counted`` counts it as it comes (tornado's own cut-off at the connection's
        limit would answer a bare 400 with no code, and nothing audited)."""
        declared = request.headers.get("Content-Length")
        try:
            return declared is None or int(declared) <= limit
        except ValueError:
            return False

    def rules(self) -> Iterator[tuple[str, type, Any]]:
        """(normalised pattern, handler class, compiled pattern) of every route, in order."""
        if self.web_app is None:
            return
        yield from _walk(self.web_app.default_router.rules, self.base_url)

    def guarded(self, cls: type) -> type:
        found = self._guarded.get(cls)
        if found is None:
            found = self._guarded[cls] = _guard_class(cls, self)
        return found

    # -- which rule -----------------------------------------------------------------------

    def rule_for(self, cls: type, path: str) -> RouteScope:
        entries = self._by_class.get(cls)
        if not entries:  # unknown so far: the class may have been routed since
            entries = self._reindex(cls)
        if not entries:
            return UNMAPPED
        if len(entries) == 1:
            return entries[0][1]
        for regex, rule in entries:
            if regex.match(path):
                return rule
        return UNMAPPED

    def _reindex(self, cls: type) -> _Entries:
        """Routes can be added at any time: index again when the router grew."""
        count = sum(1 for _ in self.rules())
        if count != self._rule_count:
            self._rule_count = count
            by_class: dict[type, _Entries] = {}
            for pattern, target, regex in self.rules():
                by_class.setdefault(target, []).append((regex, self.table.rule(pattern)))
            for target, entries in by_class.items():
                if len({rule for _, rule in entries}) == 1:
                    by_class[target] = entries[:1]
            self._by_class = by_class
        return self._by_class.setdefault(cls, [])

    # -- the check ------------------------------------------------------------------------

    def refusal(self, handler: Any, rule: RouteScope) -> GateRefusal | None:
        """None when the caller may use the route with this method."""
        need = rule.required(handler.request.method or "")
        if need == PUBLIC:
            return None
        if need == NOT_FOUND:
            return GatewayError(404, "not_found", "no such route")
        if handler.current_user is None:
            return GatewayError(
                401,
                "unauthenticated",
                "credentials are missing",
                {"WWW-Authenticate": 'Bearer realm="aiide"'},
            )
        if need == AUTHENTICATED:
            return None
        caller: Caller = self.gate.caller(handler)
        if need == OWNER:
            owner = caller.username == self.gate.policy.owner
            if caller.has_scope(ADMIN) or (owner and caller.has_scope("contents:write")):
                return None
            return GatewayError(
                403,
                "insufficient_scope",
                "only the server's owner (with the 'contents:write' scope) or an admin may "
                "change this: it is shared by every user of the server",
                {"WWW-Authenticate": 'Bearer error="insufficient_scope", scope="admin"'},
            )
        names = need.split("|")
        if any(caller.has_scope(name) for name in names):
            return None
        wanted = " or ".join(f"'{n}'" for n in names)
        header = f'Bearer error="insufficient_scope", scope="{" ".join(names)}"'
        return GatewayError(
            403,
            "insufficient_scope",
            f"this needs the {wanted} scope",
            {"WWW-Authenticate": header},
        )

    async def refuse(self, handler: Any, rule: RouteScope, refusal: GateRefusal) -> None:
        request = handler.request
        if refusal.status == 401 and _is_page(handler):
            login = _login_url(handler)
            if login:
                handler.set_status(302)
                handler.set_header("Location", login)
                RequestHandler.finish(handler)
                return
        handler.set_status(refusal.status)
        for name, value in refusal.headers.items():
            handler.set_header(name, value)
        handler.set_header("Content-Type", "application/json")
        # tornado's own finish: some handlers override it with other arguments (JupyterLab's
        # LicensesHandler makes it a coroutine taking a MIME type).
        RequestHandler.finish(handler, json.dumps(refusal.as_dict()))
        log.info(
            "aiide gateway: %s %s -> %s %s", request.method, request.path, refusal.status, refusal
        )
        await self._audit(handler, rule, refusal)

    async def _audit(self, handler: Any, rule: RouteScope, refusal: GateRefusal) -> None:
        request = handler.request
        ip = str(getattr(request, "remote_ip", "") or "")
        user = handler.current_user if isinstance(handler, JupyterHandler) else None
        caller = self.gate.caller(handler) if user is not None else None
        who = caller.username if caller is not None else ip
        if not self.gate._refusal_audits.hit_now(f"route:{who}", AUDITS_PER_MINUTE).allowed:
            return
        action = "route.unknown" if refusal.status == 404 else "route.refused"
        detail = {"ip": ip, "route": rule.key or "any /aiide/ route", "code": refusal.code}
        if refusal.status != 413:
            detail["route"] = rule.key or "unmapped"
        target = f"{request.method} {request.path[:256]}"
        try:
            await self.gate.audit(caller, action, target, str(refusal.status), detail)
        # The refusal stands; the store problem is in the log.
        except (GatewayError, StoreError) as e:
            log.warning("aiide gateway: route refusal not audited: %s", e.message)


#: Routes under /aiide/ whose bodies are a credential or a key request (c.Gateway.max_body_bytes).
SMALL_BODY_ROUTES = ("/aiide/api/auth/", "/aiide/api/keys")


@stream_request_body
class BodyTooLarge(RequestHandler):  # type: ignore[misc]
    """Answers 413 as soon as the headers are in; the body is never read (the connection
    closes after the answer)."""

    def initialize(self, limit: int, guard: RouteGuard) -> None:
        self.limit = limit
        self.guard = guard

    def check_xsrf_cookie(self) -> None:
        return None  # nothing is done with the request: it is refused either way

    async def prepare(self) -> None:
        refusal = GatewayError(413, "body_too_large", f"the body is over {self.limit} bytes")
        await self.guard.refuse(self, UNMAPPED, refusal)

    def data_received(self, chunk: bytes) -> None:
        return None


class _Counted(HTTPMessageDelegate):  # type: ignore[misc]
    """A chunked body, counted as it arrives: past the limit what came is dropped, the
    route's handler never runs, and ``BodyTooLarge`` answers 413 at once (tornado reads
    no more of the body once the answer is written, and closes the connection)."""

    def __init__(self, inner: Any, refuse: Callable[[], Any], limit: int) -> None:
        self.inner, self.refuse, self.limit = inner, refuse, limit
        self.received = 0
        self.refused: Any = None
        self.head: tuple[Any, Any] | None = None

    def headers_received(self, start_line: Any, headers: Any) -> Any:
        self.head = (start_line, headers)
        return self.inner.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Any:
        if self.refused is not None:
            return None
        self.received += len(chunk)
        if self.received <= self.limit:
            return self.inner.data_received(chunk)
        self.inner.on_connection_close()  # drops what it buffered; its handler never ran
        self.refused = self.refuse()
        assert self.head is not None
        return self.refused.headers_received(*self.head)  # runs BodyTooLarge.prepare

    def finish(self) -> None:
        (self.refused or self.inner).finish()

    def on_connection_close(self) -> None:
        (self.refused or self.inner).on_connection_close()


def _chunked(request: Any) -> bool:
    return "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def _streams(cls: type) -> bool:
    """A handler that reads its own body as it streams (and bounds it itself)."""
    return bool(getattr(cls, "_stream_request_body", False))


def _guard_class(cls: type, guard: RouteGuard) -> type:
    """``cls`` with the route check after its own ``prepare``; same name and module."""
    if not (inspect.isclass(cls) and issubclass(cls, RequestHandler)):
        return cls

    async def prepare(self: Any, *args: Any, **kwargs: Any) -> None:
        request = self.request
        if request.method == "OPTIONS":  # a CORS preflight carries no credential
            result = cls.prepare(self, *args, **kwargs)  # type: ignore[attr-defined]
            if inspect.isawaitable(result):
                await result
            return
        rule = guard.rule_for(cls, request.path)
        if rule.required(request.method or "") == NOT_FOUND:
            self.current_user = getattr(self, "_jupyter_current_user", None)
            await guard.refuse(self, rule, GatewayError(404, "not_found", "no such route"))
            return
        result = cls.prepare(self, *args, **kwargs)  # type: ignore[attr-defined]
        if inspect.isawaitable(result):
            await result
        if self._finished:
            return
        refusal = guard.refusal(self, rule)
        if refusal is not None:
            await guard.refuse(self, rule, refusal)

    guarded: type = type(
        cls.__name__,
        (cls,),
        {
            "prepare": prepare,
            "__module__": cls.__module__,
            "__qualname__": cls.__qualname__,
            "__doc__": cls.__doc__,
            "_aiide_guarded": cls,
        },
    )
    return guarded


def _walk(rules: list[Rule], base_url: str) -> Iterator[tuple[str, type, Any]]:
    for rule in rules:
        target = rule.target
        nested = getattr(target, "rules", None)
        if isinstance(nested, list):
            yield from _walk(nested, base_url)
        elif (
            isinstance(rule.matcher, PathMatches)
            and inspect.isclass(target)
            and issubclass(target, RequestHandler)
        ):
            regex = rule.matcher.regex
            yield normalise(regex.pattern, base_url), target, regex


def _is_page(handler: Any) -> bool:
    """A browser's GET of a page: sent to the login form rather than given a 401."""
    from jupyter_server.base.handlers import APIHandler

    request = handler.request
    return (
        request.method in ("GET", "HEAD")
        and not isinstance(handler, APIHandler)
        and "Upgrade" not in request.headers
        and "Authorization" not in request.headers
    )


def _login_url(handler: Any) -> str | None:
    try:
        url = str(handler.get_login_url())
    except Exception:  # no login page configured (e.g. token-only deployments)
        return None
    if not url:
        return None
    separator = "&" if "?" in url else "?"
    return url + separator + urllib.parse.urlencode({"next": handler.request.uri})
