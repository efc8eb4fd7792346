"""Optional system components: what a test needs that `pip` cannot install.

Outside CI a test whose component is missing is skipped with the reason and the one
command that enables it; the run ends with a table of them (``pytest_terminal_summary``
in tests/conftest.py). Under CI (CI=true) a missing component fails the test: CI must
prove every suite.

The skip reason carries the component and the command in a fixed shape, because with
pytest-xdist the reports reach the controller as text, not as objects.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import pytest

IN_CI = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")
ALL_SYSTEM = "sudo tools/install_system_deps.sh"


@dataclass(frozen=True)
class Component:
    name: str
    enable: str


COMPONENTS = {
    c.name: c
    for c in (
        Component("bubblewrap", "sudo apt-get install bubblewrap"),
        Component("util-linux", "sudo apt-get install util-linux  (setpriv, prlimit)"),
        Component("docker", f"{ALL_SYSTEM}  (docker.io + dockerd), then make image"),
        Component("redis", "sudo apt-get install redis-server"),
        Component("postgresql", "sudo apt-get install postgresql"),
        Component("chromium", "sudo apt-get install chromium"),
        Component("jupyterhub", "make hub-deps"),
        Component("enterprise-gateway", "make eg-deps"),
        Component("nbgrader", "make nbgrader  (nbgrader in its own cached venv)"),
        Component("embedding-model", "make model"),
        Component("chromadb-server", "pip install chromadb"),
        Component("immutable-files", "run the tests as root on a filesystem with chattr +i"),
        Component(
            "cgroup",
            "run the tests as root, or under systemd-run --user -p Delegate=yes (memory limits)",
        ),
    )
}

_REASON = re.compile(r"^\[(?P<component>[\w-]+)\] (?P<why>.*) -- enable: (?P<enable>.*)$", re.S)


def reason(component: str, why: str) -> str:
    return f"[{component}] {why} -- enable: {COMPONENTS[component].enable}"


def parse_reason(text: str) -> tuple[str, str, str] | None:
    """(component, why, command) of a skip made by `require`, else None."""
    match = _REASON.match(text.strip())
    if match is None:
        return None
    return match["component"], match["why"], match["enable"]


def require(component: str, available: bool, why: str) -> None:
    """Skips (fails under CI) unless `available`; `why` says what is missing."""
    if available:
        return
    message = reason(component, why)
    if IN_CI:
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)
