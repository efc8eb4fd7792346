"""Helpers shared by the gateway tests: replies, forged tokens."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tornado.httputil import HTTPHeaders

SECRET = "gateway-test-secret-" + "0123456789abcdef" * 3
OWNER = "owner"


@dataclass
class Reply:
    status: int
    headers: HTTPHeaders
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def code(self) -> str | None:
        """The stable error code: ``code`` on aiide routes, ``reason`` on Jupyter's."""
        data = self.json()
        return str(data.get("code") or data.get("reason") or "") or None


Call = Callable[..., Awaitable["Reply"]]


def claims(sub: str = "alice", **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": "aiide",
        "aud": "aiide",
        "sub": sub,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "typ": "access",
        "scopes": ["chat", "usage:read"],
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def forge(payload: dict[str, Any], key: str | bytes = SECRET, algorithm: str = "HS256") -> str:
    import jwt

    return jwt.encode(payload, key, algorithm=algorithm)


def error(r: Reply, status: int, code: str) -> None:
    assert r.status == status, r.body
    body = r.json()
    assert body["code"] == code
    assert body["message"]
    assert b"Traceback" not in r.body
