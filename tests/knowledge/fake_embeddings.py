"""A real HTTP server speaking OpenAI's ``POST /v1/embeddings``, for tests.

Vectors are hashed bags of words (deterministic, so exact words meet exact words); the
dimension depends on the model name, so "switching the model" is a real switch. It
counts what it is asked and can be stopped to play an endpoint that is down.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DIMENSIONS = {"fake-small": 64, "fake-large": 96}


def vector(text: str, dim: int) -> list[float]:
    v = [0.0] * dim
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
        v[h % dim] += 1.0 if (h >> 32) & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in v)) or 1.0
    return [x / norm for x in v]


class FakeEmbeddings:
    def __init__(self) -> None:
        self.calls = 0
        self.texts = 0
        self.models: list[str] = []
        #: Whether answers say how many tokens they took (llama.cpp and others do not).
        self.report_usage = True
        #: ``usage.prompt_tokens`` of each answer, as sent.
        self.tokens: list[int] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/v1/embeddings" or body.get("model") not in DIMENSIONS:
                    return self._reply(404, {"error": {"message": "no such model"}})
                inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
                fake.calls += 1
                fake.texts += len(inputs)
                fake.models.append(body["model"])
                dim = DIMENSIONS[body["model"]]
                data = [
                    {"object": "embedding", "index": i, "embedding": vector(t, dim)}
                    for i, t in enumerate(inputs)
                ]
                tokens = sum(len(t.split()) for t in inputs)
                fake.tokens.append(tokens)
                answer: dict[str, Any] = {"object": "list", "data": data, "model": body["model"]}
                if fake.report_usage:
                    answer["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
                self._reply(200, answer)

            def _reply(self, status: int, payload: dict[str, Any]) -> None:
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """The endpoint goes down: connections are refused from now on."""
        self.server.shutdown()
        self.server.server_close()
