"""Response headers that must survive tornado's error path.

tornado's ``send_error`` clears headers before ``write_error``, and Jupyter's
stock handlers write their own error bodies, so a 429 from the authorizer would
lose ``Retry-After``. Headers are stashed on the request instead and added by an
output transform to whatever response goes out, error or not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tornado.web import OutputTransform


def stash_headers(request: Any, headers: Mapping[str, str]) -> None:
    if headers:
        existing: dict[str, str] = getattr(request, "_aiide_headers", None) or {}
        existing.update(headers)
        request._aiide_headers = existing


class GatewayHeaders(OutputTransform):  # type: ignore[misc]
    def __init__(self, request: Any) -> None:
        self._request = request

    def transform_first_chunk(
        self, status_code: int, headers: Any, chunk: bytes, finishing: bool
    ) -> tuple[int, Any, bytes]:
        for name, value in (getattr(self._request, "_aiide_headers", None) or {}).items():
            headers[name] = value
        return status_code, headers, chunk
