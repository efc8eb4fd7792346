"""Without a writable cgroup a bwrap kernel is bounded by rlimits, or refused.

"No writable cgroup" is simulated with ``c.SandboxPolicy.cgroup_root`` pointing at an
empty directory; the kernels are real bwrap kernels."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio
from jupyter_client import AsyncKernelManager
from kernelrun import run_code
from sandbox_support import require_backend
from traitlets.config import Config

from aiide_kernel import cgroups
from aiide_kernel.backends.bwrap import BwrapBackend

pytestmark = [pytest.mark.xdist_group("sandbox")]

Starter = Callable[[Config, str], Awaitable[AsyncKernelManager]]

GiB = 1024**3


@pytest.fixture
def no_cgroup(tmp_path_factory: pytest.TempPathFactory) -> str:
    require_backend("bwrap")
    return str(tmp_path_factory.mktemp("empty-cgroup-root"))


def _config(workspace: str, cgroup_root: str, **policy: object) -> Config:
    c = Config()
    c.SandboxPolicy.backend = "bwrap"
    c.SandboxPolicy.workspace_root = workspace.rsplit("/", 1)[0]
    c.SandboxPolicy.memory_limit = "1G"
    c.SandboxPolicy.tmp_size = "64M"
    c.SandboxPolicy.max_processes = 48
    c.SandboxPolicy.max_file_size = "64M"
    c.SandboxPolicy.cgroup_root = cgroup_root
    for key, value in policy.items():
        setattr(c.SandboxPolicy, key, value)
    return c


@pytest_asyncio.fixture
async def start() -> AsyncIterator[Starter]:
    started: list[AsyncKernelManager] = []

    async def _start(config: Config, workspace: str) -> AsyncKernelManager:
        km = AsyncKernelManager(kernel_name="aiide-python", config=config)
        started.append(km)
        await km.start_kernel(cwd=workspace)
        return km

    yield _start
    for km in started:
        if km.has_kernel:
            await km.shutdown_kernel(now=True)


async def limits(km: AsyncKernelManager) -> dict[str, str]:
    """The kernel's own /proc/self/limits: name -> soft limit."""
    r = await run_code(km, "print(open('/proc/self/limits').read())")
    assert r.status == "ok", r
    out: dict[str, str] = {}
    for line in r.stdout.splitlines()[1:]:
        name, soft = line[:26].strip(), line[26:47].strip()
        if name:
            out[name] = soft
    return out


@pytest.mark.asyncio
async def test_without_cgroup_processes_and_file_size_are_rlimits(
    no_cgroup: str, workspace: str, start: Starter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="aiide.limits")
    km = await start(_config(workspace, no_cgroup), workspace)
    # The server's log says so.
    assert any("fall back to rlimits" in r.getMessage() for r in caplog.records), caplog.text
    got = await limits(km)
    assert got["Max processes"] == "48", got
    assert got["Max file size"] == str(64 * 1024**2), got
    assert got["Max address space"] == "unlimited", got  # not asked for


@pytest.mark.asyncio
async def test_the_process_rlimit_holds_and_counts_only_this_sandbox(
    no_cgroup: str, workspace: str, start: Starter
) -> None:
    """Threads count as processes; the server's own processes (and other kernels
    under the same uid) do not."""
    km = await start(_config(workspace, no_cgroup), workspace)
    code = textwrap.dedent(
        """
        import threading
        stop = threading.Event()
        threads = []
        try:
            for _ in range(200):
                t = threading.Thread(target=stop.wait)
                t.start()
                threads.append(t)
        except RuntimeError as e:
            print('refused', len(threads))
        stop.set()
        for t in threads:
            t.join()
        """
    )
    r = await run_code(km, code)
    assert r.status == "ok", r
    word, count = r.stdout.split()
    # ipykernel itself runs a handful of threads; the rest of 48 are ours.
    assert word == "refused" and 20 <= int(count) < 48, r.stdout


@pytest.mark.asyncio
async def test_address_space_cap_when_asked(no_cgroup: str, workspace: str, start: Starter) -> None:
    km = await start(_config(workspace, no_cgroup, limit_address_space=True), workspace)
    got = await limits(km)
    # memory_limit is 1G: raised to the floor ipykernel and numpy's threads need.
    assert got["Max address space"] == str(max(GiB, cgroups.MIN_ADDRESS_SPACE)), got


@pytest.mark.asyncio
async def test_refused_when_not_even_rlimits_can_bound_it(
    no_cgroup: str, workspace: str, start: Starter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cgroups, "rlimit_problem", lambda: "prlimit (util-linux) is missing")
    with pytest.raises(RuntimeError) as info:
        await start(_config(workspace, no_cgroup), workspace)
    message = str(info.value)
    assert "c.SandboxPolicy.allow_unlimited" in message, message
    assert "prlimit (util-linux) is missing" in message, message


@pytest.mark.asyncio
async def test_allow_unlimited_starts_it_anyway(
    no_cgroup: str, workspace: str, start: Starter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cgroups, "rlimit_problem", lambda: "prlimit (util-linux) is missing")
    km = await start(_config(workspace, no_cgroup, allow_unlimited=True), workspace)
    got = await limits(km)
    assert got["Max processes"] != "48", got
    assert got["Max file size"] == str(64 * 1024**2), got  # set outside, always possible


def test_status_says_what_stands_in_for_the_cgroup(no_cgroup: str) -> None:
    support = cgroups.detect(no_cgroup)
    assert support.version == 0
    assert "c.SandboxPolicy.cgroup_root" in support.detail
    detail = cgroups.fallback_detail(support)
    assert "RLIMIT_NPROC" in detail and "memory and CPU are not" in detail, detail
    # The server's own view (what `jupyter aiide check` prints) goes through the same words.
    status = BwrapBackend.limits_status()
    assert status.detail == cgroups.fallback_detail(cgroups.detect()), status


def test_status_says_kernels_are_refused_without_rlimits(
    no_cgroup: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cgroups, "rlimit_problem", lambda: "Linux 5.10 counts per user")
    detail = cgroups.fallback_detail(cgroups.detect(no_cgroup))
    assert "refused unless c.SandboxPolicy.allow_unlimited = True" in detail, detail
