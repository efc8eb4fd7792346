"""Helpers shared by the gateway tests (and others on a gateway-configured server): the HTTP
client of the ``call`` fixture, keys, replies, forged tokens."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tornado.httpclient import AsyncHTTPClient
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


def server_client(jp_serverapp: Any, port: int, base_url: str) -> Call:
    """``await call(method, path, token=..., jupyter=True, body=..., headers=...)`` against
    the test's server: a fresh client per request, with a key or token (Bearer) or the
    Jupyter token."""

    async def _call(
        method: str,
        path: str,
        *,
        token: str | None = None,
        jupyter: bool = False,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        if jupyter:
            h["Authorization"] = f"token {jp_serverapp.identity_provider.token}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is None and method in ("POST", "PUT", "PATCH"):
            data = b""
        url = f"http://127.0.0.1:{port}{base_url.rstrip('/')}{path}"
        client = AsyncHTTPClient(force_instance=True)
        try:
            r = await client.fetch(
                url,
                method=method,
                headers=h,
                body=data,
                raise_error=False,
                allow_nonstandard_methods=True,
                request_timeout=30,
            )
        finally:
            client.close()
        return Reply(r.code, r.headers, r.body or b"")

    return _call


def key_maker(call: Call, name: str = "test") -> Callable[..., Awaitable[dict[str, Any]]]:
    """``await new_key(user=..., scopes=[...], ...)``: an API key created through the owner's
    Jupyter session (named ``name`` unless the body says); the created key's JSON."""

    async def _new_key(**body: Any) -> dict[str, Any]:
        body.setdefault("name", name)
        r = await call("POST", "/aiide/api/keys", jupyter=True, body=body)
        assert r.status == 201, r.body
        return dict(r.json())

    return _new_key


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


async def browser_login(port: int, base_url: str, token: str) -> dict[str, str]:
    """Headers of a logged-in browser: the login cookie and the XSRF cookie + header,
    from Jupyter's own login form (no ``Authorization`` header: an interactive session)."""
    from http.cookies import SimpleCookie
    from urllib.parse import urlencode

    from tornado.httpclient import AsyncHTTPClient

    base = f"http://127.0.0.1:{port}{base_url.rstrip('/')}/login"
    client = AsyncHTTPClient(force_instance=True)
    cookies: SimpleCookie = SimpleCookie()
    try:
        page = await client.fetch(base, raise_error=False)
        for header in page.headers.get_list("Set-Cookie"):
            cookies.load(header)
        xsrf = cookies["_xsrf"].value
        form = urlencode({"password": token, "_xsrf": xsrf})
        done = await client.fetch(
            base,
            method="POST",
            body=form,
            headers={"Cookie": f"_xsrf={xsrf}"},
            follow_redirects=False,
            raise_error=False,
        )
        assert done.code == 302, done.body
        for header in done.headers.get_list("Set-Cookie"):
            cookies.load(header)
    finally:
        client.close()
    jar = "; ".join(f"{name}={morsel.value}" for name, morsel in cookies.items())
    return {"Cookie": jar, "X-XSRFToken": xsrf}
