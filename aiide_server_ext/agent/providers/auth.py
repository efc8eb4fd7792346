"""A described provider's auth pre-flight: credentials exchanged for a short-lived token
(OAuth client credentials, a company SSO exchange), cached per user and per provider.

- One exchange at a time per user: concurrent calls wait for the same answer.
- The token is used until shortly before it expires (``expires_in``, else ``ttl``), and
  dropped once when the model answers 401 (``forget``), so a revoked token is replaced.
- An exchange that fails is not tried again for ``failure_backoff`` seconds: every call
  in that time gets the same clear error at once (no retry storm on a down endpoint),
  and the error is not retryable, so the router's retries do not ask again either.
- The token is never logged and never in an error: errors are redacted of the secrets.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from .base import ProviderError
from .streams import read_up_to
from .templates import Lookup, render, render_text

#: Seconds before its expiry a token is replaced.
EARLY = 30.0
#: Tokens kept (users x credentials); the least recently used go first.
MAX_TOKENS = 4096


class TokenCache:
    def __init__(self, provider: str, auth: dict[str, Any], exprs: dict[str, Any]) -> None:
        self.provider = provider
        self.auth = auth
        self.exprs = exprs
        self.ttl = float(auth.get("ttl", 300))
        self.failure_backoff = float(auth.get("failure_backoff", 10))
        self._tokens: collections.OrderedDict[tuple[str, str], tuple[str, float]] = (
            collections.OrderedDict()
        )
        self._pending: dict[tuple[str, str], asyncio.Future[str]] = {}
        self._failed: dict[tuple[str, str], tuple[float, ProviderError]] = {}
        #: Exchanges made (for tests and the benchmark's sanity; never the tokens).
        self.exchanges = 0

    def _request(self, lookup: Lookup) -> tuple[str, dict[str, str], dict[str, Any], bool]:
        url = render_text(str(self.auth["url"]), lookup)
        headers = {k: v for k, v in render(self.auth.get("headers") or {}, lookup).items() if v}
        if "json" in self.auth:
            return url, headers, render(self.auth["json"], lookup), True
        return url, headers, render(self.auth.get("form") or {}, lookup), False

    def key(self, user: str, lookup: Lookup) -> tuple[str, str]:
        request = self._request(lookup)
        return user, hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()

    def forget(self, key: tuple[str, str]) -> None:
        self._tokens.pop(key, None)

    async def token(
        self,
        key: tuple[str, str],
        lookup: Lookup,
        session: Any,
        redact: Callable[[str], str],
    ) -> str:
        found = self._tokens.get(key)
        now = time.monotonic()
        if found is not None and now < found[1]:
            self._tokens.move_to_end(key)
            return found[0]
        failed = self._failed.get(key)
        if failed is not None and now < failed[0]:
            e = failed[1]
            raise ProviderError(e.code, e.message, status=e.status)
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = asyncio.ensure_future(
                self._exchange(key, lookup, session, redact)
            )
            pending.add_done_callback(lambda _: self._pending.pop(key, None))
        return await asyncio.shield(pending)

    async def _exchange(
        self, key: tuple[str, str], lookup: Lookup, session: Any, redact: Callable[[str], str]
    ) -> str:
        url, headers, body, as_json = self._request(lookup)
        host = urlsplit(url).netloc or url
        self.exchanges += 1
        try:
            token, expires_in = await self._post(session, url, headers, body, as_json, host, redact)
        except ProviderError as e:
            until = time.monotonic() + self.failure_backoff
            e.message += f" (not tried again for {self.failure_backoff:g} s)"
            self._failed[key] = (until, e)
            raise
        self._failed.pop(key, None)
        lifetime = expires_in if expires_in is not None else self.ttl
        self._tokens[key] = (token, time.monotonic() + max(1.0, lifetime - EARLY))
        while len(self._tokens) > MAX_TOKENS:
            self._tokens.popitem(last=False)
        return token

    async def _post(
        self,
        session: Any,
        url: str,
        headers: dict[str, str],
        body: dict[str, Any],
        as_json: bool,
        host: str,
        redact: Callable[[str], str],
    ) -> tuple[str, float | None]:
        what = f"{self.provider}: the auth pre-flight to {host}"
        payload = {"json": body} if as_json else {"data": body}
        try:
            async with session.post(url, headers=headers, **payload) as r:
                raw = await read_up_to(r.content, 64 * 1024)
                status = r.status
        except Exception as e:  # connection refused, DNS, timeout: the endpoint is down
            name = type(e).__name__
            raise ProviderError(
                "provider_unavailable", f"{what} failed: cannot reach it ({name})"
            ) from None
        if status >= 400:
            detail = redact(raw.decode("utf-8", "replace"))[:200]
            code = "provider_auth" if status in (400, 401, 403) else "provider_unavailable"
            raise ProviderError(code, f"{what} answered HTTP {status}: {detail}", status=status)
        try:
            answer = json.loads(raw)
        except ValueError:
            raise ProviderError("provider_auth", f"{what} did not answer JSON") from None
        token = self.exprs["token"].search(answer)
        if not isinstance(token, str) or not token:
            raise ProviderError(
                "provider_auth",
                f"{what}: its answer has no token at {self.auth.get('token', 'access_token')!r}",
            )
        expires = self.exprs["expires_in"].search(answer)
        try:
            return token, float(expires) if expires is not None else None
        except (TypeError, ValueError):
            return token, None
