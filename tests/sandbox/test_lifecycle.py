"""The whole life of a sandboxed kernel, against each real backend."""

from __future__ import annotations

import asyncio
import os

import psutil
import pytest
from jupyter_client import AsyncKernelManager
from kernelrun import run_code
from traitlets.config import Config

pytestmark = [pytest.mark.asyncio, pytest.mark.xdist_group("sandbox")]


def _sandbox_leftovers(run_dir: str, backend: str) -> list[str]:
    left = []
    if os.path.exists(run_dir):
        left.append(f"run dir {run_dir}")
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if run_dir in cmd:
            left.append(f"process {p.pid}: {cmd[:120]}")
    if backend == "docker":
        import docker

        for c in docker.from_env().containers.list(all=True, filters={"label": "aiide=kernel"}):
            if os.path.basename(run_dir) in c.name:
                left.append(f"container {c.name}")
    return left


async def test_kernel_runs_code_in_its_workspace(
    sandboxed_km: AsyncKernelManager, workspace: str
) -> None:
    r = await run_code(sandboxed_km, "import os; print(os.getcwd()); print(1 + 1)")
    assert r.status == "ok", r
    assert r.stdout.split() == [workspace, "2"]


async def test_kernel_uses_the_servers_python_environment(
    sandboxed_km: AsyncKernelManager,
) -> None:
    import sys

    r = await run_code(sandboxed_km, "import sys, ipykernel; print(sys.prefix)")
    assert r.status == "ok", r
    assert r.stdout.strip() == sys.prefix


async def test_the_kernel_starts_without_the_debugger_it_does_not_offer(
    sandboxed_km: AsyncKernelManager,
) -> None:
    """The kernelspec says ``debugger: false``; ipykernel would still import debugpy
    (~90 ms of a cold start). It is left out at start, and user code can import it."""
    r = await run_code(
        sandboxed_km,
        "import sys; print('debugpy' in sys.modules)\nimport debugpy; print(debugpy.__name__)",
    )
    assert r.status == "ok", r
    assert r.stdout.split() == ["False", "debugpy"]


async def test_interrupt_stops_a_running_cell(sandboxed_km: AsyncKernelManager) -> None:
    kc = sandboxed_km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=60)
        msg_id = kc.execute("import time\nfor i in range(600): time.sleep(0.1)")
        await asyncio.sleep(1.0)
        await sandboxed_km.interrupt_kernel()
        while True:
            reply = await kc.get_shell_msg(timeout=30)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
    finally:
        kc.stop_channels()
    # The kernel survived the interrupt and still works.
    r = await run_code(sandboxed_km, "print('alive')")
    assert r.stdout.strip() == "alive"


async def test_restart_gives_a_fresh_kernel_on_the_same_connection(
    sandboxed_km: AsyncKernelManager,
) -> None:
    r = await run_code(sandboxed_km, "x = 41; import os; print(os.getpid())")
    assert r.status == "ok"
    connection_file = sandboxed_km.connection_file
    await sandboxed_km.restart_kernel(now=True)
    assert sandboxed_km.connection_file == connection_file
    r = await run_code(sandboxed_km, "print('x' in globals())")
    assert r.stdout.strip() == "False"


async def test_shutdown_leaves_nothing_behind(sandbox_config: Config, workspace: str) -> None:
    km = AsyncKernelManager(kernel_name="aiide-python", config=sandbox_config)
    await km.start_kernel(cwd=workspace)
    run_dir = os.path.dirname(os.path.dirname(km.connection_file))
    r = await run_code(km, "import subprocess; p = subprocess.Popen(['sleep', '300'])")
    assert r.status == "ok", r
    await km.shutdown_kernel()
    assert not km.has_kernel
    for _ in range(50):
        left = _sandbox_leftovers(run_dir, sandbox_config.SandboxPolicy.backend)
        if not left:
            break
        await asyncio.sleep(0.1)
    assert left == []


async def test_pip_without_network_says_why_at_once(sandboxed_km: AsyncKernelManager) -> None:
    r = await run_code(sandboxed_km, "%pip install some-package", timeout=20)
    assert r.status == "ok", r
    assert "without network access" in r.stdout
    assert "c.SandboxPolicy.allow_network" in r.stdout


async def test_network_is_given_only_when_allowed(sandbox_config: Config, workspace: str) -> None:
    sandbox_config.SandboxPolicy.allow_network = True
    km = AsyncKernelManager(kernel_name="aiide-python", config=sandbox_config)
    await km.start_kernel(cwd=workspace)
    try:
        r = await run_code(
            km, "import socket; print(sorted(n for _, n in socket.if_nameindex()) != ['lo'])"
        )
    finally:
        await km.shutdown_kernel(now=True)
    assert r.stdout.strip() == "True"
