"""Docker backend: the kernel in a locked-down container from the local aiide image.

The image is a minimal Debian userland built locally (``aiide_kernel/image``); the
kernel's Python environment is bind-mounted read-only at the same path, so the
user's packages work exactly as outside. The ``docker`` SDK is imported lazily:
it is heavy and most servers never use this backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from functools import lru_cache
from typing import Any

from ..policy import SandboxConfigError
from ..workspace import mask_file
from .base import BackendStatus, LaunchSpec, SandboxBackend, SandboxedKernel
from .generated_etc import write_etc


@lru_cache(maxsize=4)
def _client_for(docker_host: str | None) -> Any:
    import docker

    return docker.from_env(timeout=30)


def _client() -> Any:
    return _client_for(os.environ.get("DOCKER_HOST"))


#: How many times (0.1 s apart) a SIGKILLed container is asked whether it ran out of memory.
OOM_RECHECKS = 20


class DockerKernel(SandboxedKernel):
    def __init__(self, container: Any) -> None:
        self.container = container
        self.pid = None
        self._exit: int | None = None
        self._done = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="aiide-docker-wait", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        try:
            result = self.container.wait()
            self._exit = int(result.get("StatusCode", -1))
        except Exception:
            self._exit = -1
        finally:
            self._done.set()

    def poll(self) -> int | None:
        return self._exit if self._done.is_set() else None

    async def wait(self) -> int:
        await asyncio.to_thread(self._done.wait)
        assert self._exit is not None
        return self._exit

    def send_signal(self, signum: int) -> None:
        if self._done.is_set():
            return
        with contextlib.suppress(Exception):  # already gone
            self.container.kill(signal=signum)

    def oom_killed(self) -> bool:
        # The daemon may record the container's exit before the OOM event that caused it
        # (seen on a busy machine): a SIGKILL exit (137) is looked at again for a moment.
        for attempt in range(OOM_RECHECKS):
            try:
                self.container.reload()
            except Exception:
                return False
            state = self.container.attrs.get("State", {})
            if state.get("OOMKilled"):
                return True
            if state.get("ExitCode") != 128 + signal.SIGKILL or attempt == OOM_RECHECKS - 1:
                return False
            time.sleep(0.1)
        return False

    def cleanup(self) -> None:
        with contextlib.suppress(Exception):
            self.container.remove(force=True)
        self._done.wait(10)


def _verify_workspace(container: Any, spec: LaunchSpec) -> None:
    """The daemon mounts the workspace by path: check that what it mounted is the
    directory the server opened, not something a kernel swapped in since."""
    if spec.workspace_id is None:
        return
    container.reload()
    pid = int(container.attrs.get("State", {}).get("Pid") or 0)
    if not pid:
        return  # already exited: nothing runs there
    try:
        st = os.stat(f"/proc/{pid}/root{spec.workspace}")
    except PermissionError:
        return  # another user's container (rootless daemon): cannot look
    except FileNotFoundError:
        st = None
    if st is None or (st.st_dev, st.st_ino) != spec.workspace_id:
        raise SandboxConfigError(
            f"kernel workspace {spec.workspace!r} changed while the kernel was starting; "
            "not starting it there"
        )
    for home in spec.sealed_homes:  # the entries bound read-write, by path too
        for name, dev, ino in home.writable:
            path = os.path.join(home.path, name)
            try:
                st = os.stat(f"/proc/{pid}/root{path}")
            except OSError:
                st = None
            if st is None or (st.st_dev, st.st_ino) != (dev, ino):
                raise SandboxConfigError(
                    f"{path!r} changed while the kernel was starting; not starting it"
                )


class DockerBackend(SandboxBackend):
    name = "docker"

    def check(self) -> BackendStatus:
        try:
            import docker  # noqa: F401
        except ImportError:
            return BackendStatus(
                self.name,
                False,
                "the docker Python package is not installed",
                fix="pip install 'aiide[docker]'",
            )
        try:
            client = _client()
            client.ping()
        except Exception as e:
            _client_for.cache_clear()
            return BackendStatus(
                self.name,
                False,
                f"the Docker daemon is not reachable ({type(e).__name__})",
                fix="install and start Docker: sudo apt-get install docker.io && "
                "sudo systemctl start docker (and add your user to the 'docker' group)",
            )
        from ..image import image_present, image_tag

        tag = image_tag()
        if not image_present(client):
            return BackendStatus(
                self.name,
                False,
                f"the kernel image {tag} is not built",
                fix="jupyter aiide image build  (or: make lab)",
            )
        return BackendStatus(
            self.name, True, f"Docker {client.version().get('Version', '?')}, image {tag}"
        )

    async def launch(self, spec: LaunchSpec) -> SandboxedKernel:
        return await asyncio.to_thread(self._run, spec)

    def _run(self, spec: LaunchSpec) -> SandboxedKernel:
        from docker.types import Mount, Ulimit

        from ..image import image_tag

        policy = spec.policy
        etc = write_etc(spec)
        # Every bind is a structured Mount, never a "host:container:mode" volume string: a
        # folder named "x:y" (a valid notebook folder) made the daemon refuse the spec.
        # Keyed by target, a later bind replacing an earlier one (a home that is the
        # workspace is bound read-only, its entries read-write over it).
        binds: dict[str, Mount] = {}

        def bind(source: str, target: str, read_only: bool) -> None:
            binds[target] = Mount(target, source, type="bind", read_only=read_only)

        for path in [*spec.ro_paths, *policy.extra_ro_mounts]:
            bind(path, path, True)
        for name in ("passwd", "group", "hosts", "hostname"):
            bind(os.path.join(etc, name), f"/etc/{name}", True)
        bind(spec.ipc_dir, spec.ipc_dir, False)
        bind(spec.workspace, spec.workspace, False)
        # A sealed home: read-only, its existing visible entries read-write over it (the
        # daemon mounts parents first), so no new dot-file can appear in it.
        for home in spec.sealed_homes:
            bind(home.path, home.path, True)
            for name, _, _ in home.writable:
                entry = os.path.join(home.path, name)
                bind(entry, entry, False)
        # Masked paths: an empty read-only file, or a root-owned empty tmpfs the kernel's
        # uid cannot write (a read-only tmpfs would leave no room for deeper mount points).
        tmpfs = {"/tmp": f"size={policy.tmp_bytes},mode=1777"}
        empty = mask_file(spec.run_dir) if any(not m.is_dir for m in spec.masks) else ""
        for mask in spec.masks:
            if mask.is_dir:
                tmpfs[mask.path] = "size=64k,mode=555"
            else:
                bind(empty, mask.path, True)
        memory = policy.memory_bytes
        # /tmp/home does not exist on a fresh tmpfs; make it, then become the kernel.
        prepare = 'mkdir -p /tmp/home /tmp/site-packages && exec "$@"'
        command = ["/bin/sh", "-c", prepare, "sh", *spec.cmd]
        container = _client().containers.run(
            image_tag(),
            command=command,
            detach=True,
            name=f"aiide-{os.path.basename(spec.run_dir)}",
            hostname="sandbox",
            user=f"{spec.uid}:{spec.gid}",
            environment=spec.env,
            working_dir=spec.workspace,
            network_mode="bridge" if policy.allow_network else "none",
            read_only=True,
            tmpfs=tmpfs,
            mounts=list(binds.values()),
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mem_limit=memory,
            memswap_limit=memory,
            pids_limit=policy.max_processes,
            nano_cpus=int(policy.cpu_limit * 1e9),
            ulimits=[
                Ulimit(name="fsize", soft=policy.file_size_bytes, hard=policy.file_size_bytes),
                Ulimit(name="core", soft=0, hard=0),
            ],
            init=True,
            labels={"aiide": "kernel", **spec.labels},
        )
        try:
            _verify_workspace(container, spec)
        except BaseException:
            with contextlib.suppress(Exception):
                container.remove(force=True)
            raise
        return DockerKernel(container)
