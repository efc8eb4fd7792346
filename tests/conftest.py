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


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One table instead of a line per skip: each suite, what ran, what was skipped,
    and the command that enables the skipped ones (see tests/optional.py)."""
    from optional import ALL_SYSTEM, parse_reason

    ran: dict[str, int] = {}
    skipped: dict[str, int] = {}
    enable: dict[str, dict[str, None]] = {}
    other: dict[str, int] = {}
    for outcome in ("passed", "failed", "error", "xfailed", "xpassed", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(report, "nodeid", "")
            if not nodeid or (outcome == "passed" and report.when != "call"):
                continue
            parts = nodeid.split("/")
            suite = parts[1] if len(parts) > 2 and parts[0] == "tests" else parts[0]
            if outcome != "skipped":
                ran[suite] = ran.get(suite, 0) + 1
                continue
            skipped[suite] = skipped.get(suite, 0) + 1
            longrepr = report.longrepr
            text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
            parsed = parse_reason(text.removeprefix("Skipped: "))
            if parsed is None:
                other[suite] = other.get(suite, 0) + 1
            else:
                enable.setdefault(suite, {})[parsed[2]] = None
    if not skipped:
        return
    write = terminalreporter.write_line
    terminalreporter.section("suites", sep="=")
    write(f"{'suite':<12} {'ran':>5} {'skipped':>8}  to run the skipped ones")
    for suite in sorted(set(ran) | set(skipped)):
        how = "; ".join(enable.get(suite, {}))
        if other.get(suite):
            how = (how + "; " if how else "") + f"{other[suite]} skipped by the tests themselves"
        write(f"{suite:<12} {ran.get(suite, 0):>5} {skipped.get(suite, 0):>8}  {how}")
    write(f"every system component at once, as root: {ALL_SYSTEM}")
