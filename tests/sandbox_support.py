"""Which sandbox backends this machine has; under CI a missing one is a failure."""

from __future__ import annotations

from optional import require

from aiide_kernel.backends import get_backend


def require_backend(name: str) -> None:
    status = get_backend(name).check()
    component = "bubblewrap" if name == "bwrap" else "docker"
    why = f"sandbox backend {name} unavailable: {status.detail} (fix: {status.fix})"
    require(component, status.available, why)
