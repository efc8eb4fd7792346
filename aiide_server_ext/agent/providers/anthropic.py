"""Claude through the official ``anthropic`` SDK (imported on first use: it is slow to load).

The SDK's own retries are off (``max_retries=0``): ``stream_with_retries`` retries every
provider the same way and knows whether text was already streamed.
"""

from __future__ import annotations

import collections
import json
from collections.abc import AsyncIterator
from typing import Any

from .base import (
    ModelRequest,
    ProviderError,
    Stop,
    StreamEvent,
    TextDelta,
    ToolRequest,
    Usage,
    classify_exception,
    error_for_status,
    parse_arguments,
)

POOL_SHARDS = 8


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
        self._clients: collections.OrderedDict[str, list[Any]] = collections.OrderedDict()
        self._turn = 0

    def _client(self, api_key: str) -> Any:
        """A client for this key, round-robin over a few: one connection pool does work
        per request that grows with its size, so hundreds of streams share out better."""
        clients = self._clients.get(api_key)
        if clients is None:
            clients = self._clients[api_key] = [None] * POOL_SHARDS
            while len(self._clients) > 32:
                self._clients.popitem(last=False)
        self._clients.move_to_end(api_key)
        self._turn = (self._turn + 1) % POOL_SHARDS
        client = clients[self._turn]
        if client is None:
            import anthropic

            timeout = anthropic.Timeout(self.idle_timeout, connect=self.connect_timeout)
            client = clients[self._turn] = anthropic.AsyncAnthropic(
                api_key=api_key,
                base_url=self.base_url,
                max_retries=0,
                timeout=timeout,
                default_headers=self.headers or None,
            )
        return client

    def params(self, request: ModelRequest) -> dict[str, Any]:
        """The Messages API body; caches the system prompt and tools when that pays off."""
        system: Any = request.system
        tools = [dict(t) for t in request.tools]
        cacheable = _estimate(request.system) + _estimate(request.tools)
        if self.prompt_caching and cacheable >= self.min_cache_tokens:
            system = [
                {"type": "text", "text": request.system, "cache_control": {"type": "ephemeral"}}
            ]
            if tools:
                tools[-1]["cache_control"] = {"type": "ephemeral"}
        params: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": request.messages,
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
        """The SDK sends the request (auth, headers, errors); the SSE lines it returns are
        read as plain JSON: typed event objects cost more than the rest of a token's trip."""
        import anthropic

        if not api_key:
            raise ProviderError("provider_auth", f"no API key for provider {self.name}")
        messages = self._client(api_key).messages.with_streaming_response
        try:
            async with messages.create(**self.params(request), stream=True) as response:
                async for event in _events(_data_lines(response.http_response.aiter_raw())):
                    yield event
        except anthropic.APIStatusError as e:
            raise error_for_status(e.status_code, _message(e), e.response.headers) from None
        except anthropic.APITimeoutError:
            raise ProviderError(
                "provider_timeout", "the provider did not answer", retryable=True
            ) from None
        except anthropic.APIConnectionError:
            raise ProviderError(
                "provider_unavailable", "cannot reach the provider", retryable=True
            ) from None
        except ProviderError:
            raise
        except Exception as e:  # transport errors surface raw from the stream iterator
            raise classify_exception(e) from None

    async def aclose(self) -> None:
        for clients in self._clients.values():
            for client in clients:
                if client is not None:
                    await client.close()
        self._clients.clear()


_STATUS = {
    "overloaded_error": 529,
    "rate_limit_error": 429,
    "api_error": 500,
    "authentication_error": 401,
    "invalid_request_error": 400,
}


async def _data_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The ``data:`` payloads of an SSE byte stream (UTF-8 JSON needs no text decoding)."""
    rest = b""
    async for chunk in chunks:
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        for line in lines:
            if line.startswith(b"data:"):
                yield line[5:]
    if rest.startswith(b"data:"):
        yield rest[5:]


async def _events(lines: AsyncIterator[bytes]) -> AsyncIterator[StreamEvent]:
    tools: dict[int, tuple[str, str, list[str]]] = {}
    usage_in = usage_out = cache_read = cache_write = 0
    stop = "end_turn"
    async for data in lines:
        event = json.loads(data)
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event["delta"]
            if delta.get("type") == "text_delta":
                yield TextDelta(delta["text"])
            elif delta.get("type") == "input_json_delta" and event["index"] in tools:
                tools[event["index"]][2].append(delta["partial_json"])
        elif kind == "content_block_start":
            block = event["content_block"]
            if block.get("type") == "tool_use":
                tools[event["index"]] = (block["id"], block["name"], [])
        elif kind == "content_block_stop" and event.get("index") in tools:
            call_id, name, parts = tools.pop(event["index"])
            raw = "".join(parts)
            arguments, error = parse_arguments(raw)
            yield ToolRequest(call_id, name, arguments, raw, error)
        elif kind == "message_start":
            usage = event["message"].get("usage") or {}
            usage_in = int(usage.get("input_tokens") or 0)
            cache_read = int(usage.get("cache_read_input_tokens") or 0)
            cache_write = int(usage.get("cache_creation_input_tokens") or 0)
        elif kind == "message_delta":
            stop = (event.get("delta") or {}).get("stop_reason") or stop
            usage_out = int((event.get("usage") or {}).get("output_tokens") or usage_out)
        elif kind == "error":  # an error inside a 200 stream (overloaded mid-way)
            body = event.get("error") or {}
            status = _STATUS.get(str(body.get("type")), 500)
            raise error_for_status(status, str(body.get("message", "stream error"))[:500], {})
    yield Usage(usage_in + cache_read + cache_write, usage_out, cache_read, cache_write)
    yield Stop(stop)


def _message(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:500]
    return f"HTTP {getattr(e, 'status_code', '?')} from the provider"
