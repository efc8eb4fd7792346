"""SandboxProvisioner: jupyter_client's hook for starting kernels, sandboxed.

Entry point ``aiide-sandbox`` (group ``jupyter_client.kernel_provisioners``), used by
the ``aiide-python`` kernelspec. Any Jupyter front end (JupyterLab, nbclient,
papermill) gets a sandboxed kernel without knowing it; interrupt and restart work
as for any kernel (``interrupt_mode: message``, since bwrap does not forward SIGINT).
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning.provisioner_base import KernelProvisionerBase
from traitlets import Bool, Int, Unicode

from .backends import SandboxBackend, SandboxedKernel, get_backend
from .channel import KernelChannels
from .events import KernelEvents
from .launch.recipe import LaunchRecipe, PreparedLaunch, server_secret_paths
from .policy import SandboxConfigError, SandboxPolicy
from .rundir import sandbox_identity


class SandboxProvisioner(KernelProvisionerBase):  # type: ignore[misc]
    """Starts each kernel inside a sandbox described by ``c.SandboxPolicy``."""

    sandbox_uid = Int(
        64999,
        config=True,
        help="When the server runs as root, kernels in a root-owned workspace run as "
        "this unprivileged uid/gid, given access by a POSIX ACL removed at shutdown (a "
        "sandbox started by root would keep root's capabilities inside it). A workspace "
        "owned by a user runs its kernels as that user; nothing is ever chowned.",
    )
    run_root = Unicode(
        "",
        config=True,
        help="Directory for per-kernel run directories (ipc sockets, generated /etc). "
        "Empty: the system temporary directory. Keep the path short: unix socket "
        "paths are limited to 107 bytes.",
    )
    use_pool = Bool(
        True,
        config=True,
        help="Take an already-started kernel from the warm pool when one matches.",
    )

    _kernel: SandboxedKernel | None = None
    _launch: PreparedLaunch | None = None
    _backend: SandboxBackend | None = None
    _policy: SandboxPolicy | None = None
    _workspace: str = ""
    _expect_exit = False
    _death_reported = False
    _adopted = False
    _started_at: float | None = None
    _channel: str | None = None

    @property
    def policy(self) -> SandboxPolicy:
        if self._policy is None:
            self._policy = SandboxPolicy(parent=self)
        return self._policy

    @property
    def km(self) -> Any:
        """The KernelManager that owns this provisioner."""
        if self.parent is None:
            raise RuntimeError("SandboxProvisioner needs its KernelManager as parent")
        return self.parent

    @property
    def has_process(self) -> bool:
        return self._kernel is not None

    @property
    def identity(self) -> tuple[int, int]:
        """The uid/gid of the running kernel (before a launch: the dedicated one)."""
        if self._launch is not None:
            return self._launch.uid, self._launch.gid
        return sandbox_identity(self.sandbox_uid)

    # -- launch ----------------------------------------------------------------

    def _recipe(self, workspace: str) -> LaunchRecipe:
        return LaunchRecipe(
            policy=self.policy,
            workspace=workspace,
            run_root=self.run_root,
            sandbox_uid=self.sandbox_uid,
            server_paths=server_secret_paths(self.config),
        )

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        km = self.km
        policy = self.policy
        try:
            policy.memory_bytes, policy.tmp_bytes, policy.file_size_bytes  # noqa: B018
            backend = get_backend(policy.backend)
        except SandboxConfigError as e:
            raise RuntimeError(str(e)) from None
        if backend.check_is_cheap:
            backend.require()
        else:
            await asyncio.to_thread(backend.require)
        self._backend = backend
        server_root = getattr(getattr(km, "parent", None), "root_dir", None)
        try:
            self._workspace = policy.resolve_workspace(kwargs.pop("cwd", None), server_root)
            if self._launch is None:
                recipe = self._recipe(self._workspace)
                if self.use_pool:
                    from .pool import KernelPool

                    pooled = KernelPool.take_if_running(recipe.key())
                    if pooled is not None:
                        self._adopt(pooled)
                        kwargs.pop("transport_encryption", None)
                        kwargs.pop("extra_arguments", None)
                        return await super().pre_launch(cmd=[], **kwargs)  # type: ignore[no-any-return]
                # on the loop: a kernel channel is a tornado server of this loop
                self._launch = recipe.prepare(str(self.kernel_id))
        except SandboxConfigError as e:
            raise RuntimeError(str(e)) from None
        kwargs.pop("transport_encryption", None)
        extra_arguments = kwargs.pop("extra_arguments", [])
        launch = self._launch
        self._channel = launch.channel
        km.transport = "ipc"
        km.ip = launch.run.ipc_prefix
        km.connection_file = launch.run.connection_file
        km.write_connection_file()
        if not km.session.key:
            raise RuntimeError("refusing to start a kernel without an HMAC key")
        launch.run.hand_to_kernel(launch.uid, launch.gid)
        self.connection_info = km.get_connection_info()
        cmd = launch.command(km.format_kernel_cmd(extra_arguments=extra_arguments))
        kwargs = await super().pre_launch(cmd=cmd, **kwargs)
        launch.recipe.env = dict(kwargs.get("env", {}))
        if self.use_pool:
            from .pool import KernelPool

            KernelPool.remember(launch.recipe.reusable(cmd, launch.run.connection_file))
        return kwargs  # type: ignore[no-any-return]

    def _adopt(self, pooled: Any) -> None:
        km = self.km
        self._launch = pooled.launch
        self._kernel = pooled.kernel
        self._adopted = True
        km.load_connection_info(pooled.connection_info)
        km.connection_file = pooled.launch.run.connection_file
        km._connection_file_written = True
        self.connection_info = km.get_connection_info()
        self._channel = pooled.launch.channel
        if self._channel:
            KernelChannels.instance().assign(pooled.launch.run.ipc_dir, str(self.kernel_id))

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        self._expect_exit = False
        self._death_reported = False
        if self._adopted:
            self._adopted = False
        else:
            assert self._launch is not None
            assert self._backend is not None
            try:
                self._kernel = await self._launch.start(cmd, self._backend)
            except SandboxConfigError as e:  # e.g. the workspace changed meanwhile
                raise RuntimeError(str(e)) from None
        assert self._kernel is not None
        self.pid = self._kernel.pid
        self._started_at = time.monotonic()
        KernelEvents.instance().lifecycle(
            {
                "event": "started",
                "kernel_id": str(self.kernel_id),
                "backend": self.policy.backend,
                "memory_bytes": self.policy.memory_bytes,
            }
        )
        self.log.info(
            "aiide: kernel %s started in %s sandbox (%s)",
            self.kernel_id,
            self.policy.backend,
            self.policy.describe_limits(),
        )
        return self.connection_info  # type: ignore[no-any-return]

    # -- lifecycle -----------------------------------------------------------------

    async def poll(self) -> int | None:
        if self._kernel is None:
            return 0
        code = self._kernel.poll()
        if code is not None and not self._expect_exit and not self._death_reported:
            self._death_reported = True
            # a thread: the backend may ask its daemon (Docker) why the kernel stopped
            message = await asyncio.to_thread(self._kernel.death_message, code, self.policy)
            self.log.warning("aiide: kernel %s died: %s", self.kernel_id, message)
            KernelEvents.instance().record(str(self.kernel_id), "died", message)
        return code

    async def wait(self) -> int | None:
        if self._kernel is None:
            return 0
        return await self._kernel.wait()

    async def send_signal(self, signum: int) -> None:
        if self._kernel is not None:
            if signum in (signal.SIGKILL, signal.SIGTERM):
                self._expect_exit = True
            self._kernel.send_signal(signum)

    async def kill(self, restart: bool = False) -> None:
        self._expect_exit = True
        if self._kernel is not None:
            self._kernel.kill()

    async def terminate(self, restart: bool = False) -> None:
        self._expect_exit = True
        if self._kernel is not None:
            self._kernel.terminate()

    async def shutdown_requested(self, restart: bool = False) -> None:
        self._expect_exit = True

    async def cleanup(self, restart: bool = False) -> None:
        if self._kernel is not None:
            # One more look so a death that nobody polled for is still reported.
            exit_code = await self.poll()
            await asyncio.to_thread(self._kernel.cleanup)
            self._kernel = None
            if self._started_at is not None:
                KernelEvents.instance().lifecycle(
                    {
                        "event": "stopped",
                        "kernel_id": str(self.kernel_id),
                        "backend": self.policy.backend,
                        "memory_bytes": self.policy.memory_bytes,
                        "wall_seconds": time.monotonic() - self._started_at,
                        "exit_code": exit_code,
                    }
                )
                self._started_at = None
        if not restart and self._launch is not None:
            # the workspace's ACL (if any) is given back here, the run dir removed
            launch, self._launch = self._launch, None
            self._channel = None
            launch.close_channel()
            await asyncio.to_thread(launch.release)  # a few file system calls: off the loop

    async def get_provisioner_info(self) -> dict[str, Any]:
        info: dict[str, Any] = await super().get_provisioner_info()
        info["run_dir"] = self._launch.run.path if self._launch else None
        info["workspace"] = self._workspace
        return info
