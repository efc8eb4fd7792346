"""The chat socket's own frame writer (``ChatConnection.send``) against tornado's client:
frames of every length form (7-bit, 16-bit, 64-bit), and small frames sent while a large
one is still queued (send(2) took only part of it) arrive after it, whole and in order."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from tornado import web, websocket
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from aiide_server_ext.agent.handlers import ChatConnection

pytestmark = pytest.mark.asyncio

ROUNDS = 4
SIZES = [0, 5, 125, 126, 200, 65535, 65536, 70_000, 3_000_000, 10, 3_000_000, 1]


class Sender(websocket.WebSocketHandler):  # type: ignore[misc]
    def open(self, *args: Any, **kwargs: Any) -> None:
        self.task = asyncio.ensure_future(self.send_all())

    async def send_all(self) -> None:
        conn = ChatConnection(self, "u")  # type: ignore[arg-type]
        assert conn._socket is not None  # plain TCP: the direct path is the one tested
        for r in range(ROUNDS):
            for n, size in enumerate(SIZES):
                body = {"n": n, "r": r, "pad": "é" * (size // 2)}
                conn.send(json.dumps(body, ensure_ascii=False))
                await asyncio.sleep(0)  # the client reads meanwhile: the socket drains


async def test_frames_of_every_length_arrive_whole_and_in_order() -> None:
    sock, port = bind_unused_port()
    server = HTTPServer(web.Application([(r"/ws", Sender)]))
    server.add_sockets([sock])
    try:
        client = await websocket_connect_url(f"ws://127.0.0.1:{port}/ws")
        got = []
        for _ in range(ROUNDS * len(SIZES)):
            message = await asyncio.wait_for(client.read_message(), 60)
            assert isinstance(message, str)
            got.append(json.loads(message))
        client.close()
    finally:
        server.stop()
    order = [(r, n) for r in range(ROUNDS) for n in range(len(SIZES))]
    assert [(m["r"], m["n"]) for m in got] == order
    assert [len(m["pad"]) for m in got] == [size // 2 for _ in range(ROUNDS) for size in SIZES]


async def websocket_connect_url(url: str) -> Any:
    return await websocket.websocket_connect(url, max_message_size=16 << 20)
