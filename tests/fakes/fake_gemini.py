"""A fake of the Gemini REST API (``generativelanguage``), as documented:
``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse``
(``data:`` lines, each a whole ``GenerateContentResponse``), the key in
``x-goog-api-key`` (or ``?key=``). Text parts, ``functionCall`` parts (whole, never in
pieces), ``usageMetadata`` in every chunk, ``finishReason`` in the last; errors as
``{"error": {"code", "message", "status"}}`` (429 ``RESOURCE_EXHAUSTED``...).
Run standalone: ``python -m fakes.fake_gemini --port 8768``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from .script import FakeHandler, FakeServer, estimate_tokens, streaming

STATUS = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE",
}  # fmt: skip
FINISH = {"max_tokens": "MAX_TOKENS", "end_turn": "STOP"}


class GeminiHandler(FakeHandler):
    def credential(self) -> tuple[str, str | None]:
        key = self.request.headers.get("x-goog-api-key") or self.get_query_argument("key", None)
        return ("x-goog-api-key" if key is not None else "none"), key

    def fail(self, status: int, kind: str, message: str) -> None:
        self.set_status(status)
        error = {"code": status, "message": message, "status": STATUS.get(status, "UNKNOWN")}
        self.finish({"error": error})

    async def post(self, model: str, method: str) -> None:
        if method not in ("generateContent", "streamGenerateContent"):
            self.fail(404, "not_found", f"method {method} not found")
            return
        begun = self.begin()
        if begun is None:
            return
        body, reply = begun
        prompt = estimate_tokens([body.get("contents"), body.get("systemInstruction")])
        usage_in = reply.input_tokens or prompt
        usage_out = reply.output_tokens or max(1, len(reply.text) // 4)
        rid = uuid.uuid4().hex[:20]
        finish = FINISH.get(reply.stop_reason or "end_turn", reply.stop_reason or "STOP")
        calls = [
            {"functionCall": {"name": t.name, "args": json.loads(t.arguments() or "{}")}}
            for t in reply.tools
        ]

        def response(parts: list[dict[str, Any]], done: bool, out: int) -> dict[str, Any]:
            candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
            if done:
                candidate["finishReason"] = finish
            usage = {"promptTokenCount": usage_in, "candidatesTokenCount": out,
                     "totalTokenCount": usage_in + out}  # fmt: skip
            return {"candidates": [candidate], "usageMetadata": usage,
                    "modelVersion": model, "responseId": rid}  # fmt: skip

        if method == "generateContent":
            parts = ([{"text": reply.text}] if reply.text else []) + calls
            self.finish(response(parts, True, usage_out))
            return
        if self.get_query_argument("alt", "") != "sse":
            self.fail(400, "invalid", "this fake streams only with alt=sse")
            return
        self.set_header("content-type", "text/event-stream")

        async def run() -> None:
            texts = reply.text_chunks()
            if reply.first_delay:
                await self.send("", reply.first_delay)
            for n, text in enumerate(texts):
                if not await self.pace(reply, n):
                    return
                last = n == len(texts) - 1 and not calls
                chunk = response([{"text": reply.stamped(text)}], last, usage_out if last else n)
                await self.send(f"data: {json.dumps(chunk)}\r\n\r\n", 0)
            if reply.stream_error:
                error = {"error": {"code": 503, "message": reply.stream_error,
                                   "status": "UNAVAILABLE"}}  # fmt: skip
                await self.send(f"data: {json.dumps(error)}\r\n\r\n", 0)
                self.finish()
                return
            if calls or not texts:
                chunk = response(calls, True, usage_out)
                await self.send(f"data: {json.dumps(chunk)}\r\n\r\n", reply.delay)
            self.finish()

        await streaming(self, run)


class FakeGemini(FakeServer):
    def routes(self) -> list[tuple[str, Any, dict[str, Any]]]:
        return [(r"/v1beta/models/([^/:]+):(\w+)", GeminiHandler, {"fake": self})]


if __name__ == "__main__":
    from .standalone import serve

    serve(FakeGemini)
