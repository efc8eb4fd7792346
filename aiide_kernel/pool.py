"""A warm pool of started sandboxed kernels, so opening a notebook is instant.

Kernels are pooled per (policy fingerprint, workspace, uid): a pooled kernel was
started with exactly the sandbox the requester would get. A kernel is taken out of
the pool once (never handed to two sessions) and never returns to it; the pool
refills in the background. It is active only inside a server that configured it
(the aiide server extension does); plain ``jupyter_client`` use starts cold.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import queue
import time
from dataclasses import dataclass
from typing import Any

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.connect import write_connection_file
from jupyter_client.session import new_id_bytes
from traitlets import Float, Int
from traitlets.config import SingletonConfigurable

from .backends import SandboxedKernel
from .launch.recipe import LaunchRecipe, PreparedLaunch, server_secret_paths
from .policy import SandboxPolicy
from .rundir import RunDir

log = logging.getLogger("aiide.pool")


@dataclass(frozen=True)
class PoolKey:
    fingerprint: str
    workspace: str
    uid: int


@dataclass
class PooledKernel:
    key: PoolKey
    launch: PreparedLaunch
    kernel: SandboxedKernel
    connection_info: dict[str, Any]
    started_at: float

    @property
    def run(self) -> RunDir:
        return self.launch.run

    @property
    def channel(self) -> str | None:
        return self.launch.channel


class KernelPool(SingletonConfigurable):  # type: ignore[misc]
    """Pre-started kernels per sandbox policy (``c.KernelPool.*``)."""

    size = Int(
        1,
        config=True,
        help="Started kernels kept ready per sandbox policy and workspace (0 disables).",
    )
    max_policies = Int(
        4,
        config=True,
        help="Distinct (policy, workspace) pairs kept warm; the least recently used is dropped.",
    )
    ready_timeout = Float(60.0, config=True, help="Seconds a pooled kernel may take to start.")
    refill_delay = Float(
        0.25,
        config=True,
        help="Seconds to wait after a handover before starting its replacement, so the "
        "replacement's start does not slow down the session that just got a kernel.",
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ready: dict[PoolKey, collections.deque[PooledKernel]] = {}
        self._recipes: collections.OrderedDict[PoolKey, LaunchRecipe] = collections.OrderedDict()
        self._starting: collections.Counter[PoolKey] = collections.Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    # -- used by the provisioner -------------------------------------------------------

    @staticmethod
    def key_for(recipe: LaunchRecipe) -> PoolKey:
        return PoolKey(*recipe.key())

    @classmethod
    def take_if_running(cls, key: tuple[str, str, int]) -> PooledKernel | None:
        if not cls.initialized():
            return None
        return cls.instance().take(PoolKey(*key))

    @classmethod
    def remember(cls, recipe: LaunchRecipe) -> None:
        """Learn from a cold start how to pre-start the next kernel like it."""
        if cls.initialized() and recipe.cmd_template:
            cls.instance().add_recipe(recipe)

    def take(self, key: PoolKey) -> PooledKernel | None:
        queue = self._ready.get(key)
        taken = None
        while queue:
            candidate = queue.popleft()
            if candidate.kernel.poll() is None:
                taken = candidate
                break
            self._discard(candidate)
        if key in self._recipes:
            self._recipes.move_to_end(key)
            self._schedule_fill(key, delay=self.refill_delay if taken else 0.0)
        return taken

    # -- filling -----------------------------------------------------------------------

    def add_recipe(self, recipe: LaunchRecipe) -> PoolKey:
        key = self.key_for(recipe)
        self._recipes[key] = recipe
        self._recipes.move_to_end(key)
        while len(self._recipes) > self.max_policies:
            old, _ = self._recipes.popitem(last=False)
            for pooled in self._ready.pop(old, collections.deque()):
                self._discard(pooled)
        self._schedule_fill(key)
        return key

    def prewarm(
        self,
        argv: list[str],
        policy: SandboxPolicy,
        workspace: str,
        uid: int,
        gid: int,
        run_root: str = "",
    ) -> PoolKey:
        """Start kernels for a kernelspec before anyone asks (server start). ``uid`` is
        the dedicated sandbox uid; the recipe picks the kernel's own like any start."""
        recipe = LaunchRecipe(
            policy,
            workspace,
            list(argv),
            run_root=run_root,
            sandbox_uid=uid,
            server_paths=server_secret_paths(self.config),
        )
        return self.add_recipe(recipe)

    def ready_count(self, key: PoolKey) -> int:
        return len(self._ready.get(key, ()))

    async def wait_filled(self, key: PoolKey, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.ready_count(key) < self.size:
            if time.monotonic() > deadline:
                raise TimeoutError(f"kernel pool did not fill within {timeout}s")
            await asyncio.sleep(0.05)

    def _schedule_fill(self, key: PoolKey, delay: float = 0.0) -> None:
        if self._closed or self.size <= 0:
            return
        missing = self.size - self.ready_count(key) - self._starting[key]
        for _ in range(max(0, missing)):
            self._starting[key] += 1
            task = asyncio.get_event_loop().create_task(self._fill_one(key, delay))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _fill_one(self, key: PoolKey, delay: float = 0.0) -> None:
        try:
            if delay:
                await asyncio.sleep(delay)
            recipe = self._recipes.get(key)
            if recipe is None:
                return
            pooled = await self._start(key, recipe)
            if self._closed or key not in self._recipes:
                self._discard(pooled)
                return
            self._ready.setdefault(key, collections.deque()).append(pooled)
        except Exception:
            log.exception("aiide: could not pre-start a pooled kernel")
        finally:
            self._starting[key] -= 1

    async def _start(self, key: PoolKey, recipe: LaunchRecipe) -> PooledKernel:
        launch = recipe.prepare(f"pool-{os.urandom(6).hex()}")
        try:
            _, info = write_connection_file(
                launch.run.connection_file,
                transport="ipc",
                ip=launch.run.ipc_prefix,
                key=new_id_bytes(),
                signature_scheme="hmac-sha256",
                kernel_name="aiide-python",
            )
            launch.run.hand_to_kernel(launch.uid, launch.gid)
            kernel = await launch.start()
        except BaseException:
            launch.release()
            raise
        pooled = PooledKernel(key, launch, kernel, dict(info), time.monotonic())
        try:
            await self._wait_ready(launch.run.connection_file, kernel)
        except BaseException:
            self._discard(pooled)
            raise
        return pooled

    async def _wait_ready(self, connection_file: str, kernel: SandboxedKernel) -> None:
        """Until the kernel answers kernel_info. Liveness comes from the sandbox itself:
        a client's heartbeat is not beating yet while a slow kernel still starts."""
        client = AsyncKernelClient(connection_file=connection_file)
        client.load_connection_file()
        client.start_channels()
        try:
            deadline = time.monotonic() + self.ready_timeout
            msg_id = client.kernel_info()
            while True:
                if kernel.poll() is not None:
                    raise RuntimeError("the pooled kernel exited while starting")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"pooled kernel not ready in {self.ready_timeout}s")
                try:
                    reply = await client.get_shell_msg(timeout=0.5)
                except queue.Empty:
                    continue
                if reply["parent_header"].get("msg_id") == msg_id:
                    return
        finally:
            client.stop_channels()

    def _discard(self, pooled: PooledKernel) -> None:
        with contextlib.suppress(Exception):
            pooled.kernel.cleanup()
        pooled.launch.release()

    async def shutdown(self) -> None:
        """Stop every pooled kernel (server shutdown)."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for ready in self._ready.values():
            while ready:
                pooled = ready.popleft()
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(pooled.kernel.cleanup)
                pooled.launch.release()  # on the loop: it may close a kernel channel
        self._ready.clear()
