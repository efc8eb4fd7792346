"""`make lab` tells a user without bubblewrap the one command that installs it, and
refuses to go on: it never falls back to an unsandboxed kernel."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory an unprivileged user can reach (pytest's tmp_path may be 0700)."""
    path = Path(tempfile.mkdtemp(prefix="aiide-setup-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def path_without_bwrap(public_dir: Path) -> str:
    """A PATH holding the usual tools but no bwrap."""
    bin_dir = public_dir / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "id", "env", "cat"):
        found = shutil.which(tool)
        assert found
        (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def test_without_bwrap_and_root_it_prints_the_install_command(
    path_without_bwrap: str, public_dir: Path
) -> None:
    # As an unprivileged user (nobody) nothing can be installed: say how, and stop.
    script = public_dir / "ensure_sandbox.sh"
    shutil.copy(ROOT / "tools" / "ensure_sandbox.sh", script)
    script.chmod(0o755)
    cmd = [shutil.which("bash") or "bash", str(script), str(public_dir)]
    env = {"PATH": path_without_bwrap}
    if os.geteuid() == 0:
        cmd = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "sudo apt-get install bubblewrap" in result.stderr
    assert "refusing" in result.stderr or "not installed" in result.stderr


def test_python_check_names_the_fix(tmp_path: Path) -> None:
    fake_python = tmp_path / "python9"
    fake_python.write_text("#!/bin/sh\nexit 1\n")
    fake_python.chmod(0o755)
    result = subprocess.run(
        ["bash", str(ROOT / "tools" / "check_python.sh"), str(fake_python)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "3.10 or newer" in result.stderr
