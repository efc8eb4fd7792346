"""The ``described`` provider kind: any model API, from a descriptor alone.

The descriptor (``descriptor.py``; shipped ones in ``descriptors/``) says how to ask
(URL, headers and body templates, a converter for the messages), how to read the answer
(a stream format and a JMESPath mapping per chunk, or one for a sync answer), how to read
its errors, and optionally how to get a token first (``auth.py``). This class only runs
it: over aiohttp (one session per provider), as the OpenAI kind's completion path does,
because its per-request cost is the lowest of the HTTP clients here.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

from .auth import TokenCache
from .base import (
    ModelRequest,
    ProviderError,
    StreamEvent,
    error_for_status,
    parse_retry_after,
    provider_errors,
)
from .converters import CONVERTERS
from .descriptor import Descriptor
from .streams import Mapper, chunks, read_up_to, shown
from .templates import render, render_header, render_text

MAX_ERROR_BYTES = 64 * 1024
#: Where an error's message usually is, when the descriptor does not say.
_MESSAGE_KEYS = ("message", "detail", "error")


def _secret_name(name: str) -> bool:
    return any(w in name.lower() for w in ("key", "secret", "token", "password"))


class DescribedProvider:
    kind = "described"

    def __init__(
        self,
        name: str,
        descriptor: Descriptor,
        *,
        headers: dict[str, str] | None = None,
        connect_timeout: float = 10.0,
        idle_timeout: float = 60.0,
    ) -> None:
        self.name = name
        self.descriptor = descriptor
        self.headers = headers or {}
        self.connect_timeout = connect_timeout
        self.idle_timeout = descriptor.idle_timeout or idle_timeout
        self.auth = (
            TokenCache(name, descriptor.auth, descriptor.auth_exprs) if descriptor.auth else None
        )
        self._aio: Any = None

    def _session(self) -> Any:
        if self._aio is None or self._aio.closed:
            import aiohttp

            timeout = aiohttp.ClientTimeout(
                sock_connect=self.connect_timeout, sock_read=self.idle_timeout
            )
            connector = aiohttp.TCPConnector(limit=1000, limit_per_host=0)
            self._aio = aiohttp.ClientSession(timeout=timeout, connector=connector)
        return self._aio

    def lookup(self, request: ModelRequest, api_key: str | None) -> Callable[[str], Any]:
        """The template variables of one call (converted messages computed once)."""
        d = self.descriptor
        converted = CONVERTERS[d.converter](request)
        values: dict[str, Any] = {
            **converted,
            "model": request.model,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "stop": request.stop_sequences or None,
            "stream": d.mode == "stream",
            "user": request.user or None,
            "api_key": api_key or None,
        }
        own = request.values

        def outside(name: str) -> Any:
            if name.startswith("env."):
                return os.environ.get(name[4:])
            if name.startswith("user."):
                return own(name[5:]) if own is not None else None
            return values.get(name)

        for name, template in d.variables.items():
            values[name] = render(template, outside)
        return outside

    def secrets(self, lookup: Callable[[str], Any], api_key: str | None) -> list[str]:
        """Values an error must never show: the key, and every credential-like variable or
        auth pre-flight field (``client_secret``, ``password``...)."""
        found = [api_key or ""]
        for name in self.descriptor.variables:
            if _secret_name(name):
                found.append(str(lookup(name) or ""))
        auth = self.descriptor.auth or {}
        fields = {**(auth.get("form") or {}), **(auth.get("json") or {})}
        for name, template in fields.items():
            if _secret_name(name) and isinstance(template, str):
                found.append(render_text(template, lookup))
        return [s for s in found if len(s) >= 6]

    async def stream(
        self, request: ModelRequest, api_key: str | None
    ) -> AsyncIterator[StreamEvent]:
        d = self.descriptor
        part = d.part
        lookup = self.lookup(request, api_key)
        secrets = self.secrets(lookup, api_key)

        def redact(text: str) -> str:
            for secret in secrets:
                text = text.replace(secret, "[redacted]")
            return text

        url = render_text(part.url, lookup, url=True)
        body = render(part.body, lookup)
        data = json.dumps(body) if d.method != "GET" else None
        headers = {"content-type": "application/json", **self.headers, **request.headers}
        for key, template in d.headers.items():
            value = render_header(template, lookup)
            if value is not None:
                headers[key] = value
        session = self._session()
        auth_key = self.auth.key(request.user, lookup) if self.auth is not None else None
        with provider_errors():
            for attempt in (0, 1):
                sent = dict(headers)
                if self.auth is not None and auth_key is not None:
                    token = await self.auth.token(auth_key, lookup, session, redact)
                    secrets.append(token)

                    def with_token(name: str, token: str = token) -> Any:
                        return token if name == "token" else lookup(name)

                    for key, template in d.auth["apply"].items():  # type: ignore[index]
                        sent[key] = render_text(str(template), with_token)
                async with session.request(d.method, url, data=data, headers=sent) as r:
                    if r.status == 401 and auth_key is not None and attempt == 0:
                        self.auth.forget(auth_key)  # type: ignore[union-attr]
                        continue  # a token revoked before its time: once more, a new one
                    if r.status >= 400:
                        raw = await read_up_to(r.content, MAX_ERROR_BYTES)
                        raise self.error(r.status, raw, r.headers, redact)
                    mapper = Mapper(d, part, self.name, redact)
                    if d.mode == "sync":
                        raw = await read_up_to(r.content, d.max_response_bytes + 1)
                        if len(raw) > d.max_response_bytes:
                            raise ProviderError(
                                "provider_error",
                                f"{self.name}: the answer is larger than "
                                f"{d.max_response_bytes} bytes",
                            )
                        for event in mapper.feed(mapper.parse(raw), raw):
                            yield event
                    else:
                        async for raw in chunks(
                            r.content.iter_any(),
                            part,
                            max_line=d.max_line_bytes,
                            idle=self.idle_timeout,
                            provider=self.name,
                        ):
                            for event in mapper.feed(mapper.parse(raw), raw):
                                yield event
                    for event in mapper.finish():
                        yield event
                    return

    def error(
        self, status: int, raw: bytes, headers: Any, redact: Callable[[str], str]
    ) -> ProviderError:
        """The provider's error answer as aiide's code: by ``errors.status``, then by the
        field ``errors.field`` names (``errors.codes``), else by the HTTP status."""
        d = self.descriptor
        try:
            doc: Any = json.loads(raw)
        except ValueError:
            doc = None
        message: Any = None
        if doc is not None and d.error_message is not None:
            message = d.error_message.search(doc)
        if message is None and isinstance(doc, dict):
            for key in _MESSAGE_KEYS:
                found = doc.get(key)
                if isinstance(found, dict):
                    found = found.get("message")
                if isinstance(found, str):
                    message = found
                    break
        text = shown(str(message) if message is not None else raw, redact) or f"HTTP {status}"
        text = f"{self.name}: {text}"
        code = (d.errors.get("status") or {}).get(str(status))
        field = d.error_field.search(doc) if doc is not None and d.error_field else None
        if field is not None:
            code = (d.errors.get("codes") or {}).get(str(field), code)
        base = error_for_status(status, text, headers)
        if code is None:
            return base
        retryable = code in (
            "provider_rate_limited", "provider_overloaded", "provider_unavailable",
            "provider_timeout",
        )  # fmt: skip
        return ProviderError(
            code,
            text,
            status=status,
            retry_after=parse_retry_after(headers),
            retryable=retryable,
        )

    async def aclose(self) -> None:
        if self._aio is not None:
            await self._aio.close()
            self._aio = None
