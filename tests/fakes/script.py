"""What a fake answers: a queue of scripted replies, and the server plumbing both fakes share.

A test pushes ``Reply`` objects (or, out of process, their JSON via ``POST /_fake/script``);
each model request pops one. When the queue is empty the ``default`` reply answers. Replies
pushed for a key (``push_for``, ``?key=``) answer only requests whose body holds that key.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from tornado import httpserver, web
from tornado.iostream import StreamClosedError


@dataclass
class ToolUse:
    name: str
    input: dict[str, Any] | None = None
    #: Sent verbatim as the tool's JSON arguments (to script invalid JSON).
    raw: str | None = None
    id: str | None = None

    def arguments(self) -> str:
        return self.raw if self.raw is not None else json.dumps(self.input or {})


@dataclass
class Reply:
    text: str = ""
    #: Explicit text chunks; by default the text is split after each space.
    chunks: list[str] | None = None
    tools: list[ToolUse] = field(default_factory=list)
    #: Non-200 statuses answer with the provider's error body and no stream.
    status: int = 200
    error_type: str | None = None
    message: str = "scripted error"
    retry_after: float | None = None
    #: Seconds before the first event, and between stream events.
    first_delay: float = 0.0
    delay: float = 0.0
    #: After this many text chunks: stop sending (hang) / close the connection.
    stall_after: int | None = None
    drop_after: int | None = None
    #: An in-stream error event after the text (e.g. "overloaded_error").
    stream_error: str | None = None
    stop_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    #: Append "@<send time>" to each text chunk (benchmarks measure per-token latency).
    stamp: bool = False

    def stamped(self, chunk: str) -> str:
        return f"{chunk.rstrip()}@{time.time():.6f} " if self.stamp else chunk

    def text_chunks(self) -> list[str]:
        if self.chunks is not None:
            return list(self.chunks)
        return re.findall(r"\s*\S+\s*|\s+", self.text)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reply:
        tools = [ToolUse(**t) for t in data.pop("tools", [])]
        return cls(tools=tools, **data)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def estimate_tokens(payload: Any) -> int:
    """About four characters a token: the fakes' (and aiide's) estimate."""
    return max(1, len(json.dumps(payload, separators=(",", ":"))) // 4)


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    auth: str  # "x-api-key", "bearer" or "none"


class FakeServer:
    """A tornado HTTP server on 127.0.0.1 with a script queue and a request log."""

    def __init__(self, api_key: str | None = None, default: Reply | None = None) -> None:
        self.api_key = api_key
        self.default = default or Reply(text="ok")
        self.script: deque[Reply] = deque()
        #: Scripts by a key the request's body holds (``push_for``).
        self.keyed: dict[str, deque[Reply]] = {}
        self.requests: list[Recorded] = []
        self.port = 0
        self._server: httpserver.HTTPServer | None = None
        #: Streams currently open (to check that clients really hang up).
        self.open_streams = 0

    # -- scripting ---------------------------------------------------------------
    def push(self, *replies: Reply) -> None:
        self.script.extend(replies)

    def push_for(self, key: str, *replies: Reply) -> None:
        """Replies for the requests whose body holds ``key`` (e.g. a notebook's name), so
        runs in one process, at the same time, each get their own script."""
        self.keyed.setdefault(key, deque()).extend(replies)

    def next_reply(self, body: dict[str, Any] | None = None) -> Reply:
        if self.keyed and body is not None:
            text = json.dumps(body)
            for key, queue in self.keyed.items():
                if key in text:
                    return queue.popleft() if queue else self.default
        return self.script.popleft() if self.script else self.default

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- serving -----------------------------------------------------------------
    def routes(self) -> list[tuple[str, Any, dict[str, Any]]]:
        raise NotImplementedError

    def application(self) -> web.Application:
        control = [
            (r"/_fake/script", ScriptHandler, {"fake": self}),
            (r"/_fake/requests", RequestsHandler, {"fake": self}),
            (r"/_fake/default", DefaultHandler, {"fake": self}),
        ]
        return web.Application([*self.routes(), *control])

    async def start(self, port: int = 0) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(1024)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self._server = httpserver.HTTPServer(self.application(), idle_connection_timeout=60)
        self._server.add_sockets([sock])
        return self.url

    async def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            await self._server.close_all_connections()
            self._server = None

    def check_auth(self, handler: web.RequestHandler) -> str | None:
        """Record how the client authenticated; None when it must be refused. A handler
        whose API takes its key elsewhere says where (``credential``)."""
        own = getattr(handler, "credential", None)
        if own is not None:
            how, given = own()
            accepted = getattr(handler, "accepts", lambda key: key == self.api_key)
            return how if self.api_key is None or accepted(given) else None
        key = handler.request.headers.get("x-api-key")
        bearer = handler.request.headers.get("Authorization", "")
        if key is not None:
            how, given = "x-api-key", key
        elif bearer.lower().startswith("bearer "):
            how, given = "bearer", bearer[7:]
        else:
            how, given = "none", None
        if self.api_key is not None and given != self.api_key:
            return None
        return how


class FakeRoute(web.RequestHandler):
    """Base of every route of a fake: it knows its fake, and takes POSTs without XSRF (a
    model API and the test's own control routes are called by programs)."""

    fake: FakeServer

    def initialize(self, fake: FakeServer) -> None:
        self.fake = fake

    def check_xsrf_cookie(self) -> None:
        return None


class FakeHandler(FakeRoute):
    """Base of the model routes: parse, authenticate, record, pick the reply."""

    def begin(self) -> tuple[dict[str, Any], Reply] | None:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            self.fail(400, "invalid_request_error", "body is not JSON")
            return None
        how = self.fake.check_auth(self)
        headers = {k.lower(): v for k, v in self.request.headers.items()}
        for secret in ("x-api-key", "authorization", "api-key", "x-goog-api-key"):
            if secret in headers:
                headers[secret] = "<redacted>"
        self.fake.requests.append(Recorded(self.request.path, headers, body, how or "refused"))
        if how is None:
            self.fail(401, "authentication_error", "invalid x-api-key")
            return None
        reply = self.fake.next_reply(body)
        if reply.status != 200:
            if reply.retry_after is not None:
                self.set_header("retry-after", str(reply.retry_after))
            self.fail(reply.status, reply.error_type or "api_error", reply.message)
            return None
        return body, reply

    def fail(self, status: int, kind: str, message: str) -> None:
        raise NotImplementedError

    async def send(self, chunk: str, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        self.write(chunk)
        await self.flush()

    async def pace(self, reply: Reply, n: int) -> bool:
        """Before text chunk n: wait, or stall / drop as scripted (False: stop sending)."""
        if reply.stall_after is not None and n >= reply.stall_after:
            await self.stall()
            return False
        if reply.drop_after is not None and n >= reply.drop_after:
            self.drop()
            return False
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return True

    async def stall(self) -> None:
        """Send nothing more until the client gives up."""
        while not self.request.connection.stream.closed():  # type: ignore[union-attr]
            await asyncio.sleep(0.05)

    def drop(self) -> None:
        self.request.connection.stream.close()  # type: ignore[union-attr]

    def on_connection_close(self) -> None:
        self.closed_by_client = True


class ScriptHandler(FakeRoute):
    """``POST /_fake/script`` a JSON list of replies; ``DELETE`` clears the queue."""

    def post(self) -> None:
        data = json.loads(self.request.body)
        replies = [Reply.from_json(dict(r)) for r in data]
        key = self.get_argument("key", None)
        if key:  # ?key=K: for the requests whose body holds K
            self.fake.push_for(key, *replies)
            self.finish({"queued": len(self.fake.keyed[key])})
            return
        self.fake.push(*replies)
        self.finish({"queued": len(self.fake.script)})

    def delete(self) -> None:
        self.fake.script.clear()
        self.fake.keyed.clear()
        self.fake.requests.clear()
        self.set_status(204)


class DefaultHandler(FakeRoute):
    """``PUT /_fake/default`` a reply (JSON): the answer once the script is empty."""

    def put(self) -> None:
        self.fake.default = Reply.from_json(json.loads(self.request.body))
        self.set_status(204)


class RequestsHandler(FakeRoute):
    def get(self) -> None:
        self.finish({"requests": [asdict(r) for r in self.fake.requests]})


async def streaming(handler: FakeHandler, run: Any) -> None:
    """Run a streaming body, tolerating the client hanging up (that is a test case)."""
    handler.fake.open_streams += 1
    try:
        await run()
    except StreamClosedError:
        pass
    finally:
        handler.fake.open_streams -= 1
