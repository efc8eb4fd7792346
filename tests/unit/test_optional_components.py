"""A missing system component skips its tests with the command that enables it (one
table at the end of the run), and fails them under CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REDIS_TEST = "tests/hub/test_state_units.py::test_a_restarted_redis_is_reconnected_on_the_next_call"


def _run_without_system_tools(tmp_path: Path, ci: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI" and not k.startswith("PYTEST_")}
    env["PATH"] = str(tmp_path)  # an empty folder: no redis-server, no docker, no chromium
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", REDIS_TEST, "-p", "no:randomly", "-q"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_missing_component_skips_and_the_table_says_how_to_enable_it(tmp_path: Path) -> None:
    result = _run_without_system_tools(tmp_path, ci=False)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("hub ")]
    assert rows and rows[0][:3] == ["hub", "0", "1"], result.stdout
    assert "sudo apt-get install redis-server" in result.stdout
    assert "tools/install_system_deps.sh" in result.stdout
    # The skip is in the table, not in one line per skipped test.
    assert "SKIPPED [" not in result.stdout


def test_under_ci_a_missing_component_fails(tmp_path: Path) -> None:
    result = _run_without_system_tools(tmp_path, ci=True)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "CI=true and [redis] redis-server is not installed" in result.stdout
