"""What a sandboxed kernel may use: memory, CPU, processes, network, files.

A policy is pure configuration: backends (``backends/``) turn it into a launch.
Every limit is validated when it is set, so a bad value fails at kernel start with
the name of the setting to change instead of producing a weaker sandbox.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
from typing import Any

from traitlets import Bool, Float, Int, List, TraitError, Unicode, Union, validate
from traitlets.config import Configurable

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)?\s*$", re.IGNORECASE)
_SIZE_FACTORS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


class SandboxConfigError(ValueError):
    """A sandbox setting that cannot be honoured; the message names the setting."""


def parse_size(value: int | str, setting: str) -> int:
    """Turn ``"2G"``, ``"512MiB"`` or a byte count into bytes."""
    if isinstance(value, int):
        n = value
    else:
        match = _SIZE_RE.match(value)
        if not match:
            raise SandboxConfigError(
                f"{setting}={value!r} is not a size; use bytes or a value like '2G' or '512M'"
            )
        n = int(float(match.group(1)) * _SIZE_FACTORS[match.group(2).lower()])
    if n <= 0:
        raise SandboxConfigError(f"{setting}={value!r} must be a positive size")
    return n


def format_size(n: int) -> str:
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= factor:
            value = n / factor
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} B"


class SandboxPolicy(Configurable):
    """Limits and visibility for one sandboxed kernel (``c.SandboxPolicy.*``)."""

    backend = Unicode(
        "bwrap",
        config=True,
        help="Sandbox backend: 'bwrap' (bubblewrap, no daemon) or 'docker'.",
    )
    memory_limit = Union(
        [Int(), Unicode()],
        default_value="2G",
        config=True,
        help="Memory the kernel and its children may use (bytes or '2G'); "
        "enforced by cgroups (bwrap) or the container (docker).",
    )
    cpu_limit = Float(
        1.0,
        config=True,
        help="CPU time the kernel may use, in cores (e.g. 0.5 = half a core).",
    )
    max_processes = Int(
        256,
        config=True,
        help="Maximum number of processes/threads inside the sandbox (cgroup pids limit).",
    )
    max_file_size = Union(
        [Int(), Unicode()],
        default_value="4G",
        config=True,
        help="Largest single file the kernel may write (RLIMIT_FSIZE).",
    )
    tmp_size = Union(
        [Int(), Unicode()],
        default_value="512M",
        config=True,
        help="Size of the kernel's private /tmp (a tmpfs counted against memory).",
    )
    allow_network = Bool(
        False,
        config=True,
        help="Give the kernel network access. Off by default: the kernel gets its own "
        "empty network namespace and can reach neither the host nor the internet.",
    )
    workspace_root = Unicode(
        "",
        config=True,
        help="Directory that bounds every kernel workspace. Empty: the Jupyter server's "
        "root_dir (or the current directory outside a server).",
    )
    extra_ro_mounts = List(
        Unicode(),
        config=True,
        help="Extra host directories made visible read-only at the same path "
        "(e.g. a shared datasets folder).",
    )

    masked_paths = List(
        Unicode(),
        config=True,
        help="Extra host paths a kernel never sees, even when its workspace contains "
        "them: directories appear empty and read-only, files empty. Always hidden: "
        "Jupyter's runtime, data and config directories, ~/.ssh, the gateway's and "
        "agent's databases. A workspace inside one of these paths is refused.",
    )
    mask_home_dotfiles = Bool(
        True,
        config=True,
        help="When a workspace is or contains a home directory, hide every dot-file "
        "and dot-directory of that home (shell start-up files, credentials, tool "
        "configs) from kernels. See unmasked_home_entries to show some of them.",
    )
    unmasked_home_entries = List(
        Unicode(),
        config=True,
        help="Names of dot-entries of the home directory kernels may still see and "
        "change when mask_home_dotfiles is on (e.g. ['.cache', '.keras']). Jupyter's "
        "own directories and ~/.ssh stay hidden whatever this says.",
    )

    seccomp = Bool(
        True,
        config=True,
        help="Give bwrap kernels aiide's seccomp filter (Docker kernels have Docker's): "
        "io_uring, userfaultfd, bpf, keyrings, perf, ptrace, mounts, namespaces and "
        "kernel modules fail with EPERM. False only to debug a kernel with gdb or strace.",
    )
    cgroup_root = Unicode(
        "",
        config=True,
        help="Where bwrap kernels' cgroups are made: a cgroup v2 directory delegated to "
        "the server's user (memory and pids in its cgroup.controllers), or a directory "
        "holding cgroup v1 'memory' and 'pids' hierarchies. Empty: under the server's "
        "own cgroup, found in /proc/self/cgroup.",
    )
    allow_unlimited = Bool(
        False,
        config=True,
        help="Start bwrap kernels when nothing can bound them. Without a writable cgroup "
        "kernels fall back to rlimits (RLIMIT_NPROC for processes, RLIMIT_FSIZE for file "
        "size; memory and CPU are then unbounded, and `jupyter aiide check` says so); "
        "where even per-kernel rlimits are impossible (no prlimit, or a Linux older than "
        "5.14 that counts processes per user instead of per sandbox) kernels are refused "
        "unless this is True.",
    )
    limit_address_space = Bool(
        False,
        config=True,
        help="Without a writable cgroup, also cap each kernel process's address space "
        "(RLIMIT_AS) at the larger of memory_limit and 4 GiB. A crude memory bound: "
        "ipykernel maps ~700 MB at idle and every thread reserves more, so a tight "
        "cap breaks ordinary code; each process of the kernel gets its own cap.",
    )

    @validate("backend")
    def _check_backend(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"])
        if value not in ("bwrap", "docker"):
            raise TraitError(
                f"c.SandboxPolicy.backend={value!r} is not a sandbox backend; "
                "use 'bwrap' or 'docker'"
            )
        return value

    @validate("memory_limit", "max_file_size", "tmp_size")
    def _check_size(self, proposal: dict[str, Any]) -> int | str:
        name = proposal["trait"].name
        try:
            parse_size(proposal["value"], f"c.SandboxPolicy.{name}")
        except SandboxConfigError as e:
            raise TraitError(str(e)) from None
        return proposal["value"]  # type: ignore[no-any-return]

    @validate("cpu_limit")
    def _check_cpu(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if value <= 0:
            raise TraitError(
                f"c.SandboxPolicy.cpu_limit={value} must be a positive number of cores"
            )
        return value

    @validate("max_processes")
    def _check_pids(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        if value < 8:
            raise TraitError(
                f"c.SandboxPolicy.max_processes={value} is too small: a kernel needs at least 8"
            )
        return value

    @validate("masked_paths")
    def _check_masked(self, proposal: dict[str, Any]) -> list[str]:
        paths = [str(m) for m in proposal["value"]]
        for m in paths:
            if not os.path.isabs(os.path.expanduser(m)):
                raise TraitError(f"c.SandboxPolicy.masked_paths: {m!r} is not an absolute path")
        return [os.path.expanduser(m) for m in paths]

    @validate("unmasked_home_entries")
    def _check_unmasked(self, proposal: dict[str, Any]) -> list[str]:
        names = [str(m) for m in proposal["value"]]
        for n in names:
            if "/" in n or n in (".", "..") or not n.startswith("."):
                raise TraitError(
                    f"c.SandboxPolicy.unmasked_home_entries: {n!r} is not the name of a "
                    "dot-entry of the home directory (e.g. '.cache')"
                )
        return names

    @validate("cgroup_root")
    def _check_cgroup_root(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"])
        if value and not os.path.isabs(value):
            raise TraitError(f"c.SandboxPolicy.cgroup_root={value!r} is not an absolute path")
        return value

    @validate("extra_ro_mounts")
    def _check_mounts(self, proposal: dict[str, Any]) -> list[str]:
        mounts = [str(m) for m in proposal["value"]]
        for m in mounts:
            if not os.path.isabs(m):
                raise TraitError(f"c.SandboxPolicy.extra_ro_mounts: {m!r} is not an absolute path")
        return mounts

    @property
    def memory_bytes(self) -> int:
        return parse_size(self.memory_limit, "c.SandboxPolicy.memory_limit")

    @property
    def tmp_bytes(self) -> int:
        return parse_size(self.tmp_size, "c.SandboxPolicy.tmp_size")

    @property
    def file_size_bytes(self) -> int:
        return parse_size(self.max_file_size, "c.SandboxPolicy.max_file_size")

    def resolve_workspace(self, requested: str | None, server_root: str | None) -> str:
        """The directory the kernel may write: ``requested`` (the notebook's
        directory) confined to the workspace root."""
        root = os.path.realpath(self.workspace_root or server_root or os.getcwd())
        if not os.path.isdir(root):
            raise SandboxConfigError(
                f"c.SandboxPolicy.workspace_root={root!r} does not exist or is not a directory"
            )
        if requested and "\0" in requested:
            # os.stat would raise a bare ValueError ("embedded null byte") out of the start
            raise SandboxConfigError(f"kernel workspace {requested!r} contains a NUL character")
        path = os.path.realpath(requested or root)
        if not os.path.isdir(path):
            raise SandboxConfigError(f"kernel workspace {path!r} {_why_not_a_directory(path)}")
        if os.path.commonpath([root, path]) != root:
            raise SandboxConfigError(
                f"kernel workspace {path!r} is outside c.SandboxPolicy.workspace_root={root!r}"
            )
        for m in self.extra_ro_mounts:
            if not os.path.isdir(m):
                raise SandboxConfigError(
                    f"c.SandboxPolicy.extra_ro_mounts: {m!r} does not exist or is not a directory"
                )
        return path

    def fingerprint(self) -> str:
        """Stable hash of everything that shapes a sandbox; pools key kernels by it."""
        data = {name: getattr(self, name) for name in sorted(self.trait_names(config=True))}
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[
            :16
        ]

    def describe_limits(self) -> str:
        return (
            f"{format_size(self.memory_bytes)} memory, {self.cpu_limit:g} CPU, "
            f"{self.max_processes} processes, network {'on' if self.allow_network else 'off'}"
        )


def _why_not_a_directory(path: str) -> str:
    """What to tell the user about a workspace that is not a directory."""
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "is a symbolic link loop"
    return "does not exist or is not a directory"
