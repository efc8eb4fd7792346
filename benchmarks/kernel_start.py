"""Kernel start and round-trip latency: sandboxed vs plain ipykernel, in one run.

    .venv/bin/python benchmarks/kernel_start.py [--runs 20] [--backends bwrap docker]

Start latency is measured from ``start_kernel()`` to the first ``kernel_info_reply``
(no ``wait_for_ready``, which adds a fixed iopub flush). Cold starts are interleaved
(plain, bwrap, docker, plain, ...) so a change in the machine's load hits every
figure alike. The warm-pool figure is a start that is handed an already-running
sandboxed kernel. Every figure is printed with its ratio to plain ipykernel measured
in the same run, and the load average before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable

import zmq
import zmq.asyncio
from jupyter_client import AsyncKernelClient, AsyncKernelManager
from jupyter_client.kernelspec import KernelSpecManager
from traitlets.config import Config

from aiide_kernel.backends import get_backend
from aiide_kernel.policy import SandboxPolicy
from aiide_kernel.pool import KernelPool, PoolKey
from aiide_kernel.provisioner import SandboxProvisioner
from aiide_kernel.rundir import sandbox_identity

# ZMQ retries a failed connect every 100 ms by default, which would quantise every
# start figure to 100 ms steps; a 2 ms retry for all clients (plain and sandboxed
# alike) measures when the kernel actually became ready.
_CONTEXT = zmq.asyncio.Context()
_CONTEXT.setsockopt(zmq.RECONNECT_IVL, 2)


async def first_kernel_info(km: AsyncKernelManager) -> None:
    kc = km.client(context=_CONTEXT)
    kc.start_channels()
    try:
        msg_id = kc.kernel_info()
        while True:
            reply = await kc.get_shell_msg(timeout=60)
            if reply["parent_header"].get("msg_id") == msg_id:
                return
    finally:
        kc.stop_channels()


_SPECS = KernelSpecManager()


async def time_start(
    kernel_name: str, config: Config, cwd: str
) -> tuple[float, AsyncKernelManager]:
    # One shared KernelSpecManager, as inside a Jupyter server.
    km = AsyncKernelManager(kernel_name=kernel_name, config=config, kernel_spec_manager=_SPECS)
    t0 = time.perf_counter()
    await km.start_kernel(cwd=cwd)
    await first_kernel_info(km)
    return time.perf_counter() - t0, km


async def measure_starts(
    runs: int,
    kernel_name: str,
    config: Config,
    cwd: str,
    before_each: Callable[[], Awaitable[None]] | None = None,
) -> list[float]:
    times = []
    for _ in range(runs):
        if before_each:
            await before_each()
        elapsed, km = await time_start(kernel_name, config, cwd)
        times.append(elapsed)
        await km.shutdown_kernel(now=True)
    return times


async def measure_roundtrips(
    kernels: dict[str, tuple[str, Config]], cwd: str, n: int
) -> dict[str, list[float]]:
    """``1+1`` on every kernel in turn (plain, bwrap, ..., plain, ...), all running at once."""
    running: dict[str, tuple[AsyncKernelManager, AsyncKernelClient]] = {}
    try:
        for label, (name, config) in kernels.items():
            km = AsyncKernelManager(kernel_name=name, config=config, kernel_spec_manager=_SPECS)
            await km.start_kernel(cwd=cwd)
            kc = km.client()
            kc.start_channels()
            running[label] = (km, kc)
            await kc.wait_for_ready(timeout=60)
            for _ in range(5):
                await kc.execute_interactive("1+1", timeout=30, output_hook=lambda m: None)
        times: dict[str, list[float]] = {label: [] for label in running}
        for _ in range(n):
            for label, (_, kc) in running.items():
                t0 = time.perf_counter()
                await kc.execute_interactive("1+1", timeout=30, output_hook=lambda m: None)
                times[label].append(time.perf_counter() - t0)
        return times
    finally:
        for km, kc in running.values():
            kc.stop_channels()
            await km.shutdown_kernel(now=True)


async def measure_handover(pool: KernelPool, key: PoolKey, runs: int) -> list[float]:
    """The handover itself: take a started kernel, first kernel_info_reply."""
    times = []
    for _ in range(runs):
        await pool.wait_filled(key, timeout=120)
        t0 = time.perf_counter()
        pooled = pool.take(key)
        assert pooled is not None
        kc = AsyncKernelClient(context=_CONTEXT)
        kc.load_connection_info(pooled.connection_info)
        kc.start_channels()
        msg_id = kc.kernel_info()
        while (await kc.get_shell_msg(timeout=60))["parent_header"].get("msg_id") != msg_id:
            pass
        times.append(time.perf_counter() - t0)
        kc.stop_channels()
        pool._discard(pooled)
    return times


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]


def sandbox_config(backend: str, root: str, pool_size: int = 0) -> Config:
    c = Config()
    c.SandboxPolicy.backend = backend
    c.SandboxPolicy.workspace_root = root
    c.KernelPool.size = pool_size
    return c


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--roundtrips", type=int, default=200)
    parser.add_argument("--backends", nargs="+", default=["bwrap", "docker"])
    args = parser.parse_args()
    specs = _SPECS.find_kernel_specs()
    if "aiide-python" not in specs or "python3" not in specs:
        sys.exit("install the package first (make setup): kernelspecs aiide-python and python3")
    root = tempfile.mkdtemp(prefix="aiide-bench-")
    os.chmod(root, 0o755)
    plain = Config()
    rows: list[tuple[str, list[float], float]] = []

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    starters: dict[str, tuple[str, Config]] = {"plain ipykernel": ("python3", plain)}
    for backend in args.backends:
        status = get_backend(backend).check()
        if not status.available:
            print(f"skipping {backend}: {status.detail}")
            continue
        starters[f"{backend} sandbox, cold"] = ("aiide-python", sandbox_config(backend, root))
    for name, config in starters.values():  # one unmeasured start each: first-use costs
        await measure_starts(1, name, config, root)
    cold_starts: dict[str, list[float]] = {label: [] for label in starters}
    for _ in range(args.runs):
        for label, (name, config) in starters.items():
            cold_starts[label] += await measure_starts(1, name, config, root)
    base = statistics.median(cold_starts["plain ipykernel"])
    rows += [(f"start: {label}", times, base) for label, times in cold_starts.items()]

    # Warm pool: the pool holds started kernels; each start takes one.
    config = sandbox_config("bwrap", root, pool_size=1)
    KernelPool.clear_instance()
    pool = KernelPool.instance(config=config)
    policy = SandboxPolicy(config=config)
    uid, gid = sandbox_identity(SandboxProvisioner(config=config).sandbox_uid)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    key = pool.prewarm(argv, policy, os.path.realpath(root), uid, gid)

    async def refill() -> None:
        await pool.wait_filled(key, timeout=120)

    handover = await measure_handover(pool, key, args.runs)
    rows.append(("warm pool: take + first kernel_info", handover, base))
    warm = await measure_starts(args.runs, "aiide-python", config, root, before_each=refill)
    await pool.shutdown()
    rows.append(("warm pool: start_kernel() end to end*", warm, base))

    round_trips = await measure_roundtrips(
        {"plain": ("python3", plain)}
        | {
            backend: ("aiide-python", sandbox_config(backend, root))
            for backend in args.backends
            if get_backend(backend).check().available
        },
        root,
        args.roundtrips,
    )
    rt_base = statistics.median(round_trips["plain"])
    rows += [(f"1+1 round trip: {label}", rt, rt_base) for label, rt in round_trips.items()]

    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("* includes jupyter_client's fixed 10 ms pending-state sleep in start_kernel()")
    print(f"\n{'figure':40} {'median':>10} {'p90':>10} {'ratio':>8} {'delta':>10}")
    for name, values, baseline in rows:
        med = statistics.median(values)
        print(
            f"{name:40} {med * 1000:8.1f}ms {p90(values) * 1000:8.1f}ms "
            f"{med / baseline:7.2f}x {(med - baseline) * 1000:+8.1f}ms"
        )


if __name__ == "__main__":
    asyncio.run(main())
