"""Fixtures for the agent: the provider fakes, and a real Jupyter server talking to them.

Server tests (jp_fetch / jp_ws_fetch) run on pytest-jupyter's loop and are not marked
asyncio; the ``fake_*`` fixtures start their servers on that loop. Plain async unit tests
are marked asyncio and use the ``afake_*`` fixtures, started on pytest-asyncio's loop.
A server test changes ``c.Agent.*`` with ``@pytest.mark.agent_config(name=value)``.
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
from traitlets.config import Config

KEY = "sk-ant-test-key-0123456789"
OAI_KEY = "sk-oai-test-key-0123456789"
KERNELSPEC = Path(__file__).parents[2] / "share" / "kernels" / "aiide-python"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "agent_config(**traits): c.Agent.* for the test's server (Capitalised keys: sections)",
    )


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


def agent_config(anthropic_url: str, openai_url: str, **overrides: Any) -> dict[str, Any]:
    """c.Agent.* pointing at the fakes: model 'claude' first, 'local' as its fallback."""
    caps = ["chat", "tools", "complete"]
    return {
        "providers": {
            "anthropic": {
                "kind": "anthropic",
                "base_url": anthropic_url,
                "api_key_env": "AIIDE_T_ANTHROPIC",
            },
            "local": {
                "kind": "openai",
                "base_url": openai_url + "/v1",
                "api_key_env": "AIIDE_T_OPENAI",
            },
        },
        "models": [
            {
                "name": "claude",
                "provider": "anthropic",
                "model": "claude-test",
                "capabilities": caps,
            },
            {
                "name": "local",
                "provider": "local",
                "model": "llama-test",
                "capabilities": caps,
                "latency": 2,
            },
        ],
        "approval_timeout": 60.0,
        "preload": False,
        **overrides,
    }


def server_config(
    root: Path,
    anthropic: FakeAnthropic,
    openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    sections: dict[str, Any] | None = None,
    **agent: Any,
) -> Config:
    """A Jupyter server with aiide on the fakes (their keys in its environment):
    ``agent`` sets ``c.Agent.*``, ``sections`` add or replace whole config sections."""
    monkeypatch.setenv("AIIDE_T_ANTHROPIC", KEY)
    monkeypatch.setenv("AIIDE_T_OPENAI", OAI_KEY)
    root.chmod(0o755)
    return Config(
        {
            "ServerApp": {"jpserver_extensions": {"aiide_server_ext": True}},
            "AiideExtension": {"prewarm_kernels": False},
            "Knowledge": {"enabled": False},  # its own suite; a stub stands in where needed
            "KernelPool": {"size": 0},
            "SandboxPolicy": {"memory_limit": "512M", "max_processes": 64},
            "Agent": agent_config(anthropic.url, openai.url, **agent),
            "Router": {"retry_base_delay": 0.01, "idle_timeout": 5.0},
            **(sections or {}),
        }
    )


@pytest.fixture
def jp_server_config(
    jp_root_dir: Path,
    fake_anthropic: FakeAnthropic,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Config:
    marker = request.node.get_closest_marker("agent_config")
    overrides = dict(marker.kwargs) if marker else {}
    sections = {k: overrides.pop(k) for k in list(overrides) if k[0].isupper()}
    return server_config(
        jp_root_dir, fake_anthropic, fake_openai, monkeypatch, sections, **overrides
    )


@pytest.fixture(autouse=True)
def aiide_kernelspec(jp_env_jupyter_path: Path) -> None:
    """pytest-jupyter isolates Jupyter's paths; install the kernelspec there."""
    target = jp_env_jupyter_path / "kernels" / "aiide-python"
    if not target.exists():
        shutil.copytree(KERNELSPEC, target)
