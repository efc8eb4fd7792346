"""Per-kernel cgroups for memory, process and CPU limits, on cgroup v1 and v2.

RLIMIT_AS cannot bound an ipykernel (it maps ~700 MB of address space at idle),
so memory is limited by a cgroup. Both hierarchies are supported without systemd:
v1 with separate ``memory``/``pids``/``cpu`` mounts, v2 with a delegated subtree.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass

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


def detect() -> CgroupSupport:
    """Find where this process may create child cgroups with the controllers we need."""
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
