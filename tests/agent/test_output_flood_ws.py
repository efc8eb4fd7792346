"""A sandboxed kernel flooding output while a notebook is open in the lab (issue 13, bad
input): the kernel's messages go to the browser over the kernel channels WebSocket, the
path the lab uses (protocol ``v1.kernel.websocket.jupyter.org``), and Jupyter's own rate
limit counts only the bytes of ``stream`` messages. A real server, a real sandboxed kernel:
no message over the cap reaches the socket, the cell gets a notice naming the setting, the
kernel's later output still arrives, and the server answers ``/aiide/api/status``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
from jupyter_client.session import Session
from jupyter_server.services.kernels.connection.base import (
    deserialize_msg_from_ws_v1,
    serialize_msg_to_ws_v1,
)

from aiide_server_ext.output_cap import CappedKernelConnection

from .test_bad_input_sandbox import SANDBOXED, post_session, shutdown_all

pytestmark = pytest.mark.xdist_group("agent")

V1 = "v1.kernel.websocket.jupyter.org"
MIB = 1024 * 1024
MAX_MESSAGE = CappedKernelConnection.max_message_bytes.default_value
MAX_EXECUTION = CappedKernelConnection.max_execution_bytes.default_value

SINGLE = (
    "from IPython.display import HTML, display\n"
    "display(HTML('<b>x</b>' * 13_107_200))\n"  # 100 MiB in one message
    "print('end of flood')\n"
)
CHUNKED = (
    "from IPython.display import HTML, display\n"
    "chunk = '<b>x</b>' * 131072\n"  # 1 MiB, under the per-message cap
    "for _ in range(100):\n"
    "    display(HTML(chunk))\n"
    "print('end of flood')\n"
)
STREAM = (  # flushed, so the last line is a message of its own
    "import sys\nsys.stdout.write('x' * (100 * 1024 * 1024))\nsys.stdout.flush()\n"
    "print('end of flood')\n"
)


async def status_times(jp_fetch: Any, until: asyncio.Event) -> list[float]:
    """Seconds each ``/aiide/api/status`` took, asked every 50 ms until ``until``."""
    times: list[float] = []
    while not until.is_set():
        started = time.monotonic()
        response = await asyncio.wait_for(jp_fetch("aiide", "api", "status"), 30)
        assert response.code == 200
        times.append(time.monotonic() - started)
        await asyncio.sleep(0.05)
    return times


async def run_in_browser_channel(
    jp_fetch: Any, jp_ws_fetch: Any, code: str, protocol: str = V1
) -> tuple[list[tuple[int, dict[str, Any], dict[str, Any]]], list[float], list[float]]:
    """Runs ``code`` as the lab does; returns each iopub message the socket got for it
    (its size on the wire, header, content), and status times before and during."""
    session = await post_session(jp_fetch, "flood.ipynb", SANDBOXED)
    kid = json.loads(session.body)["kernel"]["id"]
    ws = await jp_ws_fetch(
        "api",
        "kernels",
        kid,
        "channels",
        params={"session_id": uuid.uuid4().hex},
        subprotocols=[protocol] if protocol else None,
        max_message_size=1 << 30,  # see whatever the server sends
    )
    packer = Session(key=b"browser")  # the browser's side does not sign: any key will do
    msg = packer.msg("execute_request", {"code": code, "silent": False, "store_history": True})
    idle = asyncio.Event()
    idle_times = await asyncio.wait_for(_idle_probe(jp_fetch), 60)
    prober = asyncio.ensure_future(status_times(jp_fetch, idle))
    if protocol:
        ws.write_message(serialize_msg_to_ws_v1(msg, "shell", packer.pack), binary=True)
    else:  # the legacy protocol: JSON text frames
        ws.write_message(json.dumps({**msg, "channel": "shell"}, default=str))
    got: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            frame = await asyncio.wait_for(ws.read_message(), deadline - time.monotonic())
            assert frame is not None, "the server closed the kernel socket"
            if isinstance(frame, str):
                whole = json.loads(frame)
                channel, header, parent = whole["channel"], whole["header"], whole["parent_header"]
                content = whole["content"]
            else:
                channel, parts = deserialize_msg_from_ws_v1(frame)
                header = json.loads(parts[0])
                parent = json.loads(parts[1]) if parts[1] else {}
                content = json.loads(parts[3]) if len(frame) < 2 * MAX_MESSAGE else {}
            if channel != "iopub" or parent.get("msg_id") != msg["header"]["msg_id"]:
                continue
            got.append((len(frame), header, content))
            if header["msg_type"] == "status" and content.get("execution_state") == "idle":
                break
    finally:
        idle.set()
        during = await prober
        ws.close()
    return got, idle_times, during


async def _idle_probe(jp_fetch: Any) -> list[float]:
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.call_later(1.0, done.set)
    return await status_times(jp_fetch, done)


def texts(got: list[tuple[int, dict[str, Any], dict[str, Any]]]) -> str:
    return "".join(c.get("text", "") for _, h, c in got if h["msg_type"] == "stream")


@pytest.mark.parametrize("code", [SINGLE, CHUNKED, STREAM], ids=["single", "chunks", "stream"])
async def test_a_sandboxed_kernel_flooding_output_is_capped_on_its_way_to_the_browser(
    code: str, jp_fetch: Any, jp_ws_fetch: Any, jp_serverapp: Any
) -> None:
    try:
        got, idle, during = await run_in_browser_channel(jp_fetch, jp_ws_fetch, code)
    finally:
        await shutdown_all(jp_serverapp)
    sizes = [size for size, _, _ in got]
    assert got and got[-1][1]["msg_type"] == "status", "the run never went idle"
    assert max(sizes) <= MAX_MESSAGE + 64 * 1024, max(sizes)
    assert sum(sizes) <= MAX_EXECUTION + MAX_MESSAGE, sum(sizes) // MIB
    said = texts(got)
    assert "end of flood" in said  # the kernel's output after the flood still shows
    assert "not sent to the browser" in said and "CappedKernelConnection" in said, said
    # The server kept answering while it handled the flood (a responsiveness bound, not a
    # speed claim: seconds when the loop is held, well under one second otherwise).
    assert during, "no status answered during the flood"
    print(f"status worst: idle {max(idle) * 1000:.0f} ms, flood {max(during) * 1000:.0f} ms")
    assert max(during) < max(1.0, 4 * max(idle)), (max(idle), max(during))


async def test_the_cap_holds_on_the_legacy_protocol_too(
    jp_fetch: Any, jp_ws_fetch: Any, jp_serverapp: Any
) -> None:
    """Clients that ask for no subprotocol get JSON text frames, built another way."""
    try:
        got, _, _ = await run_in_browser_channel(jp_fetch, jp_ws_fetch, SINGLE, protocol="")
    finally:
        await shutdown_all(jp_serverapp)
    assert max(size for size, _, _ in got) <= MAX_MESSAGE
    said = texts(got)
    assert "end of flood" in said and "max_message_bytes" in said, said
