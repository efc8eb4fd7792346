"""Per-kernel cgroups for memory, process and CPU limits, on cgroup v1 and v2.

RLIMIT_AS cannot bound an ipykernel (it maps ~700 MB of address space at idle),
so memory is limited by a cgroup. Both hierarchies are supported without systemd:
v1 with separate ``memory``/``pids``/``cpu`` mounts, v2 with a delegated subtree.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import time
from dataclasses import dataclass

log = logging.getLogger("aiide.limits")

_CONTROLLERS = ("memory", "pids", "cpu")
_CFS_PERIOD_US = 100_000


@dataclass(frozen=True)
class CgroupSupport:
    version: int  # 0 = none usable
    detail: str
    bases: dict[str, str]  # controller -> directory under which kernels' cgroups are made


def _mounts() -> list[tuple[str, str, str, str]]:
    """(root, mount point, fstype, super options) for each cgroup mount."""
    out = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            rfields = right.split()
            if rfields and rfields[0] in ("cgroup", "cgroup2"):
                out.append(
                    (fields[3], fields[4], rfields[0], rfields[2] if len(rfields) > 2 else "")
                )
    return out


def _own_cgroups() -> dict[str, str]:
    """controller (or '' for v2) -> this process's cgroup path."""
    own: dict[str, str] = {}
    with open("/proc/self/cgroup", encoding="utf-8") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for c in controllers.split(",") if controllers else [""]:
                own[c] = path
    return own


def _under(mount_root: str, mount_point: str, path: str) -> str:
    rel = os.path.relpath(path, mount_root) if path.startswith(mount_root) else path.lstrip("/")
    return os.path.normpath(os.path.join(mount_point, rel))


def _writable_dir(path: str) -> bool:
    return os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)


def detect(root: str = "") -> CgroupSupport:
    """Find where this process may create child cgroups with the controllers we need
    (under ``root`` when one is configured: ``c.SandboxPolicy.cgroup_root``)."""
    if root:
        return _detect_at(root)
    try:
        mounts = _mounts()
        own = _own_cgroups()
    except OSError as e:
        return CgroupSupport(0, f"cannot read cgroup information: {e}", {})
    v1: dict[str, str] = {}
    for root, point, fstype, opts in mounts:
        if fstype != "cgroup":
            continue
        for c in _CONTROLLERS:
            if c in opts.split(",") and c in own:
                base = _under(root, point, own[c])
                if _writable_dir(base):
                    v1[c] = base
    if "memory" in v1 and "pids" in v1:
        names = ", ".join(sorted(v1))
        return CgroupSupport(1, f"cgroup v1 ({names})", v1)
    for root, point, fstype, _ in mounts:
        if fstype != "cgroup2" or "" not in own:
            continue
        base = _under(root, point, own[""])
        try:
            with open(os.path.join(base, "cgroup.controllers"), encoding="utf-8") as f:
                available = f.read().split()
        except OSError:
            continue
        if not {"memory", "pids"} <= set(available) or not _writable_dir(base):
            continue
        return CgroupSupport(
            2, f"cgroup v2 ({', '.join(c for c in _CONTROLLERS if c in available)})", {"": base}
        )
    return CgroupSupport(
        0,
        "no writable cgroup with memory and pids controllers (run the server with a "
        "delegated cgroup, e.g. `systemd-run --user -p Delegate=yes jupyter lab`)",
        {},
    )


def _detect_at(root: str) -> CgroupSupport:
    """A configured directory: a delegated v2 cgroup, or v1 ``memory``/``pids``
    hierarchies side by side."""
    try:
        with open(os.path.join(root, "cgroup.controllers"), encoding="utf-8") as f:
            available = f.read().split()
    except OSError:
        available = []
    if {"memory", "pids"} <= set(available) and _writable_dir(root):
        names = ", ".join(c for c in _CONTROLLERS if c in available)
        return CgroupSupport(2, f"cgroup v2 at {root} ({names})", {"": root})
    v1 = {
        c: os.path.join(root, c)
        for c, probe in (
            ("memory", "memory.limit_in_bytes"),
            ("pids", "pids.max"),
            ("cpu", "cpu.cfs_quota_us"),
        )
        if os.path.exists(os.path.join(root, c, probe)) and _writable_dir(os.path.join(root, c))
    }
    if "memory" in v1 and "pids" in v1:
        return CgroupSupport(1, f"cgroup v1 at {root} ({', '.join(sorted(v1))})", v1)
    return CgroupSupport(
        0,
        f"no writable cgroup with memory and pids controllers at {root} "
        "(c.SandboxPolicy.cgroup_root)",
        {},
    )


def _write(path: str, value: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(value)


class KernelCgroup:
    """The cgroup(s) one kernel launch runs in."""

    def __init__(self, support: CgroupSupport, name: str) -> None:
        self.version = support.version
        self.dirs: dict[str, str] = {}
        if support.version == 1:
            for c, base in support.bases.items():
                self.dirs[c] = os.path.join(base, name)
        else:
            self.dirs[""] = os.path.join(_v2_parent(support.bases[""]), name)

    @classmethod
    def create(
        cls, support: CgroupSupport, name: str, memory: int, pids: int, cpu: float
    ) -> KernelCgroup:
        cg = cls(support, name)
        for d in cg.dirs.values():
            os.makedirs(d, exist_ok=True)
        quota = max(1000, int(cpu * _CFS_PERIOD_US))
        if cg.version == 1:
            mem = cg.dirs["memory"]
            _write(os.path.join(mem, "memory.limit_in_bytes"), str(memory))
            with contextlib.suppress(OSError):  # absent when swap accounting is off
                _write(os.path.join(mem, "memory.memsw.limit_in_bytes"), str(memory))
            _write(os.path.join(cg.dirs["pids"], "pids.max"), str(pids))
            if "cpu" in cg.dirs:
                _write(os.path.join(cg.dirs["cpu"], "cpu.cfs_period_us"), str(_CFS_PERIOD_US))
                _write(os.path.join(cg.dirs["cpu"], "cpu.cfs_quota_us"), str(quota))
        else:
            d = cg.dirs[""]
            _write(os.path.join(d, "memory.max"), str(memory))
            with contextlib.suppress(OSError):
                _write(os.path.join(d, "memory.swap.max"), "0")
            _write(os.path.join(d, "pids.max"), str(pids))
            with contextlib.suppress(OSError):
                _write(os.path.join(d, "cpu.max"), f"{quota} {_CFS_PERIOD_US}")
        return cg

    @property
    def procs_files(self) -> list[str]:
        return [os.path.join(d, "cgroup.procs") for d in self.dirs.values()]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for f in self.procs_files:
            with contextlib.suppress(OSError), open(f, encoding="utf-8") as fh:
                found.update(int(x) for x in fh.read().split())
        return found

    def oom_killed(self) -> bool:
        try:
            if self.version == 1:
                path = os.path.join(self.dirs["memory"], "memory.oom_control")
            else:
                path = os.path.join(self.dirs[""], "memory.events")
            with open(path, encoding="utf-8") as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and int(value) > 0:
                        return True
        except OSError:
            return False
        return False

    def kill_all(self) -> None:
        """Kill every process left in the cgroup (a kernel's orphans included)."""
        if self.version == 2:
            with contextlib.suppress(OSError):
                _write(os.path.join(self.dirs[""], "cgroup.kill"), "1")
        for _ in range(50):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def remove(self) -> None:
        self.kill_all()
        for d in self.dirs.values():
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


def _v2_parent(base: str) -> str:
    """v2 forbids processes in a cgroup that delegates controllers, so kernels live
    under an ``aiide`` child of our cgroup with the controllers enabled there."""
    parent = os.path.join(base, "aiide")
    os.makedirs(parent, exist_ok=True)
    with contextlib.suppress(OSError):
        _write(os.path.join(base, "cgroup.subtree_control"), "+memory +pids +cpu")
    with contextlib.suppress(OSError):
        _write(os.path.join(parent, "cgroup.subtree_control"), "+memory +pids +cpu")
    return parent


# -- without a cgroup: rlimits ---------------------------------------------------

#: Below this a kernel cannot hold ipykernel plus numpy's threads in its address space.
MIN_ADDRESS_SPACE = 4 * 1024**3
# RLIMIT_NPROC is counted per user namespace (so per sandbox) from Linux 5.14 on;
# before, it counted every process of the uid on the host: a limit set in one kernel
# would count the user's whole session (or every sandbox under the shared uid).
_PER_NAMESPACE_NPROC = (5, 14)


def _kernel_version() -> tuple[int, int]:
    release = os.uname().release
    parts = [int("".join(ch for ch in p if ch.isdigit()) or 0) for p in release.split(".")[:2]]
    return (parts[0], parts[1] if len(parts) > 1 else 0)


def rlimit_problem() -> str | None:
    """Why per-kernel rlimits cannot stand in for a cgroup here; None when they can."""
    if shutil.which("prlimit", path="/usr/bin") is None:
        return "prlimit (util-linux) is missing"
    if _kernel_version() < _PER_NAMESPACE_NPROC:
        return (
            f"Linux {os.uname().release} counts RLIMIT_NPROC per user, not per sandbox "
            "(5.14 or newer needed)"
        )
    return None


def fallback_detail(support: CgroupSupport) -> str:
    """What bwrap kernels get instead of a cgroup, in words (status and check)."""
    if support.version:
        return support.detail
    problem = rlimit_problem()
    if problem:
        return (
            f"{support.detail}; per-kernel rlimits are impossible too ({problem}): bwrap "
            "kernels are refused unless c.SandboxPolicy.allow_unlimited = True"
        )
    return (
        f"{support.detail}; bwrap kernels fall back to rlimits: processes (RLIMIT_NPROC) "
        "and file size (RLIMIT_FSIZE) are bounded, memory and CPU are not "
        "(c.SandboxPolicy.limit_address_space adds a crude RLIMIT_AS)"
    )


_warned: set[str] = set()


def _warn_once(detail: str) -> None:
    """The server's log says, once, that kernels are not bounded as configured."""
    if detail not in _warned:
        _warned.add(detail)
        log.warning("aiide: %s", detail)


class LimitsUnavailable(RuntimeError):
    """Nothing can bound a kernel here and unlimited kernels are not allowed."""


def rlimit_argv(
    support: CgroupSupport,
    memory: int,
    processes: int,
    allow_unlimited: bool,
    limit_address_space: bool,
) -> list[str]:
    """A ``prlimit`` prefix for the kernel's argv when no cgroup bounds it (empty
    when one does). It runs inside the sandbox, after bwrap made its user
    namespace, so RLIMIT_NPROC counts this sandbox's processes only; set before
    bwrap it would count every process of the uid on the host."""
    if support.version:
        return []
    problem = rlimit_problem()
    if problem is None:
        _warn_once(fallback_detail(support))
        argv = ["/usr/bin/prlimit", f"--nproc={processes}"]
        if limit_address_space:
            argv.append(f"--as={max(memory, MIN_ADDRESS_SPACE)}")
        return [*argv, "--"]
    if not allow_unlimited:
        raise LimitsUnavailable(
            f"This bwrap kernel would run without any memory, process or CPU limit: "
            f"{support.detail}, and per-kernel rlimits are impossible ({problem}). Give the "
            "server a writable cgroup (c.SandboxPolicy.cgroup_root, or start it with "
            "`systemd-run --user -p Delegate=yes jupyter lab`), or set "
            "c.SandboxPolicy.allow_unlimited = True to start unlimited kernels."
        )
    _warn_once(
        f"{support.detail}; per-kernel rlimits are impossible too ({problem}): bwrap kernels "
        "start without limits (c.SandboxPolicy.allow_unlimited = True)"
    )
    return []
