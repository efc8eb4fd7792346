"""JSON APIs: bounded JSON bodies and one ``write_error`` for every aiide route.

Handlers raise ``ApiError`` (``seams.py``; the gateway's ``GateRefusal`` and the agent's
``AgentError`` are kinds of it) and never write an error themselves: tornado hands
whatever escapes a verb to ``write_error``, which answers ``{code, message}`` with the
error's status and headers. A ``tornado.web.HTTPError`` gets a code from its status;
anything else is a 500 ``internal_error`` whose traceback stays in the server log.

Tornado only, nothing heavy: the broker's plain tornado handlers (``hub/``) use
``JsonApi`` as they are; ``api_handler.py`` puts it on Jupyter's ``APIHandler``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from tornado import web

from .seams import ApiError

log = logging.getLogger("aiide.api")

#: Codes for errors that did not come as an ``ApiError`` (tornado's, Jupyter's own).
STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


def error_body(
    status: int, exc: BaseException | None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Status, JSON body and headers for any exception: never a traceback."""
    refusal = getattr(exc, "refusal", None)  # an ApiError carried through Jupyter's hooks
    if isinstance(refusal, ApiError):
        exc = refusal
    if isinstance(exc, ApiError):
        return exc.status, exc.as_dict(), dict(exc.headers)
    if isinstance(exc, web.HTTPError):
        status = exc.status_code
        message = exc.log_message % exc.args if exc.log_message and exc.args else exc.log_message
        code = STATUS_CODES.get(status, "error")
        return status, {"code": code, "message": message or code.replace("_", " ")}, {}
    if exc is not None:
        return 500, {"code": "internal_error", "message": "internal error; see the server log"}, {}
    return status, {"code": STATUS_CODES.get(status, "error"), "message": f"HTTP {status}"}, {}


class JsonApi(web.RequestHandler):
    """A JSON route of tornado; first among the bases when mixed with another handler
    (``class H(JsonApi, APIHandler)``), so its ``write_error`` wins."""

    #: Largest body a verb parses. The route guard already refused a larger declared
    #: body before reading it (``gateway/guard.py``); this is the route's own, smaller cap.
    max_body_bytes: int | None = None
    #: The codes of a body over ``max_body_bytes`` and of one that is not JSON.
    too_large_code = "body_too_large"
    invalid_json_code = "invalid_json"

    def body_bytes(self) -> bytes:
        raw = self.request.body or b""
        limit = self.max_body_bytes
        if limit is not None and len(raw) > limit:
            raise ApiError(413, self.too_large_code, f"the body is over {limit} bytes")
        return raw

    def json_body(self, default: Any = None, *, object_only: bool = False) -> Any:
        """The parsed body (``default`` when empty); never echoes it back (it may hold a
        secret)."""
        raw = self.body_bytes()
        if not raw:
            return default
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, self.invalid_json_code, "the body is not valid JSON") from None
        if object_only and not isinstance(body, dict):
            raise ApiError(400, "invalid_body", "the body must be a JSON object")
        return body

    def reply(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def no_content(self) -> None:
        self.set_status(204)
        self.finish()

    # -- the one error path -------------------------------------------------------------

    def error_for(self, status_code: int, exc: BaseException | None) -> BaseException | None:
        """The error to render; subclasses turn their framework's bare errors into codes."""
        return exc

    def redact(self, text: str) -> str:
        """An error message as the client may see it (subclasses remove secrets)."""
        return text

    def error_document(self, body: dict[str, Any]) -> dict[str, Any]:
        """The JSON sent for an error (the broker adds its providers' error shapes)."""
        return body

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        status, body, headers = error_body(status_code, self.error_for(status_code, exc))
        body["message"] = self.redact(str(body.get("message", "")))
        self.set_status(status)
        for name, value in headers.items():
            self.set_header(name, value)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(self.error_document(body)))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """A refusal is an answer, not a failure: one info line, no traceback."""
        if isinstance(value, ApiError):
            request = self.request
            log.info(
                "aiide: %s %s -> %s %s", request.method, request.path, value.status, value.code
            )
            return
        super().log_exception(typ, value, tb)
