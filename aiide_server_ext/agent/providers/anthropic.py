"""Claude through the official ``anthropic`` SDK (imported on first use: it is slow to load).

The SDK builds and sends the request (auth, headers, typed HTTP errors) over its aiohttp
transport (``DefaultAioHttpClient``): httpx's pool scans every pooled connection on each
request and reads a stream through several layers per chunk, which under hundreds of
streams cost more than everything else a token does here. The SSE body is read as bytes
and only its ``data:`` JSON is decoded. The SDK's own retries are off (``max_retries=0``):
``stream_with_retries`` retries every provider the same way and knows whether text was
already streamed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

try:  # SSE data lines parsed at a sixth of json's cost (pinned in pyproject)
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - orjson is a dependency
    _loads = json.loads  # type: ignore[assignment]

from .base import (
    ModelRequest,
    ProviderError,
    Stop,
    StreamEvent,
    TextDelta,
    ToolRequest,
    Usage,
    error_for_status,
    parse_arguments,
    provider_errors,
)


def _estimate(value: Any) -> int:
    return len(str(value)) // 4


class AnthropicProvider:
    kind = "anthropic"

    def __init__(
        self,
        name: str,
        base_url: str | None,
        *,
        headers: dict[str, str] | None = None,
        connect_timeout: float = 10.0,
        idle_timeout: float = 60.0,
        prompt_caching: bool = True,
        min_cache_tokens: int = 1024,
    ) -> None:
        self.name = name
        self.base_url = base_url or None
        self.headers = headers or {}
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.prompt_caching = prompt_caching
        self.min_cache_tokens = min_cache_tokens
        # One client (connection pool) per key, few keys: keep the last 32.
        self._clients: collections.OrderedDict[str, Any] = collections.OrderedDict()

    def _client(self, api_key: str) -> Any:
        client = self._clients.get(api_key)
        if client is None:
            import anthropic

            timeout = anthropic.Timeout(self.idle_timeout, connect=self.connect_timeout)
            client = self._clients[api_key] = anthropic.AsyncAnthropic(
                api_key=api_key,
                base_url=self.base_url,
                max_retries=0,
                timeout=timeout,
                default_headers=self.headers or None,
                http_client=_http_client(anthropic, timeout),
                **_telemetry(anthropic),
            )
            while len(self._clients) > 32:
                _, old = self._clients.popitem(last=False)
                _close_later(old)
        self._clients.move_to_end(api_key)
        return client

    def params(self, request: ModelRequest) -> dict[str, Any]:
        """The Messages API body, with the stable prefix marked for prompt caching.

        What stays the same from one request to the next (the API caches a prefix ending
        at a ``cache_control`` block; a read costs a tenth of input, a write a quarter
        more): the tools and the system prompt, for every request; and, within an agent
        run, everything up to the last message: each step only appends a tool call and its
        result, so each step reads the one before and writes only what it added. The run's
        context block (rules, notebook, knowledge: built once, at the run's first step) is
        marked too, so a step whose new blocks are more than the API looks back over still
        reads everything up to it. A chat turn without tools is not marked past the system
        prompt: the next turn sends the question without its context block, so that
        prefix would be written and never read."""
        system: Any = request.system
        tools = [dict(t) for t in request.tools]
        messages = request.messages
        cacheable = _estimate(request.system) + _estimate(request.tools)
        if self.prompt_caching and cacheable >= self.min_cache_tokens:
            system = [{"type": "text", "text": request.system, "cache_control": EPHEMERAL}]
            if tools:
                tools[-1]["cache_control"] = EPHEMERAL
        if self.prompt_caching and tools:
            messages = _mark_messages(messages, cacheable, self.min_cache_tokens)
        params: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": messages,
        }
        if request.system:
            params["system"] = system
        if tools:
            params["tools"] = tools
        if request.temperature is not None:  # not a named argument in every SDK version
            params["extra_body"] = {"temperature": request.temperature}
        if request.stop_sequences:
            params["stop_sequences"] = request.stop_sequences
        if request.headers:
            params["extra_headers"] = request.headers
        return params

    async def stream(
        self, request: ModelRequest, api_key: str | None
    ) -> AsyncIterator[StreamEvent]:
        if not api_key:
            raise ProviderError("provider_auth", f"no API key for provider {self.name}")
        messages = self._client(api_key).messages.with_streaming_response
        with provider_errors(_sdk_error):
            async with messages.create(**self.params(request), stream=True) as response:
                async for event in _events(_chunks(response.http_response)):
                    yield event

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()


EPHEMERAL = {"type": "ephemeral"}
#: Breakpoints the API allows in one request (two are the tools' and the system's).
MAX_MESSAGE_MARKS = 2


def _mark_messages(
    messages: list[dict[str, Any]], before: int, minimum: int
) -> list[dict[str, Any]]:
    """A copy of ``messages`` with ``cache_control`` on the run's context block (the
    first text block of the last user message that opens with one at least ``minimum``
    tokens long) and on the last block of the last message, where the prefix they end
    is long enough to be cached (``before``: the tokens of tools and system)."""
    if not messages:
        return messages
    sizes = [_estimate(m.get("content")) for m in messages]
    marks: list[tuple[int, int]] = []  # (message, block)
    for n in range(len(messages) - 1, -1, -1):
        content = messages[n].get("content")
        if (
            messages[n].get("role") == "user"
            and isinstance(content, list)
            and content
            and isinstance(content[0], dict)
            and content[0].get("type") == "text"
            and _estimate(content[0].get("text")) >= minimum
        ):
            marks.append((n, 0))
            break
    last = messages[-1].get("content")
    end = (len(messages) - 1, len(last) - 1 if isinstance(last, list) else 0)
    if before + sum(sizes) >= minimum and end not in marks:
        marks.append(end)
    out = list(messages)
    for n, index in marks[:MAX_MESSAGE_MARKS]:
        content = out[n].get("content")
        blocks = list(content) if isinstance(content, list) else [{"type": "text", "text": content}]
        if not blocks or not isinstance(blocks[index], dict):
            continue
        blocks[index] = {**blocks[index], "cache_control": EPHEMERAL}
        out[n] = {**out[n], "content": blocks}
    return out


def _http_client(anthropic: Any, timeout: Any) -> Any:
    """The SDK's aiohttp transport when this SDK version has it, else its default (httpx)."""
    factory = getattr(anthropic, "DefaultAioHttpClient", None)
    if factory is None:
        return None
    try:
        return factory(timeout=timeout)
    except RuntimeError:  # aiohttp is not installed
        return None


def _telemetry(anthropic: Any) -> dict[str, Any]:
    """The SDK's OpenTelemetry spans only when a tracer provider is installed: else every
    request still builds span attributes for a no-op tracer, a sizeable share of its CPU."""
    import inspect

    if "open_telemetry" not in inspect.signature(anthropic.AsyncAnthropic).parameters:
        return {}
    try:
        from opentelemetry import trace
    except ImportError:
        return {}
    provider = type(trace.get_tracer_provider()).__name__
    return {"open_telemetry": False} if provider in _NO_TRACING else {}


_NO_TRACING = ("ProxyTracerProvider", "NoOpTracerProvider")


def _close_later(client: Any) -> None:
    with contextlib.suppress(RuntimeError):  # no running loop: nothing is open
        task = asyncio.get_running_loop().create_task(client.close())
        _closing.add(task)
        task.add_done_callback(_closing.discard)


_closing: set[asyncio.Task[None]] = set()


def _sdk_error(e: Exception) -> ProviderError | None:
    """The SDK's typed errors; anything else is a transport error (``classify_exception``)."""
    import anthropic

    if isinstance(e, anthropic.APIStatusError):
        return error_for_status(e.status_code, _message(e), e.response.headers)
    if isinstance(e, anthropic.APITimeoutError):
        return ProviderError("provider_timeout", "the provider did not answer", retryable=True)
    if isinstance(e, anthropic.APIConnectionError):
        return ProviderError("provider_unavailable", "cannot reach the provider", retryable=True)
    return None


_STATUS = {
    "overloaded_error": 529,
    "rate_limit_error": 429,
    "api_error": 500,
    "authentication_error": 401,
    "invalid_request_error": 400,
}


def _chunks(http_response: Any) -> AsyncIterator[bytes]:
    """The response body as it arrives, read straight from aiohttp when the SDK uses it.

    ``aiter_raw`` passes every chunk through four async generators (the HTTP client's
    chunker and elapsed-time wrapper, the transport's stream, aiohttp's ``iter_chunked``):
    at hundreds of streams that was a sixth of the server's CPU per token. The same bytes,
    the same errors (the transport's own mapping of aiohttp's exceptions) and the same
    release of the connection (closing the response); any other transport keeps
    ``aiter_raw``."""
    stream = getattr(http_response, "stream", None)
    stream = getattr(stream, "_stream", stream)  # the client's elapsed-time wrapper
    aiohttp_response = getattr(stream, "_aiohttp_response", None)
    content = getattr(aiohttp_response, "content", None)
    try:
        from anthropic._vendor.httpx_aiohttp.transport import map_aiohttp_exceptions
    except ImportError:
        return http_response.aiter_raw()  # type: ignore[no-any-return]
    if content is None or not callable(getattr(content, "readany", None)):
        return http_response.aiter_raw()  # type: ignore[no-any-return]
    return _AiohttpChunks(content.readany, map_aiohttp_exceptions)


class _AiohttpChunks:
    """An async iterator over ``readany()`` (one coroutine per chunk, no generators)."""

    def __init__(self, read: Any, errors: Any) -> None:
        self._read = read
        self._errors = errors

    def __aiter__(self) -> _AiohttpChunks:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk: bytes = await self._read()
        except Exception:
            with self._errors():  # aiohttp's errors as the HTTP client's, like aiter_raw
                raise
        if not chunk:
            raise StopAsyncIteration
        return chunk


async def _events(chunks: AsyncIterator[bytes]) -> AsyncIterator[StreamEvent]:
    """SSE bytes → events, in one generator (each layer costs every token a resumption).

    The text deltas of one read are merged into one ``TextDelta``: a server that falls
    behind reads several events per chunk and then does less work per token, not more."""
    parser = _Parser()
    rest = b""
    async for chunk in chunks:
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        texts: list[str] = []
        for line in lines:
            if not line.startswith(b"data:"):
                continue
            try:
                out = parser.feed(_loads(line[5:]))
            except Exception:
                if texts:  # what came before the failure was streamed: deliver it
                    yield TextDelta("".join(texts))
                raise
            if out is None:
                continue
            if isinstance(out, str):
                texts.append(out)
                continue
            if texts:
                yield TextDelta("".join(texts))
                texts = []
            yield out
        if texts:
            yield TextDelta("".join(texts))
    if rest.startswith(b"data:"):
        out = parser.feed(_loads(rest[5:]))
        if out is not None:
            yield TextDelta(out) if isinstance(out, str) else out
    yield Usage(
        parser.input + parser.cache_read + parser.cache_write,
        parser.output,
        parser.cache_read,
        parser.cache_write,
        model=parser.model,
        response_id=parser.response_id,
    )
    yield Stop(parser.stop)


class _Parser:
    """The Messages API stream's events, one at a time: text, a finished tool call, or
    nothing (bookkeeping); an in-stream ``error`` event raises."""

    def __init__(self) -> None:
        self.tools: dict[int, tuple[str, str, list[str]]] = {}
        self.input = self.output = self.cache_read = self.cache_write = 0
        self.stop = "end_turn"
        self.model = self.response_id = ""

    def feed(self, event: dict[str, Any]) -> str | ToolRequest | None:
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event["delta"]
            if delta.get("type") == "text_delta":
                return str(delta["text"])
            if delta.get("type") == "input_json_delta" and event["index"] in self.tools:
                self.tools[event["index"]][2].append(delta["partial_json"])
        elif kind == "content_block_start":
            block = event["content_block"]
            if block.get("type") == "tool_use":
                self.tools[event["index"]] = (block["id"], block["name"], [])
        elif kind == "content_block_stop" and event.get("index") in self.tools:
            call_id, name, parts = self.tools.pop(event["index"])
            raw = "".join(parts)
            arguments, error = parse_arguments(raw)
            return ToolRequest(call_id, name, arguments, raw, error)
        elif kind == "message_start":
            self.model = str(event["message"].get("model") or "")
            self.response_id = str(event["message"].get("id") or "")
            usage = event["message"].get("usage") or {}
            self.input = int(usage.get("input_tokens") or 0)
            self.cache_read = int(usage.get("cache_read_input_tokens") or 0)
            self.cache_write = int(usage.get("cache_creation_input_tokens") or 0)
        elif kind == "message_delta":
            self.stop = (event.get("delta") or {}).get("stop_reason") or self.stop
            self.output = int((event.get("usage") or {}).get("output_tokens") or self.output)
        elif kind == "error":  # an error inside a 200 stream (overloaded mid-way)
            body = event.get("error") or {}
            status = _STATUS.get(str(body.get("type")), 500)
            raise error_for_status(status, str(body.get("message", "stream error"))[:500], {})
        return None


def _message(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:500]
    return f"HTTP {getattr(e, 'status_code', '?')} from the provider"
