"""The warm pool hands out started kernels once, never twice, never reused."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from jupyter_client import AsyncKernelManager
from kernelrun import run_code
from traitlets.config import Config

from aiide_kernel.pool import KernelPool
from aiide_kernel.provisioner import SandboxProvisioner

pytestmark = [pytest.mark.asyncio, pytest.mark.xdist_group("sandbox")]


@pytest_asyncio.fixture
async def pool(sandbox_config: Config) -> AsyncIterator[KernelPool]:
    sandbox_config.KernelPool.size = 2
    KernelPool.clear_instance()
    pool = KernelPool.instance(config=sandbox_config)
    try:
        yield pool
    finally:
        await pool.shutdown()
        KernelPool.clear_instance()


async def _warm_key(pool: KernelPool, config: Config, workspace: str) -> object:
    """Warm the pool the way the server does at start."""
    import sys

    from aiide_kernel.policy import SandboxPolicy
    from aiide_kernel.rundir import sandbox_identity

    policy = SandboxPolicy(config=config)
    uid, gid = sandbox_identity(SandboxProvisioner(config=config).sandbox_uid)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    key = pool.prewarm(argv, policy, workspace, uid, gid)
    await pool.wait_filled(key, timeout=90)
    return key


async def _start(config: Config, workspace: str) -> AsyncKernelManager:
    km = AsyncKernelManager(kernel_name="aiide-python", config=config)
    await km.start_kernel(cwd=workspace)
    return km


async def test_pooled_kernels_are_handed_out_once_each(
    pool: KernelPool, sandbox_config: Config, workspace: str
) -> None:
    key = await _warm_key(pool, sandbox_config, workspace)
    pooled_runs = {k.run.path for k in pool._ready[key]}  # type: ignore[index]
    kms = await asyncio.gather(*(_start(sandbox_config, workspace) for _ in range(2)))
    try:
        files = {km.connection_file for km in kms}
        assert len(files) == 2, "one kernel was handed to two sessions"
        for km in kms:
            r = await run_code(km, "import os; print(os.getcwd())")
            assert r.stdout.strip() == workspace
        # Both came from the pool, on either backend: their run directories (sockets,
        # connection file) are the pooled kernels' (a Docker kernel's pid is not).
        used = {os.path.dirname(os.path.dirname(f)) for f in files}
        assert used == pooled_runs
        # The pool refills in the background with new kernels, not the used ones.
        await pool.wait_filled(key, timeout=90)  # type: ignore[arg-type]
        refilled = {k.run.path for k in pool._ready[key]}  # type: ignore[index]
        assert not refilled & used
    finally:
        for km in kms:
            await km.shutdown_kernel(now=True)


async def test_a_shut_down_kernel_never_returns_to_the_pool(
    pool: KernelPool, sandbox_config: Config, workspace: str
) -> None:
    key = await _warm_key(pool, sandbox_config, workspace)
    km = await _start(sandbox_config, workspace)
    run_dir = os.path.dirname(os.path.dirname(km.connection_file))
    await run_code(km, "secret_state = 'from the first user'")
    await km.shutdown_kernel(now=True)
    await pool.wait_filled(key, timeout=90)  # type: ignore[arg-type]
    assert run_dir not in {k.run.path for k in pool._ready[key]}  # type: ignore[index]
    km2 = await _start(sandbox_config, workspace)
    try:
        r = await run_code(km2, "print('secret_state' in globals())")
        assert r.stdout.strip() == "False"
    finally:
        await km2.shutdown_kernel(now=True)


async def test_a_different_workspace_does_not_get_a_pooled_kernel(
    pool: KernelPool,
    sandbox_config: Config,
    workspace: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    await _warm_key(pool, sandbox_config, workspace)
    other = str(tmp_path_factory.mktemp("other"))
    sandbox_config.SandboxPolicy.workspace_root = os.path.dirname(other)
    km = await _start(sandbox_config, other)
    try:
        r = await run_code(km, f"import os; print(os.getcwd(), os.path.exists({workspace!r}))")
        assert r.stdout.split() == [other, "False"]
    finally:
        await km.shutdown_kernel(now=True)
