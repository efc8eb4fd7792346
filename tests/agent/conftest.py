"""Fixtures for the agent: the provider fakes, and a real Jupyter server talking to them.

Server tests (jp_fetch / jp_ws_fetch) run on pytest-jupyter's loop and are not marked
asyncio; the ``fake_*`` fixtures start their servers on that loop. Plain async unit tests
are marked asyncio and use the ``afake_*`` fixtures, started on pytest-asyncio's loop.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from fakes import FakeAnthropic, FakeOpenAI

pytest_plugins = ["pytest_jupyter.jupyter_server"]

KEY = "sk-ant-test-key-0123456789"
OAI_KEY = "sk-oai-test-key-0123456789"
KERNELSPEC = Path(__file__).parents[2] / "share" / "kernels" / "aiide-python"


def _serve(loop: asyncio.AbstractEventLoop, fake: Any) -> Iterator[Any]:
    loop.run_until_complete(fake.start())
    yield fake
    loop.run_until_complete(fake.stop())


@pytest.fixture
def fake_anthropic(jp_asyncio_loop: asyncio.AbstractEventLoop) -> Iterator[FakeAnthropic]:
    yield from _serve(jp_asyncio_loop, FakeAnthropic(api_key=KEY))


@pytest.fixture
def fake_openai(jp_asyncio_loop: asyncio.AbstractEventLoop) -> Iterator[FakeOpenAI]:
    yield from _serve(jp_asyncio_loop, FakeOpenAI(api_key=OAI_KEY))


@pytest_asyncio.fixture
async def afake_anthropic() -> AsyncIterator[FakeAnthropic]:
    fake = FakeAnthropic(api_key=KEY)
    await fake.start()
    yield fake
    await fake.stop()


@pytest_asyncio.fixture
async def afake_openai() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI(api_key=OAI_KEY)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def aiide_kernelspec(jp_env_jupyter_path: Path) -> None:
    """pytest-jupyter isolates Jupyter's paths; install the kernelspec there."""
    shutil.copytree(KERNELSPEC, jp_env_jupyter_path / "kernels" / "aiide-python")
