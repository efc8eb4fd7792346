"""A fake of a bare "text in, text out" JSON API, the kind an institution puts in front of
its own model: ``POST /generate`` with ``{prompt, max_tokens, stream}`` answers
``{text, finish, input_tokens, output_tokens}``; with ``stream: true`` the same objects
as a JSON array sent as it is made (``[{"text": "Hel"},\\n{"text": "lo"},\\n{...}]``).
Errors are ``{"detail": ...}``.

In front of it, an OAuth client-credentials token endpoint (``POST /oauth/token``): a
``/generate`` call is accepted with the fake's key or with a token it issued and has not
revoked. ``token_requests`` counts exchanges, ``token_status`` makes the endpoint fail,
``revoke()`` invalidates every token (the model then answers 401).

``raw`` (bytes, times, delay) makes ``/generate`` stream those bytes instead: the bad
inputs (a line of 10 MB, bytes no pattern matches).
Run standalone: ``python -m fakes.fake_textapi --port 8771``.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from .script import FakeHandler, FakeRoute, FakeServer, estimate_tokens, streaming


class GenerateHandler(FakeHandler):
    fake: FakeTextApi

    def credential(self) -> tuple[str, str | None]:
        bearer = self.request.headers.get("Authorization", "")
        return ("bearer", bearer[7:]) if bearer.lower().startswith("bearer ") else ("none", None)

    def accepts(self, given: str | None) -> bool:
        return given is not None and (given == self.fake.api_key or given in self.fake.tokens)

    def fail(self, status: int, kind: str, message: str) -> None:
        self.set_status(status)
        self.finish({"detail": message})

    async def post(self) -> None:
        begun = self.begin()
        if begun is None:
            return
        body, reply = begun
        counts = {
            "input_tokens": reply.input_tokens or estimate_tokens(body.get("prompt", "")),
            "output_tokens": reply.output_tokens or max(1, len(reply.text) // 4),
        }
        finish = reply.stop_reason or "stop"
        if not body.get("stream"):
            self.finish({"text": reply.text, "finish": finish, **counts})
            return
        self.set_header("content-type", "application/json")

        async def run() -> None:
            if self.fake.raw is not None:
                data, times, delay = self.fake.raw
                for _ in range(times):
                    await self.send(data.decode("latin-1"), delay)
                self.finish()
                return
            await self.send("[", reply.first_delay)
            for n, text in enumerate(reply.text_chunks()):
                if not await self.pace(reply, n):
                    return
                comma = "" if n == 0 else ",\n"
                await self.send(comma + json.dumps({"text": reply.stamped(text)}), 0)
            if reply.stream_error:
                await self.send(",\n" + json.dumps({"error": reply.stream_error}) + "]", 0)
                self.finish()
                return
            last = json.dumps({"finish": finish, **counts})
            await self.send(",\n" + last + "]", reply.delay)
            self.finish()

        await streaming(self, run)


class TokenHandler(FakeRoute):
    """OAuth 2 client credentials (RFC 6749 §4.4): a form in, a bearer token out."""

    fake: FakeTextApi

    async def post(self) -> None:
        self.fake.token_requests += 1
        if self.fake.token_status is not None:
            self.set_status(self.fake.token_status)
            self.finish({"error": "temporarily_unavailable"})
            return
        form = {k: self.get_body_argument(k, "") for k in ("grant_type", "client_id",
                                                             "client_secret")}  # fmt: skip
        if form["grant_type"] != "client_credentials":
            self.set_status(400)
            self.finish({"error": "unsupported_grant_type"})
            return
        if (form["client_id"], form["client_secret"]) != self.fake.client:
            self.set_status(401)
            self.finish({"error": "invalid_client"})
            return
        token = "tok-" + secrets.token_hex(16)
        self.fake.tokens.add(token)
        self.fake.issued.append(token)
        self.finish(
            {"access_token": token, "token_type": "Bearer", "expires_in": self.fake.expires_in}
        )


class TokenCountHandler(FakeRoute):
    """``GET /_fake/tokens``: the exchanges so far (out of process, for the hub's tests)."""

    fake: FakeTextApi

    def get(self) -> None:
        self.finish({"token_requests": self.fake.token_requests})


class FakeTextApi(FakeServer):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.client = ("aiide", "client-secret-0123456789")
        self.tokens: set[str] = set()
        self.issued: list[str] = []
        self.token_requests = 0
        self.token_status: int | None = None
        self.expires_in = 3600
        self.raw: tuple[bytes, int, float] | None = None

    def revoke(self) -> None:
        self.tokens.clear()

    def routes(self) -> list[tuple[str, Any, dict[str, Any]]]:
        return [
            (r"/generate", GenerateHandler, {"fake": self}),
            (r"/oauth/token", TokenHandler, {"fake": self}),
            (r"/_fake/tokens", TokenCountHandler, {"fake": self}),
        ]


if __name__ == "__main__":
    from .standalone import serve

    serve(FakeTextApi)
