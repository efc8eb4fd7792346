"""Containers of launchers that were killed outright.

A bubblewrap sandbox dies with its launcher (``--die-with-parent``), but a Docker
container belongs to the daemon: a launcher killed with SIGKILL (the gateway's last
resort) leaves its kernel running. Each container is labelled with its launcher's pid
and this boot's id, and every Docker launch first removes the containers whose
launcher is gone.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

import psutil  # type: ignore[import-untyped]

LABEL = "aiide.launcher"
PID_LABEL = "aiide.launcher_pid"
BOOT_LABEL = "aiide.launcher_boot"


def boot_id() -> str:
    """This boot of this machine (pids are only meaningful within one)."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return "unknown"


def launcher_labels() -> dict[str, str]:
    return {LABEL: "1", PID_LABEL: str(os.getpid()), BOOT_LABEL: boot_id()}


def launcher_alive(pid: int) -> bool:
    """Whether ``pid`` is still a running aiide launcher (not a reused pid)."""
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and "aiide_kernel.launch" in proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def orphans(containers: list[Any], boot: str) -> list[Any]:
    """The containers, among those labelled by a launcher of this boot, whose launcher is gone."""
    found = []
    for container in containers:
        labels = container.labels or {}
        if labels.get(BOOT_LABEL) != boot:
            continue  # another machine's or another boot's: not ours to judge
        try:
            pid = int(labels.get(PID_LABEL, ""))
        except ValueError:
            continue
        if not launcher_alive(pid):
            found.append(container)
    return found


def reap_docker(log: logging.Logger) -> int:
    """Remove this host's orphaned launcher containers; how many were removed."""
    from ..backends.docker import _client

    boot = boot_id()
    labelled = _client().containers.list(all=True, filters={"label": f"{BOOT_LABEL}={boot}"})
    removed = 0
    for container in orphans(labelled, boot):
        with contextlib.suppress(Exception):  # gone meanwhile, or another launcher's reap
            container.remove(force=True)
            removed += 1
            log.warning(
                "aiide: removed kernel container %s left by a killed launcher", container.name
            )
    return removed
