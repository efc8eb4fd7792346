"""Lean load-generator clients for ``chat_stream.py`` (b): hundreds of streams at once.

The load generator shares two cores with the server and the fake model. Tornado's WebSocket
and HTTP clients cost tens of microseconds a frame (futures, coroutine wake-ups, per-frame
decoding), which at 10,000 frames a second is CPU taken from the server under test, on
both sides of the comparison unequally (the aiide path has more frames than the direct one
once the server merges tokens). These clients do the least a measurement needs while the
stream runs: frame or chunk boundaries and an arrival timestamp. Everything else (JSON,
splitting words, checking order) happens after the stream ends.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import struct
import time
from typing import Any

STAMP = re.compile(rb"(t\d+)@(\d+\.\d+)")


class LeanWebSocket(asyncio.Protocol):
    """A WebSocket client for unmasked, unfragmented server text frames (what tornado sends
    without compression). Token frames are kept as bytes with their arrival time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = False
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.finished: asyncio.Future[dict[str, Any]] = loop.create_future()
        #: Raw token frames and when each arrived (time.time()).
        self.tokens: list[tuple[bytes, float]] = []
        self.first: float | None = None

    @classmethod
    async def connect(cls, host: str, port: int, path: str, token: str) -> LeanWebSocket:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(cls, host, port)
        key = base64.b64encode(os.urandom(16)).decode()
        assert proto.transport is not None
        proto.transport.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nAuthorization: token {token}\r\n\r\n"
            ).encode()
        )
        await proto.opened
        return proto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        for fut in (self.opened, self.finished):
            if not fut.done():
                fut.set_exception(ConnectionError("socket closed"))

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(ConnectionError(bytes(buf[:200]).decode("latin-1")))
                return
            del buf[: end + 4]
            self.upgraded = True
        while len(buf) >= 2:
            opcode, length, head = buf[0] & 0x0F, buf[1] & 0x7F, 2
            if length == 126:
                if len(buf) < 4:
                    return
                length, head = int.from_bytes(buf[2:4], "big"), 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length, head = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < head + length:
                return
            payload = bytes(buf[head : head + length])
            del buf[: head + length]
            if opcode == 1:
                self._text(payload, now)
            elif opcode == 9:  # ping: answer so the server keeps the socket
                self._send(0xA, payload)

    def _text(self, payload: bytes, now: float) -> None:
        if payload.startswith(b'{"type":"token"'):
            if self.first is None:
                self.first = now
            self.tokens.append((payload, now))
            return
        message = json.loads(payload)
        if message["type"] == "hello":
            self.opened.set_result(None)
        elif message["type"] in ("run_finished", "error") and not self.finished.done():
            self.finished.set_result(message)

    def _send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        key = (mask * (n // 4 + 1))[:n]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
        assert self.transport is not None
        self.transport.write(head + mask + masked)

    def send_json(self, body: dict[str, Any]) -> None:
        self._send(0x1, json.dumps(body).encode())

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class LeanSSE(asyncio.Protocol):
    """One streaming ``POST /v1/messages`` to the fake; keeps each stamped token's arrival."""

    def __init__(self) -> None:
        self.tail = b""
        self.stamps: list[tuple[bytes, float, float]] = []  # word, sent, received
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @classmethod
    async def stream(cls, host: str, port: int, key: str, body: dict[str, Any]) -> LeanSSE:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_connection(cls, host, port)
        data = json.dumps(body).encode()
        transport.write(
            (
                f"POST /v1/messages HTTP/1.1\r\nHost: {host}:{port}\r\nx-api-key: {key}\r\n"
                "anthropic-version: 2023-06-01\r\ncontent-type: application/json\r\n"
                f"content-length: {len(data)}\r\nConnection: close\r\n\r\n"
            ).encode()
            + data
        )
        await proto.done
        return proto

    def data_received(self, data: bytes) -> None:
        now = time.time()
        data = self.tail + data
        # SSE events end with a blank line; HTTP chunk framing never contains one.
        end = data.rfind(b"\n\n")
        if end < 0:
            self.tail = data
            return
        self.tail = data[end:]
        for word, sent in STAMP.findall(data, 0, end):
            self.stamps.append((word, float(sent), now))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)
