"""`jupyter lab` with aiide prints the login link as plain Jupyter does, and it works.

A user on a remote machine or in a container has no browser opened for them: the link
with its token in the console is how they log in. The log's redaction must spare that
link (and only that: tests/gateway/test_units.py checks other tokens stay hidden).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

LINK = re.compile(r"(http://127\.0\.0\.1:\d+/lab\?token=)([0-9a-f]{16,})")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_link(log: Path, process: subprocess.Popen[bytes], timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if match := LINK.search(text):
            return match.group(0)
        assert process.poll() is None, f"the server exited:\n{text}"
        time.sleep(0.2)
    raise AssertionError(f"no login link printed in {timeout} s:\n{log.read_text()}")


def _open(link: str, log: Path, process: subprocess.Popen[bytes], timeout: float = 15.0) -> bytes:
    """The page behind the link; a refused connection is tried again for a few seconds (it
    was refused once in CI right after the link was printed), with the log if it stays so."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(link, timeout=30) as page:
                assert page.status == 200
                return bytes(page.read())
        except urllib.error.URLError as e:
            alive = process.poll() is None
            if not alive or time.monotonic() > deadline:
                state = "running" if alive else f"exited {process.returncode}"
                raise AssertionError(f"{link}: {e} (server {state}):\n{log.read_text()}") from e
            time.sleep(0.5)


def test_lab_prints_a_login_link_that_logs_in(tmp_path: Path) -> None:
    home, root = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    root.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("JUPYTER", "ANTHROPIC", "OPENAI"))
    }
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    port = _free_port()
    log = tmp_path / "lab.log"
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}"]
    cmd += ["--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={root}"]
    cmd += ["--AiideExtension.prewarm_kernels=False", "--KernelPool.size=0"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        link = _wait_for_link(log, process)
        assert "[REDACTED]" not in link
        body = _open(link, log, process)
        assert b"jupyter-config-data" in body
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
