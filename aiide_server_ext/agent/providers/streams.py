"""Reading a described provider's answer: the stream cut into chunks (SSE ``data:`` lines,
JSON lines, or a regex matched over the bytes) and each chunk mapped to aiide's events.

Memory is bounded by ``max_line_bytes`` (a line, or the bytes a regex has not matched
yet, longer than that ends the call with an error), and time by the idle timeout, counted
from the last chunk, not the last byte: a stream that keeps sending bytes no matcher ever
accepts ends as a timeout instead of hanging. A chunk the mapping finds nothing in is an
error that shows the chunk (redacted, cut short): a descriptor that reads the wrong
fields fails loudly, never as an empty answer.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from .base import ProviderError, Stop, StreamEvent, TextDelta, ToolRequest, Usage, parse_arguments
from .descriptor import Descriptor, Part

STOPS = ("end_turn", "tool_use", "max_tokens", "stop_sequence")
#: Fields that say nothing about the answer (present in every chunk of some APIs).
_ID_FIELDS = frozenset({"model", "response_id"})
SHOWN = 300  # characters of a chunk an error shows


def shown(raw: bytes | str, redact: Callable[[str], str]) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = redact(text)
    return text[:SHOWN] + ("…" if len(text) > SHOWN else "")


async def chunks(
    source: AsyncIterator[bytes],
    part: Part,
    *,
    max_line: int,
    idle: float,
    provider: str,
) -> AsyncIterator[bytes]:
    """The stream's chunks as raw bytes, each to be parsed as JSON."""
    buf = bytearray()
    last = time.monotonic()
    done = part.done.encode() if part.done else None
    async for data in source:
        buf += data
        if part.format == "regex":
            assert part.pattern is not None
            end = 0
            for match in part.pattern.finditer(buf):
                groups = match.groupdict()
                value = groups.get("chunk") if "chunk" in groups else match.group(0)
                end = match.end()
                last = time.monotonic()
                if value is not None:
                    yield bytes(value)
            if end:
                del buf[:end]
            if len(buf) > max_line:
                raise ProviderError(
                    "provider_error",
                    f"{provider}: {len(buf)} bytes arrived that the stream's pattern does "
                    f"not match (limit {max_line}); is the descriptor's stream.pattern right?",
                )
        else:
            while True:
                at = buf.find(b"\n")
                if at < 0:
                    break
                line = bytes(buf[:at]).rstrip(b"\r")
                del buf[: at + 1]
                payload = _payload(line, part.format)
                if payload is None:
                    continue
                if done is not None and payload == done:
                    return
                last = time.monotonic()
                yield payload
            if len(buf) > max_line:
                raise ProviderError(
                    "provider_error",
                    f"{provider}: the provider sent a line longer than {max_line} bytes",
                )
        if time.monotonic() - last > idle:
            raise ProviderError(
                "provider_timeout",
                f"{provider}: no chunk matched in {idle:g} s (the stream sends data the "
                "descriptor's stream format does not recognise)",
                retryable=True,
            )
    if part.format != "regex" and buf.strip():
        payload = _payload(bytes(buf).rstrip(b"\r"), part.format)
        if payload is not None and payload != done:
            yield payload


async def read_up_to(content: Any, limit: int) -> bytes:
    """An aiohttp body to its end or ``limit`` bytes (``read(n)`` returns what has come)."""
    out = bytearray()
    while len(out) < limit:
        data = await content.read(limit - len(out))
        if not data:
            break
        out += data
    return bytes(out)


def _payload(line: bytes, fmt: str) -> bytes | None:
    if fmt == "sse":
        if not line.startswith(b"data:"):
            return None  # event:, id:, retry:, comments and blank lines
        return line[5:].strip() or None
    return line.strip() or None


class Mapper:
    """One answer's state: chunks in, aiide's stream events out."""

    def __init__(
        self, descriptor: Descriptor, part: Part, provider: str, redact: Callable[[str], str]
    ) -> None:
        self.descriptor = descriptor
        self.part = part
        self.provider = provider
        self.redact = redact
        self.calls: list[dict[str, Any]] = []  # in order; "index" as the API numbered them
        self.by_index: dict[Any, dict[str, Any]] = {}
        self.tokens = dict.fromkeys(
            ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"), 0
        )
        self.ids = {"model": "", "response_id": ""}
        self.stop = "end_turn"

    def parse(self, raw: bytes) -> Any:
        try:
            return json.loads(raw)
        except ValueError:
            raise ProviderError(
                "provider_error",
                f"{self.provider}: a chunk is not JSON: {shown(raw, self.redact)}",
            ) from None

    def feed(self, chunk: Any, raw: bytes | str) -> list[StreamEvent]:
        values = self.part.mapping.apply(chunk)
        if "error" in values:
            message = values["error"]
            if isinstance(message, dict | list):
                message = json.dumps(message)
            code = "provider_error"
            kind = self.descriptor.error_field
            found = kind.search(chunk) if kind is not None else None
            if found is not None:  # the API's error type, as for an error answer
                code = (self.descriptor.errors.get("codes") or {}).get(str(found), code)
            raise ProviderError(
                code,
                f"{self.provider}: the provider reported an error: "
                f"{shown(str(message), self.redact)}",
            )
        if values.get("ignore"):
            return []
        if not set(values) - _ID_FIELDS - {"ignore"}:
            raise ProviderError(
                "provider_error",
                f"{self.provider}: the descriptor's mapping matched nothing in a chunk: "
                f"{shown(raw, self.redact)}",
            )
        out: list[StreamEvent] = []
        text = values.get("text")
        if isinstance(text, list):
            text = "".join(str(t) for t in text if isinstance(t, str))
        if text:
            out.append(TextDelta(str(text)))
        calls = values.get("tool_calls")
        if calls is not None:
            for piece in calls if isinstance(calls, list) else [calls]:
                if isinstance(piece, dict):
                    self._call(piece)
        for name in self.tokens:
            if isinstance(values.get(name), int | float):
                self.tokens[name] = int(values[name])
        for name in self.ids:
            if values.get(name):
                self.ids[name] = str(values[name])
        if isinstance(values.get("stop"), str):
            reason = values["stop"]
            mapped = self.descriptor.stop_reasons.get(reason, reason)
            self.stop = mapped if mapped in STOPS else "end_turn"
        return out

    def _call(self, piece: dict[str, Any]) -> None:
        """A tool call, or a piece of one: by its index when the API numbers them, else a
        piece with a name starts a call and one without continues the last."""
        index = piece.get("index")
        call = self.by_index.get(index) if index is not None else None
        if call is None and (index is not None or piece.get("name") or not self.calls):
            call = {"id": "", "name": "", "arguments": ""}
            self.calls.append(call)
            if index is not None:
                self.by_index[index] = call
        elif call is None:
            call = self.calls[-1]
        if piece.get("id"):
            call["id"] = str(piece["id"])
        if piece.get("name"):
            call["name"] = str(piece["name"])
        if isinstance(piece.get("arguments"), str):
            call["arguments"] += piece["arguments"]
        elif isinstance(piece.get("arguments"), dict):
            call["arguments"] = json.dumps(piece["arguments"])
        if isinstance(piece.get("input"), dict):
            call["arguments"] = json.dumps(piece["input"])

    def finish(self) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        for n, call in enumerate(c for c in self.calls if c["name"]):
            arguments, error = parse_arguments(call["arguments"])
            call_id = call["id"] or f"call_{n}"
            out.append(ToolRequest(call_id, call["name"], arguments, call["arguments"], error))
        t, ids = self.tokens, self.ids
        out.append(
            Usage(
                t["input_tokens"],
                t["output_tokens"],
                cache_read_tokens=t["cache_read_tokens"],
                cache_write_tokens=t["cache_write_tokens"],
                model=ids["model"],
                response_id=ids["response_id"],
            )
        )
        stop = "tool_use" if any(isinstance(e, ToolRequest) for e in out) else self.stop
        out.append(Stop(stop))
        return out
