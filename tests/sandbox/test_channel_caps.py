"""The kernel channel's caps hold whatever code in the kernel does: concurrent
requests beyond ``max_concurrent`` are a 429, connections beyond ``max_connections``
a 503, each with a code and a message saying why."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kernelrun import ask_channel as ask

from aiide_kernel.channel import KernelChannels

pytestmark = pytest.mark.asyncio


@pytest.fixture
def channels() -> Iterator[KernelChannels]:
    KernelChannels._instance = None
    yield KernelChannels.instance()
    KernelChannels.instance().close_all()
    KernelChannels._instance = None


async def test_requests_beyond_the_concurrency_cap_are_429(
    channels: KernelChannels, tmp_path: Path
) -> None:
    release = asyncio.Event()

    async def slow(kernel_id: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        await release.wait()
        return 200, {"text": "done"}

    channels.responder = slow
    channels.max_concurrent = 2
    sock = channels.open(str(tmp_path), "k1", os.getuid(), os.getgid())
    first = [asyncio.ensure_future(ask(sock)) for _ in range(2)]
    await asyncio.sleep(0.3)  # both are in progress
    status, body = await ask(sock)
    assert (status, body["code"]) == (429, "too_many_requests")
    release.set()
    assert [s for s, _ in await asyncio.gather(*first)] == [200, 200]
    assert (await ask(sock))[0] == 200  # the slots are free again


async def test_connections_beyond_the_cap_are_refused_with_a_message(
    channels: KernelChannels, tmp_path: Path
) -> None:
    channels.max_connections = 3
    sock = channels.open(str(tmp_path), "k1", os.getuid(), os.getgid())
    held = [await asyncio.open_unix_connection(sock) for _ in range(3)]
    try:
        await asyncio.sleep(0.2)
        results = await asyncio.gather(*[ask(sock) for _ in range(5)])
        assert {(s, b["code"]) for s, b in results} == {(503, "too_many_connections")}
        assert "3 connections" in results[0][1]["message"]
    finally:
        for _, writer in held:
            writer.close()
