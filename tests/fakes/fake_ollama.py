"""A fake of Ollama's native ``POST /api/chat``, as documented: with ``stream`` (the
default) one JSON object a line (``message.content`` pieces, ``done: false``), then a last
line with ``done: true``, ``done_reason``, ``prompt_eval_count`` and ``eval_count``;
without, one object. Tool calls come whole, ``message.tool_calls[].function`` with
``arguments`` as an object. Errors: ``{"error": "..."}`` (404 for an unknown model, or a
line in the stream). No key unless the fake is given one (a proxy in front).
Run standalone: ``python -m fakes.fake_ollama --port 8770``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .script import FakeHandler, FakeServer, estimate_tokens, streaming


class ChatHandler(FakeHandler):
    def fail(self, status: int, kind: str, message: str) -> None:
        self.set_status(status)
        self.finish({"error": message})

    async def post(self) -> None:
        begun = self.begin()
        if begun is None:
            return
        body, reply = begun
        model = str(body.get("model", ""))
        prompt = reply.input_tokens or estimate_tokens([body.get("messages"), body.get("tools")])
        out = reply.output_tokens or max(1, len(reply.text) // 4)
        calls = [
            {"function": {"name": t.name, "arguments": json.loads(t.arguments() or "{}")}}
            for t in reply.tools
        ]

        def line(content: str, done: bool, **extra: Any) -> dict[str, Any]:
            message: dict[str, Any] = {"role": "assistant", "content": content}
            message.update(extra)
            created = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
            return {"model": model, "created_at": created, "message": message, "done": done}

        def final(content: str = "", **extra: Any) -> dict[str, Any]:
            last = line(content, True, **extra)
            reason = reply.stop_reason or "stop"
            last.update({"done_reason": reason, "total_duration": 1000, "prompt_eval_count":
                         prompt, "eval_count": out})  # fmt: skip
            return last

        extra = {"tool_calls": calls} if calls else {}
        if body.get("stream") is False:
            self.finish(final(reply.text, **extra))
            return
        self.set_header("content-type", "application/x-ndjson")

        async def run() -> None:
            if reply.first_delay:
                await self.send("", reply.first_delay)
            for n, text in enumerate(reply.text_chunks()):
                if not await self.pace(reply, n):
                    return
                await self.send(json.dumps(line(reply.stamped(text), False)) + "\n", 0)
            if reply.stream_error:
                await self.send(json.dumps({"error": reply.stream_error}) + "\n", 0)
                self.finish()
                return
            if calls:
                await self.send(json.dumps(line("", False, tool_calls=calls)) + "\n", 0)
            await self.send(json.dumps(final()) + "\n", reply.delay)
            self.finish()

        await streaming(self, run)


class FakeOllama(FakeServer):
    def routes(self) -> list[tuple[str, Any, dict[str, Any]]]:
        return [(r"/api/chat", ChatHandler, {"fake": self})]


if __name__ == "__main__":
    from .standalone import serve

    serve(FakeOllama)
