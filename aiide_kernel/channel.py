"""The per-kernel local channel: how code in a sandboxed kernel reaches the server.

A sandboxed kernel has no network, and Jupyter comms go to the browser, not the
server. So the server listens on a unix socket inside the kernel's private ipc
directory (0700, owned by the kernel's uid): only that kernel can connect, and
whatever it asks is answered as the kernel's owner, through the same gate
(identity, scopes, limits, metering) as the UI. ``%ai`` uses it.

The channel speaks plain HTTP/1.1 with JSON bodies: ``POST /v1/ask``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_unix_socket
from tornado.web import Application, RequestHandler

log = logging.getLogger("aiide.channel")

SOCKET_NAME = "aiide.sock"
ENV_VAR = "AIIDE_CHANNEL"
MAX_BODY = 1024 * 1024

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


class KernelChannels:
    """One listening unix socket per running sandboxed kernel."""

    _instance: KernelChannels | None = None

    def __init__(self) -> None:
        self.responder: Responder = _no_responder
        self._open: dict[str, _Open] = {}

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
        server = HTTPServer(app, max_body_size=MAX_BODY)
        server.add_sockets([sock])
        self._open[ipc_dir] = _Open(server, path, kernel_id)
        return path

    def assign(self, ipc_dir: str, kernel_id: str) -> None:
        if ipc_dir in self._open:
            self._open[ipc_dir].kernel_id = kernel_id

    def kernel_of(self, ipc_dir: str) -> str:
        return self._open[ipc_dir].kernel_id

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
        try:
            kernel_id = self.channels.kernel_of(self.key)
            status, reply = await self.channels.responder(kernel_id, path, body)
        except Exception:
            log.exception("aiide: kernel channel request failed")
            status, reply = 500, {"code": "internal", "message": "the server failed to answer"}
        self._reply(status, reply)

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))
