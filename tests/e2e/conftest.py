"""Fixtures for browser tests: a real ``jupyter lab`` process and a headless Chromium.

The browser is Debian's chromium driven by the Python ``playwright`` package; no tool is
ever allowed to download a browser of its own. The assistant's tests add the fake model
provider of ``tests/fakes`` (a real HTTP server in its own process), which the server
reaches through ``ANTHROPIC_BASE_URL`` exactly as it would reach the real service.
"""

from __future__ import annotations

import contextlib
import importlib.util
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from browser_support import LabPage, widen_sidebar
from chromium import CHROMIUM, CHROMIUM_ARGS
from optional import require

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
TESTS = Path(__file__).resolve().parents[1]
# Model provider keys: the server must start without any of them.
MODEL_ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL")
READY_TIMEOUT = 60.0
FAKE_KEY = "sk-ant-e2e-0123456789abcdef"


@pytest.fixture(autouse=True)
def jp_asyncio_loop() -> None:
    """Overrides pytest-jupyter's loop fixture: playwright's sync API runs its own loop,
    which pytest-jupyter would otherwise try to close."""


@pytest.fixture(autouse=True)
def jp_server_cleanup() -> None:
    """No in-process Jupyter server here: the lab under test is a real subprocess."""


def require_chromium() -> str:
    """Path of the browser; skips locally, fails in CI, when it is not installed."""
    found = bool(shutil.which(CHROMIUM) or os.access(CHROMIUM, os.X_OK))
    require("chromium", found, f"chromium not found at {CHROMIUM} (or set AIIDE_CHROMIUM)")
    return CHROMIUM


def require_agent() -> None:
    """The assistant's tests need the agent server part and the fake model provider.

    While either is missing from the source tree they are skipped, saying which; once
    both are there a skip is impossible (the dependency is present), so under CI=true
    nothing about the assistant can be skipped silently.
    """
    missing = [
        name
        for name, found in (
            (
                "aiide_server_ext/agent/part.py",
                importlib.util.find_spec("aiide_server_ext.agent.part"),
            ),
            ("tests/fakes/fake_anthropic.py", (TESTS / "fakes" / "fake_anthropic.py").exists()),
        )
        if not found
    ]
    if missing:
        pytest.skip(f"the agent server is not in this tree yet: {', '.join(missing)} missing")


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
    cmd: list[str]
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    starts: int = field(default=0)

    def lab_url(self, path: str = "lab", workspace: str | None = None) -> str:
        """The page URL; a named `workspace` starts empty (nothing restored from others)."""
        if workspace is not None:
            return f"{self.url}{path}/workspaces/{workspace}?reset&token={self.token}"
        return f"{self.url}{path}?token={self.token}"

    def start(self) -> None:
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n==== start {self.starts} ====\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.cmd, cwd=self.root_dir, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        _wait_ready(self)

    def kill(self) -> None:
        """SIGKILL: the server gets no chance to say goodbye (a crash)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def request(self, path: str, method: str = "GET", body: Any = None) -> Any:
        """Call a server route with the token in a header (not the URL)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.url}{path}",
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            text = resp.read()
            return json.loads(text) if text else None

    def get_json(self, path: str) -> Any:
        return self.request(path)

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
    assert server.process is not None
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
        time.sleep(0.1)
    pytest.fail(
        f"jupyter lab not ready after {READY_TIMEOUT:.0f} s:\n{server.log_tail()}", pytrace=False
    )


def _quiet_lab_settings(settings_dir: Path) -> None:
    """No news or update checks from a test browser: nothing but our notices in the corner."""
    plugin_dir = settings_dir / "@jupyterlab" / "apputils-extension"
    target = plugin_dir / "notification.jupyterlab-settings"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"checkForUpdates": False, "fetchNews": "false"}))


def make_lab(
    tmp_path_factory: pytest.TempPathFactory,
    *,
    env: dict[str, str] | None = None,
    config: dict[str, Any] | None = None,
    name: str = "lab",
) -> LabServer:
    """A started ``jupyter lab`` on a free port, with fresh settings, config and root.

    ``env`` is added to the environment (model keys are removed first); ``config`` is
    written as ``jupyter_server_config.json`` (traitlets: ``{"Gateway": {...}}``).
    """
    base = tmp_path_factory.mktemp(name)
    root_dir = base / "root"
    root_dir.mkdir()
    for sub in ("config", "settings", "workspaces", "runtime", "data"):
        (base / sub).mkdir()
    _quiet_lab_settings(base / "settings")
    if config:
        (base / "config" / "jupyter_server_config.json").write_text(json.dumps(config))

    full_env = {k: v for k, v in os.environ.items() if k not in MODEL_ENV}
    full_env.update(
        {
            "JUPYTER_CONFIG_DIR": str(base / "config"),
            "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
            "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
            # The gateway's and the agent's sqlite stores: fresh for each lab.
            "JUPYTER_DATA_DIR": str(base / "data"),
            **(env or {}),
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
        # window.jupyterapp, to run commands from the tests.
        "--LabApp.expose_app_in_browser=True",
        # Start no sandboxed kernels in the background: these tests need none.
        "--AiideExtension.prewarm_kernels=False",
        *shlex.split(os.environ.get("AIIDE_E2E_LAB_ARGS", "")),
    ]
    server = LabServer(
        f"http://127.0.0.1:{port}/", token, root_dir, base / "jupyter-lab.log", cmd, full_env
    )
    server.start()
    return server


def _finish(server: LabServer, log_name: str) -> None:
    server.stop()
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(server.log_path, ARTIFACTS / log_name)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Screenshots and logs for humans and CI uploads (gitignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """A real ``jupyter lab`` on a free port, fresh settings, and no model key in its env."""
    server = make_lab(tmp_path_factory)
    try:
        yield server
    finally:
        _finish(server, "jupyter-lab.log")


@dataclass
class FakeModel:
    """The fake Anthropic API in its own process, scripted over HTTP."""

    url: str
    process: subprocess.Popen[str]

    def _call(self, path: str, method: str = "GET", body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        with urllib.request.urlopen(req, timeout=10) as resp:
            text = resp.read()
            return json.loads(text) if text else None

    def script(self, *replies: dict[str, Any]) -> None:
        """Queue replies (``tests/fakes/script.py`` ``Reply`` fields) for the next calls."""
        self._call("/_fake/script", "POST", list(replies))

    def reset(self) -> None:
        self._call("/_fake/script", "DELETE")

    def requests(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._call("/_fake/requests")["requests"]
        return found


@contextlib.contextmanager
def running_fake(module: str, *args: str) -> Iterator[FakeModel]:
    """A fake provider (``tests/fakes/<module>.py``) in its own process on a free port."""
    cmd = [sys.executable, "-m", f"fakes.{module}", "--port", "0", *args]
    process = subprocess.Popen(
        cmd, cwd=TESTS, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    try:
        url = json.loads(line)["url"]
    except (ValueError, KeyError):
        process.kill()
        pytest.fail(f"the fake model did not start: {line!r}", pytrace=False)
    try:
        yield FakeModel(url, process)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def fake_model() -> Iterator[FakeModel]:
    require_agent()
    args = ("--api-key", FAKE_KEY, "--default-text", "(no scripted reply)")
    with running_fake("fake_anthropic", *args) as fake:
        yield fake


def model_env(fake: FakeModel) -> dict[str, str]:
    return {"ANTHROPIC_API_KEY": FAKE_KEY, "ANTHROPIC_BASE_URL": fake.url}


@pytest.fixture(scope="session")
def agent_lab(
    tmp_path_factory: pytest.TempPathFactory, fake_model: FakeModel
) -> Iterator[LabServer]:
    """A real ``jupyter lab`` with the agent, talking to the fake model."""
    server = make_lab(tmp_path_factory, env=model_env(fake_model), name="agent-lab")
    try:
        yield server
    finally:
        _finish(server, "agent-lab.log")


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


@pytest.fixture
def screenshot(artifacts_dir: Path) -> Any:
    """``screenshot(page_or_locator, name)``: into the artifacts; with
    ``AIIDE_UPDATE_SCREENSHOTS=1`` also into docs/screenshots (the documented views)."""

    def take(target: Any, name: str) -> None:
        path = artifacts_dir / f"{name}.png"
        target.screenshot(path=str(path))
        if os.environ.get("AIIDE_UPDATE_SCREENSHOTS") == "1":
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, SCREENSHOTS / f"{name}.png")

    return take


@pytest.fixture(scope="module")
def agent_page(
    agent_lab: LabServer, browser_context: Any, artifacts_dir: Path, request: pytest.FixtureRequest
) -> Iterator[LabPage]:
    """The lab with the agent, open in the browser with the chat shown (one per module)."""
    name = request.module.__name__
    page = LabPage.open(browser_context, agent_lab.lab_url(workspace=name))
    page.open_chat()
    widen_sidebar(page.page)
    try:
        yield page
    finally:
        page.close(artifacts_dir, name)


@pytest.fixture
def chat(agent_page: LabPage, fake_model: FakeModel) -> Iterator[LabPage]:
    """A fresh conversation and an empty model script; afterwards, the page is checked
    (no uncaught error, every chat frame as the protocol documents it)."""
    fake_model.reset()
    agent_page.new_chat()
    yield agent_page
    agent_page.check()
