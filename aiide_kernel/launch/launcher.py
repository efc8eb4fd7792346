"""Start a kernel in the aiide sandbox from a kernelspec's argv, for kernel gateways.

Jupyter Enterprise Gateway (and anything else that launches ``argv`` with a TCP
connection file and ignores kernel provisioners) gets sandboxed kernels through a
kernelspec whose argv is this launcher::

    python -m aiide_kernel.launch --backend bwrap -f {connection_file}

The launcher stays in the foreground as the gateway's "kernel process": it starts
ipykernel inside the sandbox (the same backends and ``c.SandboxPolicy`` as the
provisioner), relays the gateway's TCP ports to the kernel's ipc sockets
(``relay.py``), turns SIGINT into an ``interrupt_request`` (bubblewrap would
kill the sandbox on SIGINT), stops the sandbox on SIGTERM/SIGHUP, and exits when the
kernel does, with the reason on stderr (the gateway's log). If the launcher is killed
outright, bubblewrap's ``--die-with-parent`` takes the sandbox with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import sys

from traitlets import Float, Int, List, Unicode
from traitlets.config import Application

from ..backends import SandboxedKernel, SandboxUnavailable, get_backend
from ..policy import SandboxConfigError, SandboxPolicy
from .reaper import launcher_labels, reap_docker
from .recipe import LaunchRecipe, PreparedLaunch, server_secret_paths
from .relay import (
    Endpoints,
    Relay,
    RelayError,
    kernel_side_info,
    read_connection_file,
    write_private_json,
)

#: Connection-file addresses that mean "every interface".
WILDCARD_IPS = frozenset({"0.0.0.0", "*", "::", ""})  # noqa: S104 - recognised, never bound
#: Exit code when the sandbox could not be started at all (bad config, backend missing).
EXIT_LAUNCH_FAILED = 3


class LaunchError(RuntimeError):
    """The kernel could not be started; the message names what to change."""


def exit_status(code: int) -> int:
    """A process exit status for the kernel's exit code (``-N`` = killed by signal N)."""
    if code < 0:
        return 128 + (-code)
    return code if code < 256 else 1


def choose_workspace(policy: SandboxPolicy, explicit: str, env: dict[str, str]) -> str:
    """The kernel's workspace, always inside ``c.SandboxPolicy.workspace_root``.

    ``--workspace`` is a setting of this host: a bad one fails the launch. The
    notebook directory a jupyter_server gateway client sends (``KERNEL_WORKING_DIR``)
    is only a hint from another machine, chosen by the client: it is used when it
    exists inside the root here, and otherwise the root is."""
    if explicit:
        return policy.resolve_workspace(explicit, None)
    hint = env.get("KERNEL_WORKING_DIR", "")
    if hint and os.path.isdir(hint):
        with contextlib.suppress(SandboxConfigError):
            return policy.resolve_workspace(hint, None)
    return policy.resolve_workspace(None, None)


class SandboxLauncher(Application):  # type: ignore[misc]
    """Runs one sandboxed kernel for a connection file written by a gateway."""

    name = "aiide-launch"
    description = __doc__

    connection_file = Unicode(
        "",
        config=True,
        help="The connection file the gateway wrote (its ports, transport and key).",
    )
    workspace = Unicode(
        "",
        config=True,
        help="Directory the kernel may write. Empty: KERNEL_WORKING_DIR when the gateway "
        "client sends one that exists here, else c.SandboxPolicy.workspace_root "
        "(or the current directory).",
    )
    sandbox_uid = Int(
        64999,
        config=True,
        help="When the launcher runs as root and the workspace is root's, the kernel runs "
        "as this unprivileged uid/gid (a POSIX ACL gives it the workspace; a user's "
        "workspace runs the kernel as that user).",
    )
    run_root = Unicode(
        "",
        config=True,
        help="Directory for the kernel's run directory (ipc sockets, generated /etc). "
        "Empty: the system temporary directory.",
    )
    kernel_cmd = List(
        Unicode(),
        default_value=[],
        config=True,
        help="The kernel's argv inside the sandbox, with {connection_file}. Empty: "
        "this launcher's Python running ipykernel (its prefix is bound read-only).",
    )
    stop_timeout = Float(
        5.0,
        config=True,
        help="Seconds between SIGTERM and SIGKILL when the launcher is asked to stop.",
    )
    listen_ip = Unicode(
        "127.0.0.1",
        config=True,
        help="Address the relay listens on when the connection file asks for every "
        "interface (Enterprise Gateway writes 0.0.0.0 for all its kernels). Its local "
        "process proxy reaches the kernel on this host, so loopback keeps the kernel's "
        "ports off the network. Empty: listen where the connection file says.",
    )
    config_file = Unicode("", config=True, help="A traitlets config file (.py or .json) to load.")

    aliases = {
        "f": "SandboxLauncher.connection_file",
        "workspace": "SandboxLauncher.workspace",
        "config": "SandboxLauncher.config_file",
        "backend": "SandboxPolicy.backend",
        "memory": "SandboxPolicy.memory_limit",
        "cpu": "SandboxPolicy.cpu_limit",
        "workspace-root": "SandboxPolicy.workspace_root",
        "log-level": "Application.log_level",
    }
    flags = {
        "network": (
            {"SandboxPolicy": {"allow_network": True}},
            "Give the kernel network access (off by default).",
        ),
    }
    classes = [SandboxPolicy]

    _kernel: SandboxedKernel | None = None
    _launch: PreparedLaunch | None = None
    _relay: Relay | None = None

    def initialize(self, argv: list[str] | None = None) -> None:
        super().initialize(argv)
        if self.config_file:
            self.load_config_file(self.config_file)
        self.policy = SandboxPolicy(parent=self)

    # -- start ---------------------------------------------------------------------

    async def start_kernel(self) -> SandboxedKernel:
        """Everything up to a running sandbox with the relay listening."""
        if not self.connection_file:
            raise LaunchError("no connection file: pass -f {connection_file} in the kernelspec")
        outer = read_connection_file(self.connection_file)
        outside = Endpoints.from_info(outer)
        if self.listen_ip and outside.transport == "tcp" and outside.ip in WILDCARD_IPS:
            outside = dataclasses.replace(outside, ip=self.listen_ip)
        policy = self.policy
        try:
            policy.memory_bytes, policy.tmp_bytes, policy.file_size_bytes  # noqa: B018
            backend = get_backend(policy.backend)
            workspace = choose_workspace(policy, self.workspace, dict(os.environ))
        except (SandboxConfigError, SandboxUnavailable) as e:
            raise LaunchError(str(e)) from None
        await asyncio.to_thread(backend.require)
        if policy.backend == "docker":
            await asyncio.to_thread(reap_docker, self.log)
        template = self.kernel_cmd or [
            sys.executable,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
        ]
        recipe = LaunchRecipe(
            policy,
            workspace,
            list(template),
            env=dict(os.environ),
            run_root=self.run_root,
            sandbox_uid=self.sandbox_uid,
            server_paths=server_secret_paths(self.config),
            labels=launcher_labels(),
        )
        kernel_id = os.environ.get("KERNEL_ID", "") or f"launch-{os.getpid()}"
        try:
            self._launch = launch = recipe.prepare(kernel_id, channel=False)
        except SandboxConfigError as e:
            raise LaunchError(str(e)) from None
        run = launch.run
        inner = kernel_side_info(outer, run.ipc_prefix)
        write_private_json(run.connection_file, inner)
        run.hand_to_kernel(launch.uid, launch.gid)

        # Listen before the kernel exists: a port that is taken fails the launch at once.
        self._relay = Relay(outside, Endpoints.from_info(inner))
        self._relay.start()
        try:
            self._kernel = await launch.start(backend=backend)
        except SandboxConfigError as e:
            raise LaunchError(str(e)) from None
        self.log.info(
            "aiide: kernel started in %s sandbox (%s), relaying %s",
            policy.backend,
            policy.describe_limits(),
            outside.url("shell").rsplit(":", 1)[0],
        )
        return self._kernel

    # -- run -------------------------------------------------------------------------

    async def run(self) -> int:
        """Start, wait for the kernel or a stop signal, clean up; the exit status."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(signum, stop.set)
        loop.add_signal_handler(signal.SIGINT, self.interrupt)
        try:
            try:
                kernel = await self.start_kernel()
            except (LaunchError, RelayError, SandboxUnavailable) as e:
                self.log.error("aiide: cannot start the sandboxed kernel: %s", e)
                return EXIT_LAUNCH_FAILED
            code = await self._watch(kernel, stop)
            if code is None:
                code = await self._stop_kernel(kernel)
                return (
                    0 if code in (0, -signal.SIGTERM, 128 + signal.SIGTERM) else exit_status(code)
                )
            if code != 0:
                self.log.error("aiide: %s", kernel.death_message(code, self.policy))
            return exit_status(code)
        finally:
            await self.cleanup()

    @staticmethod
    async def _watch(kernel: SandboxedKernel, stop: asyncio.Event) -> int | None:
        """The kernel's exit code once it exits, or None when asked to stop first."""
        while not stop.is_set():
            code = kernel.poll()
            if code is not None:
                return code
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)
        return None

    async def _stop_kernel(self, kernel: SandboxedKernel) -> int:
        kernel.terminate()
        try:
            return await asyncio.wait_for(kernel.wait(), self.stop_timeout)
        except asyncio.TimeoutError:
            kernel.kill()
            return await kernel.wait()

    def interrupt(self) -> None:
        """SIGINT from the gateway: an interrupt_request on the control channel,
        signed with the kernel's key, as a client in message mode would send."""
        if self._launch is None:
            return
        from jupyter_client.session import Session

        info = read_connection_file(self._launch.run.connection_file)
        session = Session(
            key=str(info["key"]).encode(),
            signature_scheme=str(info.get("signature_scheme", "hmac-sha256")),
            username="aiide-launch",
        )
        import zmq

        sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
        try:
            sock.setsockopt(zmq.LINGER, 1000)
            sock.connect(Endpoints.from_info(info).url("control"))
            session.send(sock, "interrupt_request", {})
        finally:
            sock.close()
        self.log.info("aiide: SIGINT relayed to the kernel as interrupt_request")

    async def cleanup(self) -> None:
        if self._relay is not None:
            await self._relay.stop()
            self._relay = None
        if self._kernel is not None:
            await asyncio.to_thread(self._kernel.cleanup)
            self._kernel = None
        if self._launch is not None:
            self._launch.release()  # gives the workspace's access back, removes the run dir
            self._launch = None

    def start(self) -> None:
        sys.exit(asyncio.run(self.run()))


def main(argv: list[str] | None = None) -> None:
    app = SandboxLauncher()
    try:
        app.initialize(argv)
    except Exception as e:  # traitlets reports bad values as TraitError
        print(f"aiide-launch: {e}", file=sys.stderr)
        sys.exit(EXIT_LAUNCH_FAILED)
    app.start()
