"""A fake of an OpenAI-compatible ``POST /v1/chat/completions`` (Ollama, vLLM, LiteLLM…).

Streams ``data:`` chunks with ``choices[0].delta`` (``content`` and ``tool_calls`` with
``index``/``id``/``function.arguments`` pieces), ``finish_reason``, a usage chunk when
``stream_options.include_usage`` is set, then ``data: [DONE]``. Also ``GET /v1/models``.

``POST /v1/completions`` is fill-in-the-middle as vLLM, llama.cpp and Ollama speak it:
``prompt`` + ``suffix`` in, ``choices[0].text`` out (streamed or not). ``fim="reject"``
answers 400 naming ``suffix`` (vLLM), ``fim="missing"`` 404 (a chat-only server); every
request is in the request log either way, and ``hangups`` counts the streams the client
closed before the end.
Run standalone: ``python -m fakes.fake_openai --port 8766``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from tornado import web

from .script import FakeHandler, FakeServer, Recorded, estimate_tokens, streaming


def usage_of(reply: Any, prompt: list[Any]) -> dict[str, int]:
    """OpenAI's usage block: the reply's own counts, else estimates of `prompt` and text."""
    usage = {
        "prompt_tokens": reply.input_tokens or estimate_tokens(prompt),
        "completion_tokens": reply.output_tokens or max(1, len(reply.text) // 4),
    }
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return usage


class CompletionsHandler(FakeHandler):
    def fail(self, status: int, kind: str, message: str) -> None:
        self.set_status(status)
        self.finish({"error": {"message": message, "type": kind, "code": kind}})

    async def post(self) -> None:
        begun = self.begin()
        if begun is None:
            return
        body, reply = begun
        usage = usage_of(reply, [body.get("messages"), body.get("tools")])
        cid = "chatcmpl-" + uuid.uuid4().hex[:16]
        model = str(body.get("model", "fake"))
        finish = reply.stop_reason or ("tool_calls" if reply.tools else "stop")
        calls = [
            {
                "index": i,
                "id": t.id or "call_" + uuid.uuid4().hex[:12],
                "type": "function",
                "function": {"name": t.name, "arguments": t.arguments()},
            }
            for i, t in enumerate(reply.tools)
        ]
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
            if calls:
                message["tool_calls"] = [
                    {k: v for k, v in c.items() if k != "index"} for c in calls
                ]
            choice = {"index": 0, "message": message, "finish_reason": finish}
            self.finish(
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [choice],
                    "usage": usage,
                }
            )
            return
        self.set_header("content-type", "text/event-stream")
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        async def run() -> None:
            def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
                data = {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
                }
                return f"data: {json.dumps(data)}\n\n"

            await self.send(chunk({"role": "assistant", "content": ""}), reply.first_delay)
            for n, text in enumerate(reply.text_chunks()):
                if not await self.pace(reply, n):
                    return
                await self.send(chunk({"content": reply.stamped(text)}), 0)
            for call in calls:
                args = call["function"]["arguments"]
                head = {
                    "index": call["index"],
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["function"]["name"], "arguments": ""},
                }
                await self.send(chunk({"tool_calls": [head]}), reply.delay)
                half = len(args) // 2
                for part in (args[:half], args[half:]):
                    piece = {"index": call["index"], "function": {"arguments": part}}
                    await self.send(chunk({"tool_calls": [piece]}), 0)
            await self.send(chunk({}, finish), reply.delay)
            if include_usage:
                data = {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [],
                    "usage": usage,
                }
                await self.send(f"data: {json.dumps(data)}\n\n", 0)
            await self.send("data: [DONE]\n\n", 0)
            self.finish()

        await streaming(self, run)


class FimHandler(CompletionsHandler):
    """``/v1/completions``: the scripted reply's text is the middle."""

    fake: FakeOpenAI

    async def post(self) -> None:
        if self.fake.fim == "missing":
            self.fake.requests.append(
                Recorded(self.request.path, {}, json.loads(self.request.body or b"{}"), "none")
            )
            self.fail(404, "not_found", "Not Found")
            return
        if self.fake.fim == "reject" and b'"suffix"' in (self.request.body or b""):
            self.fake.requests.append(
                Recorded(self.request.path, {}, json.loads(self.request.body), "none")
            )
            self.fail(400, "invalid_request_error", "suffix is not currently supported")
            return
        begun = self.begin()
        if begun is None:
            return
        body, reply = begun
        usage = usage_of(reply, [body.get("prompt"), body.get("suffix")])
        cid = "cmpl-" + uuid.uuid4().hex[:16]
        model = str(body.get("model", "fake"))
        finish = reply.stop_reason or "stop"

        def payload(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
            return {
                "id": cid,
                "object": "text_completion",
                "created": int(time.time()),
                "model": model,
                "choices": choices,
                **extra,
            }

        if not body.get("stream"):
            choice = {"index": 0, "text": reply.text, "finish_reason": finish}
            self.finish(payload([choice], usage=usage))
            return
        self.set_header("content-type", "text/event-stream")
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        async def run() -> None:
            def chunk(text: str, finish_reason: str | None = None) -> str:
                choice = {"index": 0, "text": text, "finish_reason": finish_reason}
                return f"data: {json.dumps(payload([choice]))}\n\n"

            if reply.first_delay:
                await asyncio.sleep(reply.first_delay)
            for n, text in enumerate(reply.text_chunks()):
                if not await self.pace(reply, n):
                    return
                await self.send(chunk(reply.stamped(text)), 0)
            await self.send(chunk("", finish), reply.delay)
            if include_usage:
                await self.send(f"data: {json.dumps(payload([], usage=usage))}\n\n", 0)
            await self.send("data: [DONE]\n\n", 0)
            self.finish()

        await streaming(self, run)

    def on_connection_close(self) -> None:
        super().on_connection_close()
        if not self._finished:
            self.fake.hangups += 1


class ModelsHandler(web.RequestHandler):
    def get(self) -> None:
        self.finish({"object": "list", "data": [{"id": "fake", "object": "model"}]})


class FakeOpenAI(FakeServer):
    #: FIM on /v1/completions: "ok", "reject" (400 naming suffix) or "missing" (404).
    fim = "ok"
    #: /v1/completions streams the client closed before their end.
    hangups = 0

    def routes(self) -> list[tuple[str, Any, dict[str, Any]]]:
        return [
            (r"/v1/completions", FimHandler, {"fake": self}),
            (r"/v1/chat/completions", CompletionsHandler, {"fake": self}),
            (r"/v1/models", ModelsHandler, {}),
        ]


if __name__ == "__main__":
    from .standalone import serve

    serve(FakeOpenAI)
