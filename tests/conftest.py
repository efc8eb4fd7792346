"""Shared fixtures: which sandbox backends are usable, kernels in each of them.

A test for a backend that is not available here is skipped with the reason, except
under CI (CI=true), where a missing backend fails: CI must prove both backends.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from jupyter_client import AsyncKernelManager
from sandbox_support import require_backend
from traitlets.config import Config

# pytest-jupyter's fixtures (a real Jupyter server per test). Its autouse event-loop
# fixture applies to every test; browser tests override it (tests/e2e/conftest.py).
pytest_plugins = ["pytest_jupyter.jupyter_server"]

BACKENDS = ["bwrap", "docker"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    require_backend(request.param)
    return str(request.param)


@pytest.fixture
def workspace(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ws")
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def sandbox_config(backend: str, workspace: str) -> Config:
    c = Config()
    c.SandboxPolicy.backend = backend
    c.SandboxPolicy.workspace_root = os.path.dirname(workspace)
    c.SandboxPolicy.memory_limit = "512M"
    c.SandboxPolicy.tmp_size = "64M"
    c.SandboxPolicy.max_processes = 64
    c.SandboxPolicy.max_file_size = "64M"
    return c


@pytest_asyncio.fixture
async def sandboxed_km(sandbox_config: Config, workspace: str) -> AsyncIterator[AsyncKernelManager]:
    km = AsyncKernelManager(kernel_name="aiide-python", config=sandbox_config)
    await km.start_kernel(cwd=workspace)
    try:
        yield km
    finally:
        if km.has_kernel:
            await km.shutdown_kernel(now=True)


@pytest.fixture
def server_secret(monkeypatch: pytest.MonkeyPatch) -> str:
    """A secret in the server's environment that no kernel may see."""
    value = "sk-ant-test-" + os.urandom(8).hex()
    monkeypatch.setenv("ANTHROPIC_API_KEY", value)
    return value
