"""The broker's route to a described provider: ``POST <prefix>/described/<name>/v1/messages``.

A student's server speaks the Anthropic Messages API to it (its provider is the shipped
``anthropic-messages`` descriptor, pointed here by ``singleuser/providers.py``), so the
course's checks that read a request (tool types, completion-only exam mode, the budget's
reservation and answer limit) apply unchanged. The broker then runs the provider the
admin described in ``c.BrokerApp.upstreams[<name>]`` (``kind: described``) with the key
and auth pre-flight only it holds, and writes its events back as Messages API events.
Usage is metered from the provider's own ``Usage`` event.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from tornado.iostream import StreamClosedError

from aiide_server_ext.agent.providers import ModelRequest, ProviderError, close_stream
from aiide_server_ext.agent.providers.base import Stop, TextDelta, ToolRequest, Usage

from .relay import MessagesHandler, UsageCounter

log = logging.getLogger("aiide.broker")
#: aiide's error codes -> (HTTP status, the error.type Anthropic clients know).
STATUS = {
    "provider_auth": (502, "api_error"),  # the course's credentials: not the student's fault
    "provider_rate_limited": (429, "rate_limit_error"),
    "provider_overloaded": (529, "overloaded_error"),
    "provider_bad_request": (400, "invalid_request_error"),
    "provider_timeout": (504, "api_error"),
}


def _system(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join(str(b.get("text", "")) for b in value if isinstance(b, dict))
    return str(value or "")


def request_of(body: dict[str, Any], user: str) -> ModelRequest:
    """A Messages API body as the provider-neutral request (their shapes are the same)."""
    return ModelRequest(
        model=str(body.get("model", "")),
        system=_system(body.get("system")),
        messages=list(body.get("messages") or []),
        tools=[
            {k: v for k, v in t.items() if k != "cache_control"} for t in body.get("tools") or []
        ],
        max_tokens=int(body.get("max_tokens") or 1024),
        temperature=body.get("temperature"),
        stop_sequences=body.get("stop_sequences"),
        user=user,
    )


class EventCounter(UsageCounter):
    """The provider's own usage (the relayed bytes are ours, not the provider's)."""

    def feed(self, chunk: bytes) -> None:
        return None

    def settle(self) -> None:
        return None


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


class DescribedHandler(MessagesHandler):
    """``POST <prefix>/described/<name>/v1/messages``: checked as the Anthropic route is."""

    provider = "anthropic"  # the request's shape, for the course's checks
    upstream_name = ""

    async def post(self, name: str = "") -> None:  # type: ignore[override]
        self.upstream_name = name
        await super().post()

    def upstream_found(self) -> tuple[dict[str, Any], str] | None:
        described = self.broker.described.get(self.upstream_name)
        if described is None:
            return None
        spec = self.broker.upstreams[self.upstream_name]
        key = self.broker.keys.get(self.upstream_name) or ""
        needs_key = spec.get("api_key_file") or spec.get("api_key_env")
        return None if needs_key and not key else (spec, key)

    def upstream_label(self) -> str:
        return self.upstream_name

    def counter(self, body: dict[str, Any]) -> EventCounter:
        return EventCounter()

    async def _forward(
        self,
        found: tuple[dict[str, Any], str],
        body: dict[str, Any],
        model: str,
        provider_headers: dict[str, str],
    ) -> None:
        provider = self.broker.described[self.upstream_name]
        counter = self.counter(body)
        streaming, outcome, ok = bool(body.get("stream")), "ok", False
        events = provider.stream(request_of(body, self.caller.name), found[1] or None)
        writer = _Writer(model, streaming)
        if streaming:
            self.set_header("content-type", "text/event-stream")
        try:
            async for event in events:
                if isinstance(event, Usage):
                    counter.input_tokens, counter.output_tokens = (
                        event.input_tokens,
                        event.output_tokens,
                    )
                if streaming:
                    for chunk in writer.events(event):
                        self.write(chunk)
                    await self.flush()
                else:
                    writer.collect(event)
            ok = True
        except ProviderError as e:
            outcome = e.code
            await self._provider_error(e, model, started=writer.started)
        except StreamClosedError:
            pass  # the student went away; closing the stream ends the provider's call
        finally:
            await close_stream(events)
            await self._meter(model, counter, outcome)
        if ok and not streaming:
            self.set_header("content-type", "application/json")
            self.write(writer.message())
        elif ok:
            self.write(_sse("message_stop", {"type": "message_stop"}))
        if not self._finished:
            self.finish()

    async def _provider_error(self, e: ProviderError, model: str, started: bool) -> None:
        """Logged and audited redacted; the student reads our message, never the detail."""
        detail = self.redact(e.message)
        log.warning("aiide broker: %s failed for %s: %s (%s)",
                    self.upstream_name, self.caller.name, e.code, detail[:2000])  # fmt: skip
        await self.audit("model.failed", f"model:{model}", e.code,
                         {"status": e.status, "upstream": detail})  # fmt: skip
        status, kind = STATUS.get(e.code, (502, "api_error"))
        message = f"the {self.upstream_name} provider failed ({e.code}); try again"
        if e.code == "provider_auth":
            message = f"the {self.upstream_name} provider refused the course's credentials; " \
                "tell your instructor"  # fmt: skip
        if started:
            error = {"type": "error", "error": {"type": kind, "message": message}}
            self.write(_sse("error", error))
            return
        if e.retry_after is not None:
            self.set_header("retry-after", str(int(e.retry_after + 0.999)))
        self.fail(status, e.code, message, kind=kind)


class _Writer:
    """aiide's events as the Messages API's (streamed, or one message at the end)."""

    def __init__(self, model: str, streaming: bool) -> None:
        self.model = model
        self.id = "msg_" + uuid.uuid4().hex[:24]
        self.started = False
        self.index = -1
        self.text_open = False
        self.blocks: list[dict[str, Any]] = []
        self.usage = Usage(0, 0)
        self.stop = "end_turn"

    def _start(self) -> list[bytes]:
        if self.started:
            return []
        self.started = True
        message: dict[str, Any] = {
            "id": self.id, "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": None, "usage": {"input_tokens": 0, "output_tokens": 0},
        }  # fmt: skip
        return [_sse("message_start", {"type": "message_start", "message": message})]

    def _close_text(self) -> list[bytes]:
        if not self.text_open:
            return []
        self.text_open = False
        return [_sse("content_block_stop", {"type": "content_block_stop", "index": self.index})]

    def events(self, event: Any) -> list[bytes]:
        out = self._start()
        if isinstance(event, TextDelta):
            if not self.text_open:
                self.index += 1
                self.text_open = True
                block = {"type": "content_block_start", "index": self.index,
                         "content_block": {"type": "text", "text": ""}}  # fmt: skip
                out.append(_sse("content_block_start", block))
            delta = {"type": "content_block_delta", "index": self.index,
                     "delta": {"type": "text_delta", "text": event.text}}  # fmt: skip
            out.append(_sse("content_block_delta", delta))
        elif isinstance(event, ToolRequest):
            out += self._close_text()
            self.index += 1
            use = {"type": "tool_use", "id": event.id, "name": event.name, "input": {}}
            start = {"type": "content_block_start", "index": self.index, "content_block": use}
            delta = {"type": "content_block_delta", "index": self.index,
                     "delta": {"type": "input_json_delta", "partial_json": event.raw}}  # fmt: skip
            stop = {"type": "content_block_stop", "index": self.index}
            out += [_sse("content_block_start", start), _sse("content_block_delta", delta),
                    _sse("content_block_stop", stop)]  # fmt: skip
        elif isinstance(event, Usage):
            self.usage = event
        elif isinstance(event, Stop):
            out += self._close_text()
            usage = {"input_tokens": self.usage.input_tokens,
                     "output_tokens": self.usage.output_tokens}  # fmt: skip
            delta = {"type": "message_delta", "delta": {"stop_reason": event.reason},
                     "usage": usage}  # fmt: skip
            out.append(_sse("message_delta", delta))
        return out

    def collect(self, event: Any) -> None:
        self.started = True
        if isinstance(event, TextDelta):
            if self.blocks and self.blocks[-1]["type"] == "text":
                self.blocks[-1]["text"] += event.text
            else:
                self.blocks.append({"type": "text", "text": event.text})
        elif isinstance(event, ToolRequest):
            self.blocks.append({"type": "tool_use", "id": event.id, "name": event.name,
                                "input": event.arguments or {}})  # fmt: skip
        elif isinstance(event, Usage):
            self.usage = event
        elif isinstance(event, Stop):
            self.stop = event.reason

    def message(self) -> dict[str, Any]:
        usage = {"input_tokens": self.usage.input_tokens,
                 "output_tokens": self.usage.output_tokens}  # fmt: skip
        return {"id": self.id, "type": "message", "role": "assistant", "model": self.model,
                "content": self.blocks, "stop_reason": self.stop, "stop_sequence": None,
                "usage": usage}  # fmt: skip


def described_handlers(prefix: str, kw: dict[str, Any]) -> list[Any]:
    return [(prefix + r"described/([\w.-]+)/v1/messages", DescribedHandler, kw)]
