"""The per-kernel local channel: %ai in a sandboxed kernel reaches the server over a
unix socket in the kernel's own ipc directory, and nothing else can reach it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from jupyter_client import AsyncKernelManager
from kernelrun import run_code
from traitlets.config import Config

from aiide_kernel.channel import KernelChannels

pytestmark = [pytest.mark.asyncio, pytest.mark.xdist_group("sandbox")]


@pytest.fixture
def channels() -> Iterator[list[tuple[str, str, dict[str, Any]]]]:
    """A server-side responder standing in for the agent: records what arrived."""
    seen: list[tuple[str, str, dict[str, Any]]] = []

    async def respond(
        kernel_id: str, path: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        seen.append((kernel_id, path, body))
        return 200, {"text": f"answer to: {body['prompt']}", "model": "test"}

    KernelChannels.instance().responder = respond
    yield seen
    KernelChannels.instance().close_all()
    KernelChannels._instance = None


async def test_ai_magic_reaches_the_server_over_the_local_channel(
    channels: list[tuple[str, str, dict[str, Any]]], sandbox_config: Config, workspace: str
) -> None:
    km = AsyncKernelManager(kernel_name="aiide-python", config=sandbox_config)
    await km.start_kernel(cwd=workspace)
    try:
        r = await run_code(
            km,
            "%load_ext aiide_kernel.magics\n"
            "import numbers\nxs = [1, 2, 3]\n"
            "%ai --format text --vars xs what is the sum",
        )
    finally:
        await km.shutdown_kernel(now=True)
    assert r.status == "ok", r
    assert r.stdout.strip() == "answer to: what is the sum"
    kernel_id, path, body = channels[0]
    assert kernel_id == km.kernel_id
    assert path == "ask"
    assert body["variables"]["xs"] == {"type": "builtins.list", "len": 3}


async def test_the_channel_socket_is_private_to_its_kernel(
    channels: list[tuple[str, str, dict[str, Any]]], sandbox_config: Config, workspace: str
) -> None:
    km = AsyncKernelManager(kernel_name="aiide-python", config=sandbox_config)
    await km.start_kernel(cwd=workspace)
    ipc_dir = os.path.dirname(km.connection_file)
    sock = os.path.join(ipc_dir, "aiide.sock")
    try:
        st = os.stat(sock)
        assert st.st_mode & 0o777 == 0o600
        assert os.stat(ipc_dir).st_mode & 0o777 == 0o700
    finally:
        await km.shutdown_kernel(now=True)
    assert not os.path.exists(sock)


async def test_without_an_aiide_server_the_magic_says_so(workspace: str) -> None:
    # A plain ipykernel, no server channel: the cell fails with a clear message (a run of
    # the notebook stops there), not a traceback.
    km = AsyncKernelManager(kernel_name="python3")
    await km.start_kernel(cwd=workspace)
    try:
        r = await run_code(km, "%load_ext aiide_kernel.magics\n%ai hello")
    finally:
        await km.shutdown_kernel(now=True)
    assert r.status == "error", r
    assert r.error.startswith("UsageError: aiide: %ai needs a kernel started by aiide"), r
