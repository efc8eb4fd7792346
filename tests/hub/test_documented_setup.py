"""Issue 21, finding 9: the classroom setup of docs/deployment.md §2, run as written from a
fresh machine's point of view with a real JupyterHub.

The page's blocks are taken from the page itself (never copied here): the course file,
the broker's config, the shell commands that write its key and hub token, the broker's
command line and environment, ``jupyterhub_config.py`` and the students' server config.
What a test machine cannot do as written is changed, and only that (``LOCAL``):

- the absolute paths (``/etc/aiide``, ``/etc/aiide-broker``, ``/var/lib/aiide-broker``,
  ``/opt/aiide-hub``) move under a temporary directory, where the proxy is linked as
  ``npm install --prefix /opt/aiide-hub`` would put it;
- ports are free ones, the provider URL is the fake model's, Redis is the test's;
- no ``useradd``/``-o aiide-broker`` (the test cannot create system users): the broker runs
  as the test's user, as a hub-managed broker would;
- the authenticator and spawner are ``dummy`` and ``simple`` (the page: "only for tests" /
  "only to try aiide out"), with ``--allow-root`` when root and homes under the temporary
  directory; a test-only admin service gets a student's token.

Then a student's server spawns, the student chats through the broker, and the broker's
health page answers through the hub's proxy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import RedisServer, free_port

from .chat import chat, error_of, text_of
from .harness import ROOT, VENV_BIN, _wait_http, chp_path, descendants, end_all, missing

pytestmark = pytest.mark.xdist_group("documented-setup")
DOC = ROOT / "docs" / "deployment.md"
FAKE_KEY = "sk-ant-documented-" + os.urandom(8).hex()


def section() -> str:
    text = DOC.read_text()
    start = text.index("## 2. A classroom hub on one machine")
    return text[start : text.index("\n## 3.", start)]


def blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of each fenced block, in order."""
    return re.findall(r"```(\w*)\n(.*?)```", text, re.S)


def block(text: str, lang: str, marker: str) -> str:
    found = [body for kind, body in blocks(text) if kind == lang and marker in body]
    assert len(found) == 1, f"one {lang} block with {marker!r} in deployment.md §2"
    return found[0]


class Local:
    """The few things a test machine changes (see the module's docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.hub_port, self.proxy_api, self.broker_port = free_port(), free_port(), free_port()
        self.port, self.fake_port = free_port(), free_port()
        self.admin_token = os.urandom(16).hex()

    def paths(self, text: str) -> str:
        moved = r"(?<![\w/])(/etc/aiide-broker|/etc/aiide|/var/lib/aiide-broker|/opt/aiide-hub)"
        text = re.sub(moved, lambda m: str(self.root) + m.group(1), text)
        return (
            text.replace("127.0.0.1:8765", f"127.0.0.1:{self.broker_port}")
            .replace("127.0.0.1:8081", f"127.0.0.1:{self.hub_port}")
            .replace("https://api.anthropic.com", f"http://127.0.0.1:{self.fake_port}")
        )


@pytest.fixture
def documented() -> Iterator[tuple[Local, dict[str, Any]]]:
    found = missing()
    if found is not None:
        from optional import require

        require(*found)
    root = Path(tempfile.mkdtemp(prefix="aiide-documented-"))
    local = Local(root)
    procs: list[subprocess.Popen[bytes]] = []
    redis = RedisServer().__enter__()
    try:
        yield local, {"procs": procs, "redis": redis}
    finally:
        family = {pid: t for p in procs for pid, t in descendants(p.pid).items()}
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        end_all(family)
        redis.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_the_documented_classroom_setup_runs_as_written(
    documented: tuple[Local, dict[str, Any]],
) -> None:
    local, run = documented
    root, procs = local.root, run["procs"]
    doc = section()
    log = root / "logs"
    log.mkdir()
    # A fresh machine: an empty home, no Jupyter configuration, no keys in the environment.
    home = root / "home" / "admin"
    home.mkdir(parents=True)
    env = {
        "PATH": f"{VENV_BIN}:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(ROOT),
    }

    # npm install --prefix /opt/aiide-hub configurable-http-proxy@5
    bin_dir = root / "opt" / "aiide-hub" / "node_modules" / ".bin"
    bin_dir.mkdir(parents=True)
    chp = chp_path()
    assert chp is not None
    (bin_dir / "configurable-http-proxy").symlink_to(Path(chp).resolve())

    fake = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.fake_anthropic", "--port", str(local.fake_port),
         "--api-key", FAKE_KEY, "--default-text", "Hello from the documented setup"],
        cwd=ROOT, env=env, stdout=_log(log, "fake"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    procs.append(fake)

    # The course file and the broker's config, as the page shows them.
    course = root / "etc" / "aiide" / "courses" / "ds101.yaml"
    course.parent.mkdir(parents=True)
    course.write_text(block(doc, "yaml", "groups: [students]"))
    broker_config = json.loads(local.paths(block(doc, "json", '"BrokerApp"')))
    broker_config["BrokerApp"]["redis_url"] = run["redis"].url
    cfg_path = root / "etc" / "aiide-broker" / "broker_config.json"

    # The broker's user, key and hub token: the page's commands (no system user here).
    commands = local.paths(block(doc, "bash", "useradd"))
    commands = "\n".join(
        line.replace("-o aiide-broker ", "")
        for line in commands.splitlines()
        if not line.startswith("useradd")
    )
    subprocess.run(
        ["bash", "-euo", "pipefail", "-c", commands],
        env={**env, "ANTHROPIC_API_KEY": FAKE_KEY}, check=True, cwd=root,
    )  # fmt: skip
    cfg_path.write_text(json.dumps(broker_config))
    key = root / "etc" / "aiide-broker" / "anthropic.key"
    assert key.read_text().strip() == FAKE_KEY and key.stat().st_mode & 0o077 == 0

    # The students' server config.
    singleuser = root / "etc" / "aiide" / "singleuser"
    singleuser.mkdir()
    su_text = local.paths(block(doc, "json", '"jpserver_extensions"'))
    (singleuser / "jupyter_server_config.json").write_text(su_text)

    # jupyterhub_config.py as written, then the test machine's few lines (LOCAL).
    hub_config = local.paths(block(doc, "python", "c.JupyterHub.services"))
    hub_config = hub_config.replace('"generic-oauth"', '"dummy"').replace(
        '"systemdspawner"', '"simple"'
    )
    hub_config = hub_config.replace(
        '{"students": {"users": [...]}, "instructors": {"users": [...]}}',
        '{"students": {"users": ["alice"]}, "instructors": {"users": ["ian"]}}',
    )
    args = ["--allow-root"] if os.geteuid() == 0 else []
    hub_config += "\n".join(
        [
            "",
            "# LOCAL: the test machine",
            f"c.JupyterHub.ip = '127.0.0.1'\nc.JupyterHub.port = {local.port}",
            f"c.JupyterHub.hub_ip = '127.0.0.1'\nc.JupyterHub.hub_port = {local.hub_port}",
            f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{local.proxy_api}'",
            "c.Authenticator.allow_all = True",
            f"c.SimpleLocalProcessSpawner.home_dir_template = '{root}/home/{{username}}'",
            f"c.Spawner.args = {args!r}",
            "c.Spawner.start_timeout = 60\nc.Spawner.http_timeout = 60",
            f"c.JupyterHub.services.append({{'name': 'test-admin', "
            f"'api_token': {local.admin_token!r}}})",
            "c.JupyterHub.load_roles.append({'name': 'admin', 'services': ['test-admin']})",
        ]
    )
    (root / "jupyterhub_config.py").write_text(hub_config)
    hub = subprocess.Popen(
        [sys.executable, "-m", "jupyterhub", "-f", str(root / "jupyterhub_config.py")],
        cwd=root, env=env, stdout=_log(log, "hub"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    procs.append(hub)

    # The broker: the page's command line and environment for its systemd unit.
    command = re.search(r"`(sh -c '[^']*')`", doc)
    environment = re.search(r"`Environment=([^`]*)`", doc)
    assert command is not None and environment is not None, "the broker's unit in §2"
    broker_env = dict(v.split("=", 1) for v in local.paths(environment.group(1)).split())
    broker = subprocess.Popen(
        ["sh", "-c", local.paths(command.group(1))[len("sh -c '") : -1]],
        cwd=root, env={**env, **broker_env}, stdout=_log(log, "broker"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    procs.append(broker)

    api = f"http://127.0.0.1:{local.hub_port}/hub/api"
    url = f"http://127.0.0.1:{local.port}"
    try:
        _wait_http(f"http://127.0.0.1:{local.fake_port}/", 20, fake, "the fake model")
        _wait_http(api + "/", 60, hub, "the hub (its log: logs/hub.log)")
        _wait_http(
            f"http://127.0.0.1:{local.broker_port}/services/aiide-broker/", 30, broker, "broker"
        )
        # Through the hub's proxy (its route for the service appears once the hub runs).
        health = _until_ok(url + "/services/aiide-broker/")
        assert (health["status"], health["courses"], health["providers"]) == (
            "ok",
            1,
            {"anthropic": True},
        ), health

        admin = {"Authorization": f"token {local.admin_token}"}
        status, _ = _request("POST", api + "/users/alice/server", admin)
        assert status in (201, 202), _
        _wait_ready(api, admin, "alice")
        status, token = _request("POST", api + "/users/alice/tokens", admin, {"note": "test"})
        assert status == 201, token
        events = chat(url, "alice", token["token"], "Hello?")
        assert error_of(events) is None, events
        assert text_of(events) == "Hello from the documented setup", events
    except BaseException:
        for name in ("hub", "broker", "fake"):
            print(f"--- {name}.log\n" + (log / f"{name}.log").read_text(errors="replace")[-4000:])
        raise


def _log(directory: Path, name: str) -> Any:
    """A process's log file (closed when the process's end closes it)."""
    return (directory / f"{name}.log").open("wb")


def _request(
    method: str, url: str, headers: dict[str, str] | None = None, body: Any = None
) -> tuple[int, Any]:
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw, status = r.read(), r.status
    except urllib.error.HTTPError as e:
        raw, status = e.read(), e.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def _until_ok(url: str, timeout: float = 30) -> Any:
    import time

    deadline = time.monotonic() + timeout
    while True:
        status, body = _request("GET", url)
        if status == 200 or time.monotonic() > deadline:
            assert status == 200, body
            return body
        time.sleep(0.3)


def _wait_ready(api: str, admin: dict[str, str], user: str, timeout: float = 90) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, model = _request("GET", f"{api}/users/{user}", admin)
        if ((model or {}).get("servers") or {}).get("", {}).get("ready"):
            return
        time.sleep(0.3)
    raise AssertionError(f"{user}'s server did not start")
