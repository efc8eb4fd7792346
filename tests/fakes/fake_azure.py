"""A fake of Azure OpenAI's chat completions, as its REST API is documented:
``POST /openai/deployments/{deployment}/chat/completions?api-version=...`` with the key in
the ``api-key`` header. The answer is OpenAI's (``fake_openai.py``), with Azure's own
first stream chunk (``prompt_filter_results``, no choices), its chunk of the content
filter's results after the finish (``content_filter_offsets``, an empty delta) and its
error shapes: a
missing ``api-version`` is a 404, a wrong key a 401 ``{"error": {"code": "401", ...}}``.
Run standalone: ``python -m fakes.fake_azure --port 8767``.
"""

from __future__ import annotations

import json
from typing import Any

from .fake_openai import CompletionsHandler
from .script import FakeServer

FILTER = {"hate": {"filtered": False, "severity": "safe"}}


class AzureHandler(CompletionsHandler):
    _first = True

    def credential(self) -> tuple[str, str | None]:
        key = self.request.headers.get("api-key")
        return ("api-key" if key is not None else "none"), key

    def fail(self, status: int, kind: str, message: str) -> None:
        code = "401" if status == 401 else kind
        self.set_status(status)
        self.finish({"error": {"code": code, "message": message}})

    async def post(self, deployment: str) -> None:  # type: ignore[override]
        if not self.get_query_argument("api-version", ""):
            self.set_status(404)
            self.finish({"error": {"code": "404", "message": "Resource not found"}})
            return
        self.deployment = deployment
        await super().post()

    def begin(self) -> tuple[dict[str, Any], Any] | None:
        begun = super().begin()
        if begun is None:
            return None
        body, reply = begun  # Azure names the deployment in the URL, not in the body
        return {**body, "model": self.deployment}, reply

    async def send(self, chunk: str, delay: float) -> None:
        if self._first:  # Azure opens every stream with its prompt filter's results
            self._first = False
            opening: dict[str, Any] = {
                "choices": [], "created": 0, "id": "", "model": "", "object": "",
                "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": FILTER}],
            }  # fmt: skip
            await super().send(f"data: {json.dumps(opening)}\n\n", 0)
        await super().send(chunk, delay)
        if '"finish_reason": "' in chunk:  # then the filter's results on the completion
            offsets = {"check_offset": 0, "start_offset": 0, "end_offset": 10}
            choice: dict[str, Any] = {"index": 0, "finish_reason": None, "delta": {}}
            choice.update(content_filter_offsets=offsets, content_filter_results=FILTER)
            results = {"id": "", "model": "", "object": "", "choices": [choice], "created": 0}
            await super().send(f"data: {json.dumps(results)}\n\n", 0)


class FakeAzure(FakeServer):
    def routes(self) -> list[tuple[str, Any, dict[str, Any]]]:
        return [(r"/openai/deployments/([^/]+)/chat/completions", AzureHandler, {"fake": self})]


if __name__ == "__main__":
    from .standalone import serve

    serve(FakeAzure)
