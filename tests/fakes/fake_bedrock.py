"""A fake of a Bedrock-compatible proxy speaking the Converse API's JSON:
``POST /model/{modelId}/converse`` answers a ``ConverseResponse`` (``output.message.content``
of ``text`` / ``toolUse`` blocks, ``stopReason``, ``usage.inputTokens``/``outputTokens``);
``POST /model/{modelId}/converse-stream`` answers the ConverseStream events one JSON object
a line, each as boto3 gives them (``{"messageStart": ...}``, ``{"contentBlockDelta": ...}``,
``{"contentBlockStart": {"start": {"toolUse": ...}}}``, ``{"messageStop": ...}``,
``{"metadata": {"usage": ...}}``). A bearer key (Bedrock API keys); errors as Bedrock
sends them: ``{"message": ...}`` with ``x-amzn-ErrorType`` (429 ThrottlingException...).
Run standalone: ``python -m fakes.fake_bedrock --port 8769``.
"""

from __future__ import annotations

import json
from typing import Any

from .script import FakeHandler, FakeServer, estimate_tokens, streaming

ERROR_TYPES = {400: "ValidationException", 401: "UnrecognizedClientException",
               403: "AccessDeniedException", 429: "ThrottlingException",
               500: "InternalServerException", 503: "ServiceUnavailableException"}  # fmt: skip


class ConverseHandler(FakeHandler):
    def fail(self, status: int, kind: str, message: str) -> None:
        self.set_status(status)
        self.set_header("x-amzn-ErrorType", ERROR_TYPES.get(status, "InternalServerException"))
        self.finish({"message": message})

    async def post(self, model: str, method: str) -> None:
        if method not in ("converse", "converse-stream"):
            self.fail(404, "not_found", f"unknown operation {method}")
            return
        begun = self.begin()
        if begun is None:
            return
        body, reply = begun
        usage = {
            "inputTokens": reply.input_tokens
            or estimate_tokens([body.get("messages"), body.get("system"), body.get("toolConfig")]),
            "outputTokens": reply.output_tokens or max(1, len(reply.text) // 4),
        }
        usage["totalTokens"] = usage["inputTokens"] + usage["outputTokens"]
        stop = reply.stop_reason or ("tool_use" if reply.tools else "end_turn")
        uses = [
            {"toolUseId": t.id or f"tooluse_{n:04d}", "name": t.name, "raw": t.arguments()}
            for n, t in enumerate(reply.tools)
        ]
        if method == "converse":
            content: list[dict[str, Any]] = [{"text": reply.text}] if reply.text else []
            content += [
                {"toolUse": {"toolUseId": u["toolUseId"], "name": u["name"],
                             "input": json.loads(u["raw"] or "{}")}}
                for u in uses
            ]  # fmt: skip
            self.finish({
                "output": {"message": {"role": "assistant", "content": content}},
                "stopReason": stop, "usage": usage, "metrics": {"latencyMs": 12},
            })  # fmt: skip
            return
        self.set_header("content-type", "application/x-ndjson")

        async def line(event: dict[str, Any], delay: float = 0) -> None:
            await self.send(json.dumps(event) + "\n", delay)

        async def run() -> None:
            await line({"messageStart": {"role": "assistant"}}, reply.first_delay)
            index = 0
            texts = reply.text_chunks()
            for n, text in enumerate(texts):
                if not await self.pace(reply, n):
                    return
                delta = {"delta": {"text": reply.stamped(text)}, "contentBlockIndex": 0}
                await line({"contentBlockDelta": delta})
            if texts:
                await line({"contentBlockStop": {"contentBlockIndex": 0}})
                index = 1
            if reply.stream_error:
                await line({"modelStreamErrorException": {"message": reply.stream_error}})
                self.finish()
                return
            for use in uses:
                start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
                await line({"contentBlockStart": {"start": start, "contentBlockIndex": index}})
                half = len(use["raw"]) // 2
                for piece in (use["raw"][:half], use["raw"][half:]):
                    delta = {"delta": {"toolUse": {"input": piece}}, "contentBlockIndex": index}
                    await line({"contentBlockDelta": delta})
                await line({"contentBlockStop": {"contentBlockIndex": index}})
                index += 1
            await line({"messageStop": {"stopReason": stop}}, reply.delay)
            await line({"metadata": {"usage": usage, "metrics": {"latencyMs": 12}}})
            self.finish()

        await streaming(self, run)


class FakeBedrock(FakeServer):
    def routes(self) -> list[tuple[str, Any, dict[str, Any]]]:
        return [(r"/model/([^/]+)/(converse|converse-stream)", ConverseHandler, {"fake": self})]


if __name__ == "__main__":
    from .standalone import serve

    serve(FakeBedrock)
