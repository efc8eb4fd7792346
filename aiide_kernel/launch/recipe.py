"""The one way a sandboxed kernel launch is assembled.

The provisioner (a user's kernel), the warm pool (pre-started kernels) and the
kernel gateway's launcher (``launcher.py``) all start kernels through ``LaunchRecipe.prepare``
and ``PreparedLaunch.start``: the workspace is resolved race-free here, access is
granted here without chown, masks are planned here, the environment and kernel
hooks are added here. A sandbox fix made here reaches every kernel.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field, replace
from typing import Any

from ..backends import LaunchSpec, SandboxBackend, SandboxedKernel, get_backend
from ..backends.base import (
    add_kernel_hooks,
    interpreter_links,
    kernel_environment,
    sandbox_ro_paths,
)
from ..channel import ENV_VAR as CHANNEL_ENV
from ..channel import KernelChannels
from ..grants import Grant, grant_workspace
from ..policy import SandboxPolicy
from ..rundir import RunDir, run_parent
from ..workspace import (
    WorkspaceHandle,
    check_not_sensitive,
    close_fds,
    open_sealed_homes,
    open_workspace,
    plan_masks,
    plan_sealed_homes,
    sandbox_identity_for,
)

#: Placeholder for the connection file in a command template.
CONNECTION_FILE = "{connection_file}"
#: Environment a kernelspec or session sets for one kernel, never for the next one.
PER_KERNEL_ENV = ("JPY_SESSION_NAME", CHANNEL_ENV)


def server_secret_paths(config: Any) -> list[str]:
    """Files of the server around the kernel that a workspace may contain: the
    gateway's and agent's databases and secrets, the server's own dirs."""
    paths: list[str] = []

    def section(name: str) -> Any:
        with contextlib.suppress(Exception):
            return config.get(name, {})
        return {}

    for name, keys in (
        ("Gateway", ("db_path", "signing_secret_file")),
        ("Agent", ("db_path", "secret_key_file")),
        ("Knowledge", ("data_dir",)),
        ("ServerApp", ("data_dir", "runtime_dir", "config_dir")),
    ):
        values = section(name)
        for key in keys:
            value = values.get(key) if hasattr(values, "get") else None
            if isinstance(value, str) and value:
                paths.append(value)
    # The server's own defaults are jupyter_core's directories, masked anyway; reading
    # only the config keeps the warm pool's recipe (made without a server) identical.
    out: list[str] = []
    for p in paths:
        p = os.path.abspath(os.path.expanduser(p))
        if p not in out:
            out.append(p)
    return out


@dataclass
class LaunchRecipe:
    """Everything that decides what a kernel's sandbox looks like."""

    policy: SandboxPolicy
    workspace: str  # checked by SandboxPolicy.resolve_workspace
    cmd_template: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # what the kernelspec asked for
    run_root: str = ""
    sandbox_uid: int = 64999
    server_paths: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)

    def hidden_paths(self) -> list[str]:
        """The server's files to mask: its databases and every kernel's run dir."""
        return [*self.server_paths, run_parent(self.run_root)]

    def identity(self) -> tuple[int, int]:
        ws = open_workspace(self.workspace)
        try:
            return sandbox_identity_for(ws, self.sandbox_uid)
        finally:
            ws.close()

    def key(self) -> tuple[str, str, int]:
        """Kernels started from equal keys are interchangeable (the warm pool)."""
        masked = ",".join(sorted(self.server_paths))
        return (f"{self.policy.fingerprint()}:{masked}", self.workspace, self.identity()[0])

    def reusable(self, cmd: list[str], connection_file: str) -> LaunchRecipe:
        """This recipe for the next kernel: the command as a template, no per-kernel env."""
        template = [a.replace(connection_file, CONNECTION_FILE) for a in cmd]
        env = {k: v for k, v in self.env.items() if k not in PER_KERNEL_ENV}
        return replace(self, cmd_template=template, env=env)

    def prepare(self, kernel_id: str, channel: bool = True) -> PreparedLaunch:
        """Resolve the workspace, make the run dir, grant access; nothing runs yet."""
        check_not_sensitive(self.policy, self.workspace, self.hidden_paths())
        ws = open_workspace(self.workspace)
        run: RunDir | None = None
        grant: Grant | None = None
        try:
            uid, gid = sandbox_identity_for(ws, self.sandbox_uid)
            run = RunDir.create(self.run_root, uid, gid)
            grant = grant_workspace(ws, uid, gid, self.run_root)
            channel_name = None
            if channel and KernelChannels.active():
                channel_name = KernelChannels.instance().open(run.ipc_dir, kernel_id, uid, gid)
        except BaseException:
            if grant is not None:
                grant.release()
            if run is not None:
                run.remove()
            ws.close()
            raise
        return PreparedLaunch(self, kernel_id, ws, uid, gid, run, grant, channel_name)


@dataclass
class PreparedLaunch:
    """One kernel's resources, from ``LaunchRecipe.prepare`` until ``release``."""

    recipe: LaunchRecipe
    kernel_id: str
    workspace: WorkspaceHandle
    uid: int
    gid: int
    run: RunDir
    grant: Grant | None
    channel: str | None = None

    def command(self, cmd: list[str] | None = None) -> list[str]:
        template = cmd if cmd is not None else self.recipe.cmd_template
        cmd = [a.replace(CONNECTION_FILE, self.run.connection_file) for a in template]
        return add_kernel_hooks(cmd)

    def environment(self) -> dict[str, str]:
        env = kernel_environment(self.recipe.env, self.recipe.policy)
        if self.channel:
            env[CHANNEL_ENV] = self.channel
        return env

    def spec(self, cmd: list[str] | None = None) -> LaunchSpec:
        policy = self.recipe.policy
        full = self.command(cmd)
        ro_paths = sandbox_ro_paths(full[0])
        masks = plan_masks(
            policy,
            self.workspace.path,
            [*ro_paths, *policy.extra_ro_mounts],
            owner_uids=[self.workspace.owner_uid, self.uid],
            server_paths=self.recipe.hidden_paths(),
        )
        sealed = plan_sealed_homes(
            policy,
            self.workspace.path,
            masks.masks,
            owner_uids=[self.workspace.owner_uid, self.uid],
            keep=[*ro_paths, *policy.extra_ro_mounts, self.run.ipc_dir],
        )
        env = self.environment()
        if sealed:  # for the kernel's note on a new name at the top of the home
            env["AIIDE_SEALED_HOMES"] = ":".join(h.path for h in sealed)
        return LaunchSpec(
            kernel_id=self.kernel_id,
            cmd=full,
            env=env,
            workspace=self.workspace.path,
            ipc_dir=self.run.ipc_dir,
            run_dir=self.run.path,
            ro_paths=ro_paths,
            policy=policy,
            uid=self.uid,
            gid=self.gid,
            labels={"aiide.kernel_id": self.kernel_id, **self.recipe.labels},
            workspace_fd=self.workspace.fd,
            workspace_id=(self.workspace.dev, self.workspace.ino),
            masks=masks.masks,
            sealed_homes=sealed,
            bind_fds=open_sealed_homes(self.workspace, sealed),
            links=interpreter_links(full[0]),
        )

    async def start(
        self, cmd: list[str] | None = None, backend: SandboxBackend | None = None
    ) -> SandboxedKernel:
        """Start the kernel (``cmd`` overrides the recipe's template for this start)."""
        backend = backend or get_backend(self.recipe.policy.backend)
        spec = self.spec(cmd)
        try:
            return await backend.launch(spec)
        finally:
            close_fds(spec.bind_fds)  # bwrap has its copies; the server keeps none

    def close_channel(self) -> None:
        """Stop the kernel's agent channel (on the event loop: it is a tornado server)."""
        if self.channel:
            KernelChannels.instance().close(self.run.ipc_dir)
            self.channel = None

    def release(self) -> None:
        """Give back everything: the channel, the workspace grant, the run dir. Only
        file system work once the channel is closed: a thread may do that part."""
        self.close_channel()
        if self.grant is not None:
            self.grant.release()
            self.grant = None
        self.run.remove()
        self.workspace.close()
