"""Sandbox backends: each turns a SandboxPolicy into a running kernel."""

from __future__ import annotations

from .base import BackendStatus, LaunchSpec, SandboxBackend, SandboxedKernel, SandboxUnavailable


def get_backend(name: str) -> SandboxBackend:
    if name == "bwrap":
        from .bwrap import BwrapBackend

        return BwrapBackend()
    if name == "docker":
        from .docker import DockerBackend

        return DockerBackend()
    raise SandboxUnavailable(
        f"c.SandboxPolicy.backend={name!r} is not a sandbox backend; use 'bwrap' or 'docker'"
    )


def backend_statuses() -> dict[str, BackendStatus]:
    return {name: get_backend(name).check() for name in ("bwrap", "docker")}


__all__ = [
    "BackendStatus",
    "LaunchSpec",
    "SandboxBackend",
    "SandboxUnavailable",
    "SandboxedKernel",
    "backend_statuses",
    "get_backend",
]
