"""The per-kernel local channel: how code in a sandboxed kernel reaches the server.

A sandboxed kernel has no network, and Jupyter comms go to the browser, not the
server. So the server listens on a unix socket inside the kernel's private ipc
directory (0700, owned by the kernel's uid): only that kernel can connect, and
whatever it asks is answered as the identity that started the kernel, through the
same gate (identity, scopes, limits, metering) as the UI. ``%ai`` uses it.

Code in the kernel is untrusted: each kernel's socket holds at most
``max_connections`` open connections (more are answered 503 and closed) and
``max_concurrent`` requests in progress (more are 429), so a loop in a cell cannot
tie up the server.

The channel speaks plain HTTP/1.1 with JSON bodies: ``POST /v1/ask``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.iostream import IOStream, StreamClosedError
from tornado.netutil import bind_unix_socket
from tornado.web import Application, RequestHandler

log = logging.getLogger("aiide.channel")

SOCKET_NAME = "aiide.sock"
ENV_VAR = "AIIDE_CHANNEL"
MAX_BODY = 1024 * 1024
MAX_CONNECTIONS = 4
MAX_CONCURRENT = 2
REFUSAL_DRAIN_SECONDS = 2.0

#: Answers one request from a kernel: (kernel_id, path, body) -> (status, body).
Responder = Callable[[str, str, dict[str, Any]], Awaitable[tuple[int, dict[str, Any]]]]


async def _no_responder(
    kernel_id: str, path: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    return 503, {
        "code": "agent_unavailable",
        "message": "The aiide agent is not running in this Jupyter server, so %ai cannot answer.",
    }


@dataclass
class _Open:
    server: HTTPServer
    path: str
    kernel_id: str
    in_flight: int = 0


class _CappedServer(HTTPServer):  # type: ignore[misc]
    """Refuses a connection beyond the cap with a one-shot 503 saying why."""

    max_connections = MAX_CONNECTIONS
    _refusals: set[asyncio.Task[None]] = set()

    def handle_stream(self, stream: IOStream, address: Any) -> None:
        # tornado's HTTPServer tracks its open connections in ``_connections``.
        if len(getattr(self, "_connections", ())) >= self.max_connections:
            log.warning("aiide: kernel channel: connection refused (cap %d)", self.max_connections)
            task = asyncio.get_running_loop().create_task(self._refuse(stream))
            self._refusals.add(task)  # kept until done, so it is not garbage-collected
            task.add_done_callback(self._refusals.discard)
            return
        super().handle_stream(stream, address)

    async def _refuse(self, stream: IOStream) -> None:
        body = json.dumps(
            {
                "code": "too_many_connections",
                "message": f"this kernel already has {self.max_connections} connections open "
                "to the aiide server (the most allowed); close some and retry",
            }
        ).encode()
        head = (
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        try:
            await stream.write(head + body)
            # Half-close, then drain what the client sends (bounded): closing with its
            # request unread would reset the connection before it reads the answer.
            stream.socket.shutdown(socket.SHUT_WR)
            drained, deadline = 0, time.monotonic() + REFUSAL_DRAIN_SECONDS
            while drained < MAX_BODY and (left := deadline - time.monotonic()) > 0:
                chunk = await asyncio.wait_for(stream.read_bytes(65536, partial=True), left)
                drained += len(chunk)
        except (StreamClosedError, OSError, asyncio.TimeoutError):
            pass
        finally:
            stream.close()


class KernelChannels:
    """One listening unix socket per running sandboxed kernel."""

    _instance: KernelChannels | None = None

    def __init__(self) -> None:
        self.responder: Responder = _no_responder
        self._open: dict[str, _Open] = {}
        #: Per kernel socket (set by the server part from ``c.Agent.magic_max_*``).
        self.max_connections = MAX_CONNECTIONS
        self.max_concurrent = MAX_CONCURRENT

    @classmethod
    def instance(cls) -> KernelChannels:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    @classmethod
    def active(cls) -> bool:
        """Only a server that set a responder offers channels (not plain jupyter_client)."""
        return cls._instance is not None and cls._instance.responder is not _no_responder

    def reset_responder(self) -> None:
        """The server part that answered is stopping: kernels get 'agent unavailable'."""
        self.responder = _no_responder

    def open(self, ipc_dir: str, kernel_id: str, uid: int, gid: int) -> str:
        """Listen in one kernel's ipc directory; returns the socket path for the kernel.

        Keyed by the ipc directory: a pooled kernel gets its channel before it has
        a kernel id (``assign`` names it at handover), and restarts keep it."""
        self.close(ipc_dir)
        path = os.path.join(ipc_dir, SOCKET_NAME)
        sock = bind_unix_socket(path, mode=0o600)
        if os.geteuid() == 0:
            os.chown(path, uid, gid)
        app = Application([(r"/v1/(.*)", _ChannelHandler, {"channels": self, "key": ipc_dir})])
        server = _CappedServer(app, max_body_size=MAX_BODY)
        server.max_connections = self.max_connections
        server.add_sockets([sock])
        self._open[ipc_dir] = _Open(server, path, kernel_id)
        return path

    def assign(self, ipc_dir: str, kernel_id: str) -> None:
        if ipc_dir in self._open:
            self._open[ipc_dir].kernel_id = kernel_id

    def kernel_of(self, ipc_dir: str) -> str:
        return self._open[ipc_dir].kernel_id

    def opened(self, ipc_dir: str) -> _Open | None:
        return self._open.get(ipc_dir)

    def close(self, ipc_dir: str) -> None:
        opened = self._open.pop(ipc_dir, None)
        if opened is not None:
            opened.server.stop()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(opened.path)

    def close_all(self) -> None:
        for key in list(self._open):
            self.close(key)


class _ChannelHandler(RequestHandler):  # type: ignore[misc]
    def initialize(self, channels: KernelChannels, key: str) -> None:
        self.channels = channels
        self.key = key

    def check_xsrf_cookie(self) -> None:
        """Not a browser: the socket is reachable only from inside this kernel's sandbox."""

    async def post(self, path: str) -> None:
        try:
            body = json.loads(self.request.body or b"{}")
            if not isinstance(body, dict):
                raise ValueError("expected a JSON object")
        except ValueError as e:
            self._reply(400, {"code": "bad_request", "message": f"malformed JSON: {e}"})
            return
        opened = self.channels.opened(self.key)
        if opened is None:
            self._reply(503, {"code": "channel_closed", "message": "this channel is closing"})
            return
        cap = self.channels.max_concurrent
        if opened.in_flight >= cap:
            self._reply(
                429,
                {
                    "code": "too_many_requests",
                    "message": f"this kernel already has {cap} %ai requests in progress "
                    "(the most allowed); wait for them to finish",
                },
            )
            return
        opened.in_flight += 1
        try:
            status, reply = await self.channels.responder(opened.kernel_id, path, body)
        except Exception:
            log.exception("aiide: kernel channel request failed")
            status, reply = 500, {"code": "internal", "message": "the server failed to answer"}
        finally:
            opened.in_flight -= 1
        self._reply(status, reply)

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))
