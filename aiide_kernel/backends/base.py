"""What every sandbox backend provides: a readiness check and a launch."""

from __future__ import annotations

import abc
import os
import signal
from dataclasses import dataclass, field

from ..policy import SandboxPolicy, format_size
from ..workspace import Mask, SealedHome


class SandboxUnavailable(RuntimeError):
    """The configured backend cannot run here; the message says how to fix it."""


@dataclass(frozen=True)
class BackendStatus:
    name: str
    available: bool
    detail: str
    fix: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"available": self.available, "detail": self.detail, "fix": self.fix}


@dataclass
class LaunchSpec:
    """Everything a backend needs to start one sandboxed kernel."""

    kernel_id: str
    cmd: list[str]
    env: dict[str, str]
    workspace: str
    ipc_dir: str
    run_dir: str
    ro_paths: list[str]
    policy: SandboxPolicy
    uid: int
    gid: int
    labels: dict[str, str] = field(default_factory=dict)
    #: An O_PATH descriptor of the workspace (-1: none): mounted instead of the path,
    #: which a kernel could have swapped for a symlink since it was checked.
    workspace_fd: int = -1
    #: (st_dev, st_ino) of the workspace, to check a mount made by path against.
    workspace_id: tuple[int, int] | None = None
    #: Host paths inside the visible mounts to hide (Jupyter's files, dotfiles, secrets).
    masks: list[Mask] = field(default_factory=list)
    #: Homes the kernel sees read-only at their top level (it cannot create a dot-file
    #: there), their existing visible entries read-write over them.
    sealed_homes: list[SealedHome] = field(default_factory=list)
    #: O_PATH descriptors of those homes and entries, by mount point (bwrap binds them).
    bind_fds: dict[str, int] = field(default_factory=dict)
    #: The symlinks the interpreter's path passes through, as (target, link): see
    #: ``interpreter_links``.
    links: list[tuple[str, str]] = field(default_factory=list)


class SandboxedKernel(abc.ABC):
    """A running (or exited) sandboxed kernel, as the provisioner sees it."""

    pid: int | None = None

    @abc.abstractmethod
    def poll(self) -> int | None:
        """Exit code, or None while running. Must be cheap: the restarter calls it often."""

    @abc.abstractmethod
    async def wait(self) -> int:
        """Wait for exit and return the exit code."""

    @abc.abstractmethod
    def send_signal(self, signum: int) -> None: ...

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    @abc.abstractmethod
    def oom_killed(self) -> bool:
        """Whether the memory limit killed something in this sandbox."""

    @abc.abstractmethod
    def cleanup(self) -> None:
        """Release everything this launch created (cgroups, containers)."""

    def death_message(self, exit_code: int, policy: SandboxPolicy) -> str:
        """Say in words why the kernel stopped, for the user and the log."""
        if self.oom_killed():
            return (
                f"The kernel exceeded its {format_size(policy.memory_bytes)} memory limit "
                "and was stopped (c.SandboxPolicy.memory_limit)."
            )
        if exit_code < 0 or exit_code > 128:
            signum = -exit_code if exit_code < 0 else exit_code - 128
            try:
                name = signal.Signals(signum).name
            except ValueError:
                name = f"signal {signum}"
            return f"The kernel was killed by {name}."
        return f"The kernel exited unexpectedly with code {exit_code}."


class SandboxBackend(abc.ABC):
    name: str
    #: Whether check() is fast enough to call on the event loop (cached, no I/O).
    check_is_cheap = False

    @abc.abstractmethod
    def check(self) -> BackendStatus:
        """Whether this backend can start kernels here, and if not, the fix."""

    @abc.abstractmethod
    async def launch(self, spec: LaunchSpec) -> SandboxedKernel: ...

    def require(self) -> None:
        status = self.check()
        if not status.available:
            fix = f" To fix: {status.fix}" if status.fix else ""
            raise SandboxUnavailable(
                f"Sandbox backend '{self.name}' is not usable: {status.detail}.{fix} "
                "(or choose another with c.SandboxPolicy.backend)"
            )


def kernel_environment(requested: dict[str, str], policy: SandboxPolicy) -> dict[str, str]:
    """A clean environment for the kernel: nothing from the server's environment
    leaks in (API keys, tokens), only what a kernel needs and what the kernelspec
    asked for explicitly."""
    env = {
        "HOME": "/tmp/home",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TMPDIR": "/tmp",
        "IPYTHONDIR": "/tmp/home/.ipython",
        "MPLCONFIGDIR": "/tmp/home/.config/matplotlib",
        "JUPYTER_RUNTIME_DIR": "/tmp/home/.local/share/jupyter/runtime",
        "PYTHONUNBUFFERED": "1",
        # The launcher is pid 1 of the sandbox; also silences ipykernel's terminal notes.
        "JPY_PARENT_PID": "1",
        # %pip install lands in the private /tmp, never in the shared read-only env.
        "PIP_TARGET": "/tmp/site-packages",
        "PYTHONPATH": "/tmp/site-packages",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "AIIDE_SANDBOX": policy.backend,
        "AIIDE_NETWORK": "on" if policy.allow_network else "off",
    }
    for key in ("JPY_SESSION_NAME", "TZ"):
        if key in requested:
            env[key] = requested[key]
    return env


def python_prefixes(executable: str) -> list[str]:
    """Directories that make up the kernel's Python: the env and, for a venv, the
    interpreter it was made from. Bound read-only, never the home around them: a
    directory counts only when it holds a Python (``lib/pythonX.Y``). A venv made from a
    folder of links (``home = ~/bin``, or a PATH of shims) names that folder, whose
    parent is no Python: it is the interpreter the link leads to that counts."""
    exe = os.path.abspath(executable)
    candidates = [_prefix_of(exe)]
    cfg = os.path.join(candidates[0], "pyvenv.cfg")
    if os.path.exists(cfg):
        with open(cfg, encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition("=")
                key, value = key.strip(), value.strip()
                if key == "home" and value:
                    for name in dict.fromkeys((os.path.basename(exe), "python3", "python")):
                        base = os.path.join(value, name)
                        if os.path.exists(base):
                            candidates.append(_prefix_of(os.path.realpath(base)))
                            break
                    candidates.append(os.path.dirname(value))
                elif key == "executable" and value:  # written by Python 3.11+, resolved
                    candidates.append(_prefix_of(os.path.realpath(value)))
    candidates.append(_prefix_of(os.path.realpath(exe)))
    out: list[str] = []
    for p in candidates:
        p = os.path.realpath(p)
        if p in ("/", "/usr") or p.startswith("/usr/"):
            continue  # /usr is bound anyway
        if not _holds_python(p):
            continue
        if p not in out and not any(p.startswith(o + os.sep) for o in out):
            out.append(p)
    return out


def interpreter_links(executable: str) -> list[tuple[str, str]]:
    """The symlinks the interpreter's path passes through, as (target, link), in order.

    A venv made from a link (``~/bin/python3`` or a shim folder -> ``/usr/bin/python3``)
    starts its interpreter through that link; the sandbox recreates such a link where
    it binds no folder around it, rather than binding the folder."""
    links: list[tuple[str, str]] = []
    path = os.path.abspath(executable)
    for _ in range(40):  # the kernel's own limit on links followed is of this order
        try:
            target = os.readlink(path)
        except OSError:
            break
        links.append((target, path))
        path = os.path.normpath(os.path.join(os.path.dirname(path), target))
    return links


def _prefix_of(interpreter: str) -> str:
    return os.path.dirname(os.path.dirname(interpreter))


def _holds_python(prefix: str) -> bool:
    """A Python's prefix (an installation or a venv) has ``lib/pythonX.Y``."""
    for lib in ("lib", "lib64"):
        try:
            names = os.listdir(os.path.join(prefix, lib))
        except OSError:
            continue
        if any(n.startswith("python") for n in names):
            return True
    return False


#: The IPython extension with the kernel's start-up hooks (``%pip`` without network,
#: the note on a sealed home); it reads what to install from the kernel's environment.
KERNEL_HOOKS = "--IPKernelApp.extra_extensions=aiide_kernel.kernel_hooks"
#: ipykernel's launcher, and ours: the same kernel without loading the debugger that a
#: sandboxed kernelspec does not offer (see ``aiide_kernel/sandboxed_ipykernel.py``).
IPYKERNEL_LAUNCHER = "ipykernel_launcher"
SANDBOXED_LAUNCHER = "aiide_kernel.sandboxed_ipykernel"


def add_kernel_hooks(cmd: list[str]) -> list[str]:
    """Start ipykernel-based kernels through our launcher and load
    ``aiide_kernel.kernel_hooks`` in them (others are left alone). An extension, not
    ``exec_lines``: those run through ``run_cell``, whose first call costs every cold
    start about 15 ms (IPython's tokenizer patterns)."""
    if not any("ipykernel" in part for part in cmd) or KERNEL_HOOKS in cmd:
        return cmd  # not ipykernel, or a command from a recipe that already has it
    out = list(cmd)
    for i in range(len(out) - 1):
        if out[i] == "-m" and out[i + 1] == IPYKERNEL_LAUNCHER:
            out[i + 1] = SANDBOXED_LAUNCHER
            break
    return [*out, KERNEL_HOOKS]


def sandbox_ro_paths(executable: str) -> list[str]:
    """Everything the kernel sees read-only: its Python, and aiide_kernel itself when
    it is installed in development mode outside that Python (for ``%ai``)."""
    paths = python_prefixes(executable)
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not any(package == p or package.startswith(p + os.sep) for p in paths):
        paths.append(package)
    return paths
