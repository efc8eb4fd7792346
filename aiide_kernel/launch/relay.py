"""Relay between the ports a gateway assigned and the kernel's sandbox-only sockets.

A sandboxed kernel has no network, so it binds ZMQ ``ipc`` sockets in its private
ipc directory; a gateway (Enterprise Gateway, plain jupyter_client) connects to the
TCP ports it wrote into the connection file. One relay pair per channel joins them:

- shell, control, stdin, hb: ROUTER (gateway side) ↔ DEALER (kernel side). The kernel
  echoes the routing frames it receives, so replies find their way back. shell and
  stdin share one DEALER identity: ipykernel addresses ``input_request`` on stdin to
  the identity the shell request came from, as a direct client's session would.
- iopub: XPUB ↔ XSUB, subscribed to everything; the gateway's subscriptions are
  forwarded too.

Messages are forwarded as opaque frames: the relay never parses or re-signs them.
Nothing goes to the kernel until all five kernel-side sockets have completed their
handshake: the sockets connect independently, and an ``input_request`` sent on stdin
before the relay's stdin socket is known to the kernel would be dropped silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from dataclasses import dataclass
from typing import Any

import zmq
import zmq.asyncio

CHANNELS = ("shell", "iopub", "stdin", "control", "hb")
#: The identity of every kernel-side DEALER (see module docstring).
RELAY_IDENTITY = b"aiide-launch"


class RelayError(RuntimeError):
    """The relay cannot serve the connection file it was given; the message says why."""


@dataclass(frozen=True)
class Endpoints:
    """Where one side's five sockets are: a transport, an address and a port each."""

    transport: str
    ip: str
    ports: dict[str, int]

    def url(self, channel: str) -> str:
        port = self.ports[channel]
        if self.transport == "ipc":
            return f"ipc://{self.ip}-{port}"
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"tcp://{host}:{port}"

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> Endpoints:
        transport = str(info.get("transport", "tcp"))
        if transport not in ("tcp", "ipc"):
            raise RelayError(f"connection file transport {transport!r} is neither tcp nor ipc")
        ports: dict[str, int] = {}
        for channel in CHANNELS:
            value = info.get(f"{channel}_port")
            if not isinstance(value, int) or value <= 0:
                raise RelayError(
                    f"connection file has no usable {channel}_port ({value!r}): "
                    "the gateway must assign every port before the launch"
                )
            ports[channel] = value
        if len(set(ports.values())) != len(ports):
            raise RelayError("connection file assigns the same port to two channels")
        ip = str(info.get("ip") or "127.0.0.1")
        return cls(transport, ip, ports)


def read_connection_file(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except FileNotFoundError:
        raise RelayError(f"connection file {path} does not exist") from None
    except (OSError, ValueError) as e:
        raise RelayError(f"connection file {path} is unreadable: {e}") from None
    if not isinstance(info, dict):
        raise RelayError(f"connection file {path} is not a JSON object")
    if not info.get("key"):
        raise RelayError(
            f"connection file {path} has no HMAC key: refusing to start a kernel "
            "whose messages anyone on the machine could forge"
        )
    return info


def kernel_side_info(gateway_info: dict[str, Any], ipc_prefix: str) -> dict[str, Any]:
    """The kernel's own connection file: the gateway's key and scheme, ipc sockets."""
    info: dict[str, Any] = {
        "transport": "ipc",
        "ip": ipc_prefix,
        "key": gateway_info["key"],
        "signature_scheme": gateway_info.get("signature_scheme", "hmac-sha256"),
        "kernel_name": gateway_info.get("kernel_name", ""),
    }
    for number, channel in enumerate(CHANNELS, start=1):
        info[f"{channel}_port"] = number
    return info


def write_private_json(path: str, info: dict[str, Any]) -> None:
    """Write a connection file readable by its owner only (it holds the HMAC key)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(info, f, indent=1)


class Relay:
    """Five forwarding socket pairs on one asyncio loop."""

    def __init__(self, outside: Endpoints, inside: Endpoints) -> None:
        self.outside = outside
        self.inside = inside
        self._ctx = zmq.asyncio.Context()
        self._sockets: list[zmq.asyncio.Socket] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._monitors: list[zmq.asyncio.Socket] = []
        #: Set once every kernel-side socket has a live connection to the kernel.
        self.ready = asyncio.Event()

    def start(self) -> None:
        """Bind the gateway's ports (failing at once if one is taken), connect the
        kernel's sockets (queued until the kernel binds them), start forwarding."""
        try:
            backs = []
            for channel in CHANNELS:
                front, back = self._pair(channel)
                backs.append(back)
                self._forward(front, back, gated=True)
                self._forward(back, front)
            self._spawn(self._await_kernel(backs))
        except BaseException:
            self.close()
            raise

    def _pair(self, channel: str) -> tuple[zmq.asyncio.Socket, zmq.asyncio.Socket]:
        if channel == "iopub":
            front = self._socket(zmq.XPUB)
            back = self._socket(zmq.XSUB)
            # Subscribed to everything from the start: the kernel publishes to the relay
            # as soon as they connect, and a gateway subscribing later (a reconnect after
            # a restart) does not wait for its subscription to travel a second hop.
            back.send(b"\x01")
        else:
            front = self._socket(zmq.ROUTER)
            back = self._socket(zmq.DEALER)
            back.setsockopt(zmq.IDENTITY, RELAY_IDENTITY)
        url = self.outside.url(channel)
        try:
            front.bind(url)
        except zmq.ZMQError as e:
            raise RelayError(f"cannot listen on {url} for the {channel} channel: {e}") from None
        self._monitors.append(back.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED))
        back.connect(self.inside.url(channel))
        return front, back

    def _socket(self, kind: int) -> zmq.asyncio.Socket:
        sock = self._ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        self._sockets.append(sock)
        return sock

    async def _await_kernel(self, backs: list[zmq.asyncio.Socket]) -> None:
        for monitor in self._monitors:
            await monitor.recv_multipart()  # only handshake events were asked for
        for back in backs:
            back.disable_monitor()
        self.ready.set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _forward(
        self, src: zmq.asyncio.Socket, dst: zmq.asyncio.Socket, gated: bool = False
    ) -> None:
        self._spawn(self._pump(src, dst, self.ready if gated else None))

    @staticmethod
    async def _pump(
        src: zmq.asyncio.Socket, dst: zmq.asyncio.Socket, gate: asyncio.Event | None
    ) -> None:
        if gate is not None:
            await gate.wait()  # requests wait in the gateway-side socket meanwhile
        while True:
            frames = await src.recv_multipart(copy=False)
            await dst.send_multipart(frames, copy=False)

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, zmq.ZMQError):
                await task
        self.close()

    def close(self) -> None:
        for sock in [*self._monitors, *self._sockets]:
            sock.close(linger=0)
        self._sockets.clear()
        self._monitors.clear()
        self._ctx.term()
