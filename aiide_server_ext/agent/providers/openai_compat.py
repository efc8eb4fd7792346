"""Any OpenAI-compatible ``/v1/chat/completions`` with SSE (Ollama, vLLM, LiteLLM, hosted).

Plain httpx (imported on first use); the request and the stream are translated from and to
the provider-neutral types, including tool calls whose arguments arrive in pieces.

A request that carries ``fim`` (prefix, suffix) goes to ``/v1/completions`` with ``prompt``
and ``suffix`` instead (vLLM, llama.cpp's server, Ollama), over aiohttp: that call is made
per keystroke, and httpx's per-request cost (pool scan, layered stream reads) was about
6 ms of it on this machine, more than the rest of aiide's share. A server that refuses it (404 on
the route, or 400 naming ``suffix``) is asked the chat prompt in the same call, and that
model is remembered as chat-only: one failing request per model, never two.
"""

from __future__ import annotations

import asyncio
import json
import logging
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
    error_for_status,
    parse_arguments,
    provider_errors,
)

_STOP = {"stop": "end_turn", "tool_calls": "tool_use", "length": "max_tokens"}

log = logging.getLogger(__name__)


class FimRefused(ProviderError):
    """The server has no FIM: no ``/v1/completions``, or it refuses ``suffix``."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__("provider_bad_request", message, status=status)


def refuses_fim(status: int, message: str) -> bool:
    """404 (no such route, or a chat-only model there) or a 400/422 that names ``suffix``."""
    return status == 404 or (status in (400, 422) and "suffix" in message.lower())


def to_openai_messages(system: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Anthropic-style content blocks → chat.completions messages."""
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            out.append({"role": message["role"], "content": content})
            continue
        texts = [b["text"] for b in content if b.get("type") == "text"]
        if message["role"] == "assistant":
            calls = [
                {
                    "id": b["id"],
                    "type": "function",
                    "function": {"name": b["name"], "arguments": json.dumps(b.get("input") or {})},
                }
                for b in content
                if b.get("type") == "tool_use"
            ]
            entry: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
            if calls:
                entry["tool_calls"] = calls
            out.append(entry)
            continue
        drawn: list[dict[str, Any]] = []  # images in tool results: a tool message is text
        for block in content:
            if block.get("type") == "tool_result":
                result = block.get("content", "")
                if not isinstance(result, str):
                    pictures = [p for p in result if p.get("type") == "image" or _label(p)]
                    if not any(p.get("type") == "image" for p in pictures):
                        pictures = []
                    drawn += pictures
                    result = "".join(
                        p.get("text", "")
                        for p in result
                        if p.get("type") == "text" and not any(p is q for q in pictures)
                    )
                out.append(
                    {"role": "tool", "tool_call_id": block["tool_use_id"], "content": result}
                )
        if any(p.get("type") == "image" for p in drawn):
            out.append({"role": "user", "content": _parts(drawn)})
        if any(b.get("type") == "image" for b in content):
            out.append({"role": "user", "content": _parts(content)})
        elif texts:
            out.append({"role": "user", "content": "\n".join(texts)})
    return out


def _label(block: dict[str, Any]) -> bool:
    """The text naming an image (``<image ref=… />``, see ``ContextBuilder``)."""
    return block.get("type") == "text" and str(block.get("text", "")).startswith("<image ")


def _parts(content: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A user message with images: text and ``image_url`` parts (vision models), in order."""
    parts: list[dict[str, Any]] = []
    for block in content:
        if block.get("type") == "text" and block.get("text"):
            parts.append({"type": "text", "text": block["text"]})
        elif block.get("type") == "image":
            source = block["source"]
            url = f"data:{source['media_type']};base64,{source['data']}"
            parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts


def to_openai_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {
                "name": t["name"],
                "description": t.get("description", ""),
                "parameters": t["input_schema"],
            },
        }
        for t in tools
    ]


class OpenAICompatProvider:
    kind = "openai"

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        headers: dict[str, str] | None = None,
        connect_timeout: float = 10.0,
        idle_timeout: float = 60.0,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.headers = headers or {}
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self._http: Any = None
        self._aio: Any = None  # aiohttp session of the FIM path
        #: Models whose server refused FIM: completion goes through chat for them.
        self.no_fim: set[str] = set()
        #: Models whose server took a FIM request (no need to wait for a probe).
        self.fim_ok: set[str] = set()
        #: The first FIM request per model, while its answer is unknown: concurrent ones
        #: wait for it, so that a refusing server sees one failing request, not several.
        self._probes: dict[str, asyncio.Event] = {}

    def _client(self) -> Any:
        if self._http is None:
            import httpx

            timeout = httpx.Timeout(self.idle_timeout, connect=self.connect_timeout)
            limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
            self._http = httpx.AsyncClient(timeout=timeout, limits=limits)
        return self._http

    def _session(self) -> Any:
        if self._aio is None or self._aio.closed:
            import aiohttp

            timeout = aiohttp.ClientTimeout(
                sock_connect=self.connect_timeout, sock_read=self.idle_timeout
            )
            connector = aiohttp.TCPConnector(limit=1000, limit_per_host=0)
            self._aio = aiohttp.ClientSession(timeout=timeout, connector=connector)
        return self._aio

    def body(self, request: ModelRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": to_openai_messages(request.system, request.messages),
            "max_tokens": request.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.tools:
            body["tools"] = to_openai_tools(request.tools)
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.stop_sequences:
            body["stop"] = request.stop_sequences
        return body

    def fim_body(self, request: ModelRequest) -> dict[str, Any]:
        assert request.fim is not None
        prefix, suffix = request.fim
        body: dict[str, Any] = {
            "model": request.model,
            "prompt": prefix,
            "suffix": suffix,
            "max_tokens": request.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.stop_sequences:
            body["stop"] = request.stop_sequences
        return body

    async def stream(
        self, request: ModelRequest, api_key: str | None
    ) -> AsyncIterator[StreamEvent]:
        headers = {"content-type": "application/json", **self.headers, **request.headers}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        if request.fim is not None and request.model not in self.fim_ok:
            probe = self._probes.get(request.model)
            if probe is not None:
                await probe.wait()
        if request.fim is not None and request.model not in self.no_fim:
            try:
                async for event in self._stream_fim(request, headers):
                    yield event
                return
            except FimRefused as e:
                # Raised before any event: the chat prompt below is the whole answer.
                self.no_fim.add(request.model)
                log.warning(
                    "aiide: %s/%s refused fill-in-the-middle (%s); using chat for completion",
                    self.name,
                    request.model,
                    e.message,
                )
        url = f"{self.base_url}/chat/completions"
        with provider_errors():
            async with self._client().stream(
                "POST", url, json=self.body(request), headers=headers
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise error_for_status(
                        response.status_code, _message(response), response.headers
                    )
                async for event in self._events(response.aiter_lines()):
                    yield event

    async def _stream_fim(
        self, request: ModelRequest, headers: dict[str, str]
    ) -> AsyncIterator[StreamEvent]:
        url = f"{self.base_url}/completions"
        model = request.model
        probe = None
        if model not in self.fim_ok and model not in self._probes:
            probe = self._probes[model] = asyncio.Event()
        try:
            with provider_errors():
                # Leaving this block unread (cancelled, or the block ended) closes the
                # connection: aiohttp never pools a response whose body is not at its end.
                async with self._session().post(
                    url, data=json.dumps(self.fim_body(request)), headers=headers
                ) as response:
                    if response.status >= 400:
                        message = _error_text(response.status, await response.read())
                        if refuses_fim(response.status, message):
                            self.no_fim.add(model)
                            raise FimRefused(message, response.status)
                        raise error_for_status(response.status, message, response.headers)
                    self.fim_ok.add(model)
                    if probe is not None:
                        self._probes.pop(model, None)
                        probe.set()
                    async for event in self._events(_lines(response.content)):
                        yield event
        finally:
            if probe is not None and not probe.is_set():
                self._probes.pop(model, None)
                probe.set()

    async def _events(self, lines: AsyncIterator[str]) -> AsyncIterator[StreamEvent]:
        calls: dict[int, list[str]] = {}  # index -> [id, name, arguments...]
        usage = Usage(0, 0)
        stop = "end_turn"
        async for line in lines:
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            try:
                chunk = json.loads(data)
            except ValueError:
                raise ProviderError("provider_error", "the provider sent invalid JSON") from None
            if chunk.get("error"):
                raise ProviderError("provider_error", str(chunk["error"])[:300])
            u = chunk.get("usage") or {}
            usage = Usage(  # what answered is in every chunk: the last one is kept
                int(u.get("prompt_tokens") or usage.input_tokens),
                int(u.get("completion_tokens") or usage.output_tokens),
                model=str(chunk.get("model") or usage.model),
                response_id=str(chunk.get("id") or usage.response_id),
                fingerprint=str(chunk.get("system_fingerprint") or usage.fingerprint),
            )
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    yield TextDelta(delta["content"])
                if choice.get("text"):  # /v1/completions (FIM) chunks carry text, not delta
                    yield TextDelta(str(choice["text"]))
                for call in delta.get("tool_calls") or []:
                    entry = calls.setdefault(int(call.get("index", 0)), ["", "", ""])
                    function = call.get("function") or {}
                    entry[0] = call.get("id") or entry[0]
                    entry[1] = function.get("name") or entry[1]
                    entry[2] += function.get("arguments") or ""
                if choice.get("finish_reason"):
                    stop = _STOP.get(choice["finish_reason"], "end_turn")
        for index in sorted(calls):
            call_id, name, raw = calls[index]
            arguments, error = parse_arguments(raw)
            yield ToolRequest(call_id or f"call_{index}", name, arguments, raw, error)
        yield usage
        yield Stop(stop)

    async def aclose(self) -> None:
        if self._aio is not None:
            await self._aio.close()
            self._aio = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def _message(response: Any) -> str:
    try:
        error = response.json().get("error")
        if isinstance(error, dict):
            return str(error.get("message", ""))[:500] or f"HTTP {response.status_code}"
        return str(error)[:500]
    except Exception:
        return f"HTTP {response.status_code} from the provider"


async def _lines(content: Any) -> AsyncIterator[str]:
    """An aiohttp body as text lines (SSE ``data:`` lines are all this path needs)."""
    async for raw in content:
        yield raw.decode("utf-8", "replace").rstrip("\r\n")


def _error_text(status: int, raw: bytes) -> str:
    try:
        error = json.loads(raw).get("error")
        if isinstance(error, dict):
            return str(error.get("message", ""))[:500] or f"HTTP {status}"
        return str(error)[:500]
    except Exception:
        return f"HTTP {status} from the provider"
