"""Every described provider's fake on one port (the hub's broker reaches them all through
one process): the text API with its token endpoint (whose client secret is the fake's
key), Azure OpenAI, Gemini, the Bedrock proxy and Ollama, each on its own paths and wire
format, sharing one script and key.
Run standalone: ``python -m fakes.gateways --port 8772``."""

from __future__ import annotations

from typing import Any

from .fake_azure import FakeAzure
from .fake_bedrock import FakeBedrock
from .fake_gemini import FakeGemini
from .fake_ollama import FakeOllama
from .fake_textapi import FakeTextApi


class FakeGateways(FakeTextApi):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        if self.api_key is not None:  # the key doubles as the token endpoint's client secret
            self.client = ("aiide", self.api_key)

    def routes(self) -> list[tuple[str, Any, dict[str, Any]]]:
        routes = super().routes()
        for fake in (FakeAzure, FakeGemini, FakeBedrock, FakeOllama):
            routes += [(path, handler, {"fake": self}) for path, handler, _ in fake.routes(self)]  # type: ignore[arg-type]
        return routes


if __name__ == "__main__":
    from .standalone import serve

    serve(FakeGateways)
