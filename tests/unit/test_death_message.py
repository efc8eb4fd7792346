"""What a bwrap kernel's death says: killed without a per-kernel memory limit (an
ordinary user with no delegated cgroup), SIGKILL is most likely the host running out of
memory, and the message says how to get a limit; with a cgroup, its own OOM record speaks."""

from __future__ import annotations

import signal
from typing import Any

from aiide_kernel.backends.bwrap import BwrapKernel
from aiide_kernel.policy import SandboxPolicy


class Exited:
    pid = 4242

    def poll(self) -> int:
        return -signal.SIGKILL


class Cgroup:
    def __init__(self, oom: bool) -> None:
        self.oom = oom

    def oom_killed(self) -> bool:
        return self.oom


def kernel(cgroup: Any) -> BwrapKernel:
    return BwrapKernel(Exited(), cgroup)  # type: ignore[arg-type]


def test_sigkill_without_a_cgroup_points_at_memory_and_the_fix() -> None:
    said = kernel(None).death_message(-signal.SIGKILL, SandboxPolicy())
    assert said.startswith("The kernel was killed by SIGKILL.")
    assert "no writable cgroup" in said and "systemd-run --user -p Delegate=yes" in said


def test_other_deaths_and_a_cgroups_oom_say_only_what_happened() -> None:
    policy = SandboxPolicy(memory_limit="512M")
    assert (
        kernel(None).death_message(-signal.SIGTERM, policy) == "The kernel was killed by SIGTERM."
    )
    assert kernel(Cgroup(oom=False)).death_message(-signal.SIGKILL, policy) == (
        "The kernel was killed by SIGKILL."
    )
    assert "exceeded its 512 MiB memory limit" in kernel(Cgroup(oom=True)).death_message(
        -signal.SIGKILL, policy
    )
