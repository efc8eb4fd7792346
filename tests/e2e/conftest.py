"""Fixtures for browser tests: a real ``jupyter lab`` process and a headless Chromium.

The browser is Debian's chromium driven by the Python ``playwright`` package; no tool is
ever allowed to download a browser of its own.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = os.environ.get("AIIDE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
# Model provider keys: the server must start without any of them.
MODEL_ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL")
READY_TIMEOUT = 60.0


@pytest.fixture(autouse=True)
def jp_asyncio_loop() -> None:
    """Overrides pytest-jupyter's loop fixture: playwright's sync API runs its own loop,
    which pytest-jupyter would otherwise try to close."""


@pytest.fixture(autouse=True)
def jp_server_cleanup() -> None:
    """No in-process Jupyter server here: the lab under test is a real subprocess."""


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require_chromium() -> str:
    """Path of the browser; skips locally, fails in CI, when it is not installed."""
    if shutil.which(CHROMIUM) or os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    reason = f"chromium not found at {CHROMIUM} (apt-get install chromium, or set AIIDE_CHROMIUM)"
    if _in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _jupyter() -> list[str]:
    exe = Path(sys.executable).with_name("jupyter")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "jupyter"]


@dataclass
class LabServer:
    url: str
    token: str
    root_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    def lab_url(self, path: str = "lab") -> str:
        return f"{self.url}{path}?token={self.token}"

    def get_json(self, path: str) -> Any:
        """GET a server route with the token in a header (not the URL)."""
        req = urllib.request.Request(
            f"{self.url}{path}", headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def page_config(self) -> dict[str, Any]:
        """JupyterLab's page config (``jupyter-config-data``) as the browser would get it."""
        req = urllib.request.Request(
            f"{self.url}lab", headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            html = resp.read().decode()
        match = re.search(
            r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
            html,
            re.DOTALL,
        )
        assert match, "no jupyter-config-data in the /lab page"
        config: dict[str, Any] = json.loads(match.group(1))
        return config

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])


def _wait_ready(server: LabServer) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(
                f"jupyter lab exited with {server.process.returncode}:\n{server.log_tail()}",
                pytrace=False,
            )
        try:
            with urllib.request.urlopen(
                f"{server.url}api/status?token={server.token}", timeout=2
            ) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    pytest.fail(
        f"jupyter lab not ready after {READY_TIMEOUT:.0f} s:\n{server.log_tail()}", pytrace=False
    )


def _quiet_lab_settings(settings_dir: Path) -> None:
    """No news or update checks from a test browser: nothing but our notices in the corner."""
    plugin_dir = settings_dir / "@jupyterlab" / "apputils-extension"
    target = plugin_dir / "notification.jupyterlab-settings"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"checkForUpdates": False, "fetchNews": "false"}))


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Screenshots and logs for humans and CI uploads (gitignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """A real ``jupyter lab`` on a free port, fresh settings, and no model key in its env."""
    base = tmp_path_factory.mktemp("lab")
    root_dir = base / "root"
    root_dir.mkdir()
    for name in ("config", "settings", "workspaces", "runtime"):
        (base / name).mkdir()
    _quiet_lab_settings(base / "settings")

    env = {k: v for k, v in os.environ.items() if k not in MODEL_ENV}
    env.update(
        {
            "JUPYTER_CONFIG_DIR": str(base / "config"),
            "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
            "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        }
    )
    port = _free_port()
    token = secrets.token_hex(24)
    cmd = [
        *_jupyter(),
        "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--ServerApp.token={token}",
        f"--ServerApp.root_dir={root_dir}",
        "--ServerApp.port_retries=0",
        "--allow-root",
        # Start no sandboxed kernels in the background: this test needs none.
        "--AiideExtension.prewarm_kernels=False",
        *shlex.split(os.environ.get("AIIDE_E2E_LAB_ARGS", "")),
    ]
    log_path = base / "jupyter-lab.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(cmd, cwd=root_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = LabServer(f"http://127.0.0.1:{port}/", token, root_dir, log_path, process)
    try:
        _wait_ready(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copyfile(log_path, ARTIFACTS / "jupyter-lab.log")


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A headless Chromium with a fresh profile (``launch_persistent_context``)."""
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()
