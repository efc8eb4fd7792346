"""Which sandbox backends this machine has; under CI a missing one is a failure."""

from __future__ import annotations

from pathlib import Path

from optional import require

from aiide_kernel.backends import get_backend
from aiide_kernel.rundir import run_parent


def require_backend(name: str) -> None:
    status = get_backend(name).check()
    component = "bubblewrap" if name == "bwrap" else "docker"
    why = f"sandbox backend {name} unavailable: {status.detail} (fix: {status.fix})"
    require(component, status.available, why)


def require_memory_limit(backend: str = "bwrap") -> None:
    """A kernel's memory limit needs a cgroup it may create (bwrap) — as root, or a
    delegated one for an ordinary user; without one the server says limits are not
    enforced and a memory bomb is the kernel's own OOM kill. Docker brings its own."""
    if backend != "bwrap":
        return
    from aiide_kernel import cgroups

    support = cgroups.detect()
    require("cgroup", support.version > 0, f"no writable cgroup here: {support.detail}")


def kernel_run_dirs(run_root: Path) -> list[Path]:
    """The per-kernel run directories (sockets, connection file, /etc) under ``run_root``."""
    return sorted(Path(run_parent(str(run_root))).glob("aiide-*"))


def left_behind(run_root: Path) -> list[Path]:
    """What stopped kernels left in ``run_root``: everything but the server's private run
    directory and the cached seccomp filter in it (kept on purpose for the next kernel)."""
    parent = Path(run_parent(str(run_root)))
    outside = [p for p in run_root.iterdir() if p != parent]
    inside = (
        [p for p in parent.iterdir() if not p.name.startswith("seccomp-")]
        if parent.exists()
        else []
    )
    return sorted(outside + inside)
