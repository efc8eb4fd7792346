"""A fake of the Anthropic Messages API (``POST /v1/messages``), streaming and not.

Speaks the wire format the official SDK parses: SSE with ``event:`` lines,
``message_start.message.usage``, text and ``tool_use`` content blocks with
``input_json_delta``, ``message_delta`` usage, ``ping``, in-stream ``error`` events, and
JSON error bodies with ``retry-after`` for 429/529. Accepts ``x-api-key`` and
``Authorization: Bearer``. Run standalone: ``python -m fakes.fake_anthropic --port 8765``.

Prompt caching as the real API does it: the request is read as blocks in the order
tools, system, messages; a block with ``cache_control`` ends a cacheable prefix (at least
``min_cache_tokens`` long). The first request with a given marked prefix reports it as
``cache_creation_input_tokens``; a later one with the same prefix (same model, same
blocks) as ``cache_read_input_tokens``, looking back up to 20 blocks from each
breakpoint for the longest prefix written before; ``input_tokens`` is what is left.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from .script import FakeHandler, FakeServer, Reply, estimate_tokens, streaming


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


#: Blocks before a breakpoint the real API checks for an earlier cache entry.
LOOKBACK = 20


def _blocks(body: dict[str, Any]) -> list[tuple[dict[str, Any], bool]]:
    """The request as (block without its marker, marked) in cache order."""
    out: list[tuple[dict[str, Any], bool]] = []

    def add(block: Any, where: str) -> None:
        block = dict(block) if isinstance(block, dict) else {"type": "text", "text": block}
        marked = block.pop("cache_control", None) is not None
        out.append(({"at": where, **block}, marked))

    for tool in body.get("tools") or []:
        add(tool, "tool")
    system = body.get("system")
    for block in system if isinstance(system, list) else [system] if system else []:
        add(block, "system")
    for n, message in enumerate(body.get("messages") or []):
        content = message.get("content")
        for block in content if isinstance(content, list) else [content]:
            add(block, f"{n}:{message.get('role')}")
    return out


def cache_usage(cache: dict[str, int], body: dict[str, Any], minimum: int) -> tuple[int, int]:
    """(tokens read from ``cache``, tokens written to it) for this request; records the
    prefixes it writes in ``cache`` (hash of model and blocks -> their tokens)."""
    blocks = _blocks(body)
    marks = [i for i, (_, marked) in enumerate(blocks) if marked]
    if not marks:
        return 0, 0
    digest = hashlib.sha256(str(body.get("model")).encode())
    prefixes: list[tuple[str, int]] = []  # after block i: (hash, tokens so far)
    spent = 0
    for block, _ in blocks:
        digest.update(json.dumps(block, sort_keys=True).encode())
        spent += estimate_tokens(block)
        prefixes.append((digest.copy().hexdigest(), spent))
    read = 0
    for mark in marks:
        for i in range(mark, max(mark - LOOKBACK, -1), -1):
            if prefixes[i][0] in cache:
                read = max(read, prefixes[i][1])
                break
    last = prefixes[marks[-1]][1]
    written = 0
    for mark in marks:
        key, size = prefixes[mark]
        if size >= minimum and key not in cache:
            cache[key] = size
            written = last - read
    return read, max(written, 0)


class MessagesHandler(FakeHandler):
    fake: FakeAnthropic
    cached: tuple[int, int] = (0, 0)

    def fail(self, status: int, kind: str, message: str) -> None:
        self.set_status(status)
        self.set_header("content-type", "application/json")
        self.set_header("request-id", "req_fake")
        self.finish({"type": "error", "error": {"type": kind, "message": message}})

    async def post(self) -> None:
        begun = self.begin()
        if begun is None:
            return
        body, reply = begun
        usage_in = reply.input_tokens or estimate_tokens(
            [body.get("system"), body.get("messages"), body.get("tools")]
        )
        read, written = cache_usage(self.fake.prompt_cache, body, self.fake.min_cache_tokens)
        self.cached = read, written
        self.fake.cache_usage.append(self.cached)
        usage_in = max(usage_in - read - written, 1)
        usage_out = reply.output_tokens or max(1, len(reply.text) // 4) + 8 * len(reply.tools)
        message_id = "msg_" + uuid.uuid4().hex[:20]
        model = str(body.get("model", "claude-fake"))
        stop = reply.stop_reason or ("tool_use" if reply.tools else "end_turn")
        if not body.get("stream"):
            self._finish_json(reply, message_id, model, stop, usage_in, usage_out)
            return
        self.set_header("content-type", "text/event-stream")
        self.set_header("cache-control", "no-cache")
        await streaming(
            self, lambda: self._stream(reply, message_id, model, stop, usage_in, usage_out)
        )

    def _finish_json(
        self, reply: Reply, mid: str, model: str, stop: str, usage_in: int, usage_out: int
    ) -> None:
        content: list[dict[str, Any]] = []
        if reply.text:
            content.append({"type": "text", "text": reply.text})
        for tool in reply.tools:
            content.append(
                {
                    "type": "tool_use",
                    "id": tool.id or "toolu_" + uuid.uuid4().hex[:20],
                    "name": tool.name,
                    "input": tool.input or {},
                }
            )
        self.finish(
            {
                "id": mid,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": usage_in,
                    "output_tokens": usage_out,
                    "cache_creation_input_tokens": self.cached[1],
                    "cache_read_input_tokens": self.cached[0],
                },
            }
        )

    async def _stream(
        self, reply: Reply, mid: str, model: str, stop: str, usage_in: int, usage_out: int
    ) -> None:
        message = {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": usage_in,
                "output_tokens": 1,
                "cache_creation_input_tokens": self.cached[1],
                "cache_read_input_tokens": self.cached[0],
            },
        }
        await self.send(
            _sse("message_start", {"type": "message_start", "message": message}), reply.first_delay
        )
        await self.send(_sse("ping", {"type": "ping"}), 0)
        index = 0
        chunks = reply.text_chunks()
        if chunks:
            start = {"type": "text", "text": ""}
            await self.send(
                _sse(
                    "content_block_start",
                    {"type": "content_block_start", "index": 0, "content_block": start},
                ),
                0,
            )
            for n, chunk in enumerate(chunks):
                if not await self.pace(reply, n):
                    return
                delta = {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": reply.stamped(chunk)},
                }
                await self.send(_sse("content_block_delta", delta), 0)
            await self.send(
                _sse("content_block_stop", {"type": "content_block_stop", "index": 0}), 0
            )
            index = 1
        elif reply.stall_after is not None:
            await self.stall()
            return
        elif reply.drop_after is not None:
            self.drop()
            return
        if reply.stream_error:
            error = {
                "type": "error",
                "error": {"type": reply.stream_error, "message": reply.message},
            }
            await self.send(_sse("error", error), reply.delay)
            self.finish()
            return
        for tool in reply.tools:
            block = {
                "type": "tool_use",
                "id": tool.id or "toolu_" + uuid.uuid4().hex[:20],
                "name": tool.name,
                "input": {},
            }
            await self.send(
                _sse(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": block},
                ),
                reply.delay,
            )
            raw = tool.arguments()
            half = len(raw) // 2
            for part in (raw[:half], raw[half:]):
                delta = {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": part},
                }
                await self.send(_sse("content_block_delta", delta), 0)
            await self.send(
                _sse("content_block_stop", {"type": "content_block_stop", "index": index}), 0
            )
            index += 1
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": usage_out},
        }
        await self.send(_sse("message_delta", delta), reply.delay)
        await self.send(_sse("message_stop", {"type": "message_stop"}), 0)
        self.finish()


class FakeAnthropic(FakeServer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Cached prefixes (hash of model and blocks -> tokens); clear it to expire them.
        self.prompt_cache: dict[str, int] = {}
        #: The smallest prefix cached (the real API's minimum for Sonnet and Opus).
        self.min_cache_tokens = 1024
        #: (cache read, cache written) tokens of each request, in order.
        self.cache_usage: list[tuple[int, int]] = []

    def routes(self) -> list[tuple[str, Any, dict[str, Any]]]:
        return [(r"/v1/messages", MessagesHandler, {"fake": self})]


if __name__ == "__main__":
    from .standalone import serve

    serve(FakeAnthropic)
