"""A real JupyterHub on loopback: configurable-http-proxy, dummy authenticator, local
spawner, groups ``students`` and ``instructors``, the aiide broker as a hub-managed service,
the fake Anthropic and OpenAI-compatible servers behind it and a redis-server. Every
process stops at exit."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from servers import RedisServer, free_port

ROOT = Path(__file__).parents[2]
VENV_BIN = Path(sys.executable).parent
PROJECT_CHP = ROOT / "build" / "hub" / "node_modules" / ".bin" / "configurable-http-proxy"
PROVIDER_KEY = "sk-ant-provider-" + os.urandom(12).hex()
OPENAI_KEY = "sk-openai-provider-" + os.urandom(12).hex()
GATEWAY_KEY = "gw-provider-" + os.urandom(12).hex()
#: Described providers at the broker (one fake process serves them all): name ->
#: (shipped descriptor, model id). Students' servers list them; the course allows none
#: until a test adds their models.
DESCRIBED = {
    "azure": ("azure-openai", "course-gpt4o-deployment"),
    "gemini": ("gemini", "gemini-2.0-flash"),
    "bedrock": ("bedrock-converse", "anthropic.claude-3-haiku-20240307-v1:0"),
    "ollama": ("ollama", "llama3.2"),
    "textapi": ("text-api", "course-text-model"),
    # the text API again, behind an OAuth token exchange the broker makes per student
    "sso": ("text-api", "sso-text-model"),
}
#: The broker's client-credentials exchange for "sso" (the key file holds the secret).
SSO_AUTH = {
    "url": "${base_url}/oauth/token",
    "form": {"grant_type": "client_credentials", "client_id": "aiide",
             "client_secret": "${api_key}"},
    "apply": {"authorization": "Bearer ${token}"},
}  # fmt: skip
STUDENTS = ("alice", "bob")
#: A student without a server, whose only model calls are the replica test's.
QUIET_STUDENT = "carol"
INSTRUCTORS = ("ian",)
#: In the broker's admin_groups: reads every course's audit (refused logins included).
BROKER_ADMIN = "adam"
#: An instructor by hub role (``load_roles``), in no group: ``role_groups`` maps the role.
ROLE_INSTRUCTOR = "rita"
ROLE_GROUPS = {"instructor": ["instructors"]}
#: The smallest Messages API request, for tests that call the broker directly.
BODY = {
    "model": "claude-haiku-4-5",
    "max_tokens": 5,
    "messages": [{"role": "user", "content": "x"}],
}
COURSE = {
    "course": "ds101",
    "groups": ["students"],
    "instructors": ["instructors"],
    "models": ["claude-haiku-4-5", "gpt-4o-mini"],
    "budget": {"daily_tokens": 100000, "weekly_tokens": 400000},
    "rate_limits": {"model": "1000/minute"},
    "tools": {"edits_need_approval": True, "network": False},
    # message null: a reset also clears an instructor's message (exam changes merge per field)
    "exam": {"enabled": False, "disable": ["chat", "agent", "complete"], "message": None},
}
#: Seconds the broker waits for the hub, and caches who a token is (hub-down tests).
HUB_TIMEOUT, IDENTITY_CACHE = 1.0, 1.0
#: Seconds a student's server waits for the broker.
BROKER_TIMEOUT = 3.0
STUDENT_SCOPES = ["chat", "complete", "agent:run", "agent:execute", "kernels", "contents:read",
                  "contents:write", "usage:read"]  # fmt: skip


def chp_path() -> str | None:
    found = os.environ.get("AIIDE_CHP") or (str(PROJECT_CHP) if PROJECT_CHP.exists() else None)
    return found or shutil.which("configurable-http-proxy")


def missing() -> tuple[str, bool, str] | None:
    """What the hub lacks here, as (component, False, why) for `optional.require`."""
    try:
        import jupyterhub  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return "jupyterhub", False, "jupyterhub is not installed"
    if chp_path() is None:
        return "jupyterhub", False, "configurable-http-proxy is not installed"
    if shutil.which("redis-server") is None:
        return "redis", False, "redis-server is not installed"
    return None


def child_pid(parent: int, marker: bytes) -> int | None:
    """A child process of ``parent`` whose command line contains ``marker``."""
    for entry in os.listdir("/proc"):
        stat = _stat(int(entry)) if entry.isdigit() else None
        if stat is None or int(stat[1]) != parent:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if marker in cmd:
            return int(entry)
    return None


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name: [state, ppid, ...]; None when gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def descendants(root: int) -> dict[int, str]:
    """Every process below ``root`` now (children, their children...), with its start
    time, so that a pid the system hands to someone else later is never signalled."""
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in os.listdir("/proc"):
        stat = _stat(int(entry)) if entry.isdigit() else None
        if stat is not None:
            children.setdefault(int(stat[1]), []).append((int(entry), stat[19]))
    found: dict[int, str] = {}
    todo = [root]
    while todo:
        for child, started in children.get(todo.pop(), ()):
            if child not in found:
                found[child] = started
                todo.append(child)
    return found


def end_all(family: dict[int, str], wait: float = 5.0) -> None:
    """SIGTERM those of ``family`` still running (same pid, same start time), then
    SIGKILL those that stay."""

    def running(pid: int) -> bool:
        stat = _stat(pid)
        return stat is not None and stat[19] == family[pid] and stat[0] != "Z"

    alive = {pid for pid in family if running(pid)}
    for pid in alive:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = {pid for pid in alive if running(pid)}
    for pid in alive:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not start in {timeout}s")


class Hub:
    def __init__(self, students: tuple[str, ...] = (*STUDENTS, QUIET_STUDENT)) -> None:
        self.students = students
        self.identity_cache, self.hub_timeout = IDENTITY_CACHE, HUB_TIMEOUT
        self.dir = Path(tempfile.mkdtemp(prefix="aiide-hub-"))
        self.port, self.hub_port, self.api_port = free_port(), free_port(), free_port()
        self.broker_port, self.broker2_port, self.fake_port = free_port(), free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api = f"http://127.0.0.1:{self.hub_port}/hub/api"
        self.admin_token = os.urandom(16).hex()
        self.broker2_token = os.urandom(16).hex()
        self.broker_url = f"http://127.0.0.1:{self.broker_port}/services/aiide-broker/"
        self.broker2_url = f"http://127.0.0.1:{self.broker2_port}/services/aiide-broker/"
        self.fake_url = f"http://127.0.0.1:{self.fake_port}"
        self.openai_port = free_port()
        self.openai_url = f"http://127.0.0.1:{self.openai_port}"
        self.gateways_port = free_port()
        self.gateways_url = f"http://127.0.0.1:{self.gateways_port}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.redis = RedisServer()
        self.tokens: dict[str, str] = {}
        self.broker2: subprocess.Popen[bytes] | None = None

    # -- start ---------------------------------------------------------------------------

    def start(self) -> Hub:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _log(self, name: str) -> Any:
        return open(self.dir / f"{name}.log", "wb")

    def _spawn(self, name: str, argv: list[str], env: dict[str, str], cwd: Path) -> Any:
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=self._log(name), stderr=-2)
        self.procs.append(proc)
        return proc

    def _start(self) -> None:
        self.redis.__enter__()
        base_env = {k: v for k, v in os.environ.items() if "API_KEY" not in k}
        fake = self._spawn(
            "fake",
            [sys.executable, "-m", "tests.fakes.fake_anthropic", "--port", str(self.fake_port),
             "--api-key", PROVIDER_KEY, "--default-text", "Hello from the model"],
            base_env, ROOT,
        )  # fmt: skip
        openai = self._spawn(
            "fake-openai",
            [sys.executable, "-m", "tests.fakes.fake_openai", "--port", str(self.openai_port),
             "--api-key", OPENAI_KEY, "--default-text", "Hello from the OpenAI model"],
            base_env, ROOT,
        )  # fmt: skip
        gateways = self._spawn(
            "fake-gateways",
            [sys.executable, "-m", "tests.fakes.gateways", "--port", str(self.gateways_port),
             "--api-key", GATEWAY_KEY, "--default-text", "Hello from the gateway model"],
            base_env, ROOT,
        )  # fmt: skip
        # The documented setup: each key in a file only the broker's user can read.
        keys = self.dir / "keys"
        keys.mkdir(mode=0o700)
        for name, key in (("anthropic", PROVIDER_KEY), ("openai", OPENAI_KEY),
                          ("gateways", GATEWAY_KEY)):  # fmt: skip
            path = keys / f"{name}.key"
            path.write_text(key + "\n")
            path.chmod(0o600)
        courses = self.dir / "courses"
        courses.mkdir()
        (courses / "ds101.json").write_text(json.dumps(COURSE))
        broker_cfg = self.dir / "broker_config.json"
        broker_cfg.write_text(json.dumps({"BrokerApp": self.broker_config()}))
        singleuser = self.dir / "singleuser"
        singleuser.mkdir()
        (singleuser / "jupyter_server_config.json").write_text(json.dumps(self.singleuser()))
        config = self.dir / "jupyterhub_config.py"
        config.write_text(self.hub_config(broker_cfg, singleuser))
        config.chmod(0o600)
        hub = self._spawn(
            "hub", [sys.executable, "-m", "jupyterhub", "-f", str(config)], base_env, self.dir
        )
        _wait_http(self.fake_url + "/", 20, fake, "the fake model")
        _wait_http(self.openai_url + "/v1/models", 20, openai, "the fake OpenAI model")
        _wait_http(self.gateways_url + "/_fake/requests", 20, gateways, "the fake gateways")
        _wait_http(self.api + "/", 60, hub, "the hub")
        _wait_http(self.broker_url + "api/me", 30, hub, "the broker")

    def broker_config(self) -> dict[str, Any]:
        return {
            "course_dir": str(self.dir / "courses"),
            "upstreams": {
                "anthropic": {"base_url": self.fake_url, "api_key_file": str(self.key_file())},
                "openai": {
                    "base_url": self.openai_url + "/v1",
                    "api_key_file": str(self.key_file("openai")),
                },
                **self.described_upstreams(),
            },
            "redis_url": self.redis.url,
            "db_path": str(self.dir / "broker.sqlite"),
            "hub_timeout": self.hub_timeout,
            "identity_cache_seconds": self.identity_cache,
            "role_groups": ROLE_GROUPS,
            "admin_groups": ["broker-admins"],
        }

    def described_upstreams(self) -> dict[str, Any]:
        """The described providers, all on the one fake, with one key file."""
        return {
            name: {
                "kind": "described",
                "descriptor": descriptor,
                "models": [model],
                "base_url": self.gateways_url,
                "api_key_file": str(self.key_file("gateways")),
                **({"auth": SSO_AUTH} if name == "sso" else {}),
            }
            for name, (descriptor, model) in DESCRIBED.items()
        }

    def key_file(self, provider: str = "anthropic") -> Path:
        return self.dir / "keys" / f"{provider}.key"

    def singleuser(self) -> dict[str, Any]:
        return {
            "ServerApp": {
                "jpserver_extensions": {"aiide_server_ext": True, "aiide_server_ext.hub": True}
            },
            "AiideExtension": {"prewarm_kernels": False},
            "KernelPool": {"size": 0},
            "Gateway": {
                "roles": {"student": STUDENT_SCOPES, "instructor": [*STUDENT_SCOPES, "course"]},
                "group_roles": {"students": ["student"], "instructors": ["instructor"]},
                "default_roles": [],
            },
            "Agent": {
                "preload": False,
                # No URL, no key: under the hub the aiide_server_ext.hub extension points
                # both at the broker with the student's hub token (hub/providers.py).
                "providers": {"anthropic": {"kind": "anthropic"}, "openai": {"kind": "openai"},
                              # no URL, no key either: the broker holds both
                              **{name: {"kind": "described", "descriptor": descriptor}
                                 for name, (descriptor, _) in DESCRIBED.items()}},
                "models": [{"name": "claude-haiku", "provider": "anthropic",
                            "model": "claude-haiku-4-5",
                            "capabilities": ["chat", "tools", "complete"]},
                           {"name": "gpt-mini", "provider": "openai", "model": "gpt-4o-mini",
                            "capabilities": ["chat", "tools"]},
                           *({"name": f"gw-{name}", "provider": name, "model": model}
                             for name, (_, model) in DESCRIBED.items())],
            },
            "Router": {"max_retries": 0},
            # Edits would run by themselves: the course's tool policy is what stops them.
            "ToolPolicy": {"roles": {"student": {"low": "auto", "medium": "auto",
                                                 "high": "deny"}}},
            "AiideHub": {"broker_url": self.broker_url, "timeout": BROKER_TIMEOUT,
                         "role_groups": ROLE_GROUPS},
        }  # fmt: skip

    def hub_config(self, broker_cfg: Path, singleuser: Path) -> str:
        args = ["--allow-root"] if os.geteuid() == 0 else []
        services = [
            {"name": "aiide-broker", "url": f"http://127.0.0.1:{self.broker_port}",
             "command": [sys.executable, "-m", "aiide_server_ext.hub", "--config", str(broker_cfg)],
             "environment": {"PYTHONPATH": str(ROOT)},
             "cwd": str(self.dir)},
            {"name": "aiide-broker-2", "api_token": self.broker2_token},
            {"name": "test-admin", "api_token": self.admin_token},
        ]  # fmt: skip
        roles = [
            {"name": "aiide-broker",
             "scopes": ["read:users", "read:users:groups", "read:roles:users", "list:users"],
             "services": ["aiide-broker", "aiide-broker-2"]},
            {"name": "admin", "services": ["test-admin"]},
            # A hub role of the instructor's own (JupyterHub's "user" scopes, nothing more).
            {"name": "instructor", "scopes": ["self"], "users": [ROLE_INSTRUCTOR]},
        ]  # fmt: skip
        users = {
            "students": {"users": list(self.students)},
            "instructors": {"users": list(INSTRUCTORS)},
            "broker-admins": {"users": [BROKER_ADMIN]},
        }
        return "\n".join(
            [
                f"c.JupyterHub.ip = '127.0.0.1'\nc.JupyterHub.port = {self.port}",
                f"c.JupyterHub.hub_ip = '127.0.0.1'\nc.JupyterHub.hub_port = {self.hub_port}",
                f"c.ConfigurableHTTPProxy.command = [{chp_path()!r}]",
                f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{self.api_port}'",
                f"c.JupyterHub.db_url = 'sqlite:///{self.dir}/hub.sqlite'",
                f"c.JupyterHub.cookie_secret_file = '{self.dir}/cookie_secret'",
                f"c.JupyterHub.pid_file = '{self.dir}/hub.pid'",
                "c.JupyterHub.authenticator_class = 'dummy'",
                "c.Authenticator.allow_all = True",
                "c.Authenticator.admin_users = set()",
                "c.JupyterHub.spawner_class = 'simple'",
                f"c.SimpleLocalProcessSpawner.home_dir_template = '{self.dir}/home/{{username}}'",
                f"c.Spawner.cmd = [{str(VENV_BIN / 'jupyterhub-singleuser')!r}]",
                f"c.Spawner.args = {args!r}",
                # The course's config on the config path (first: it wins over the user's),
                # so each server keeps its own ~/.jupyter: lab settings and workspaces.
                f"c.Spawner.environment = {{'JUPYTER_CONFIG_PATH': {str(singleuser)!r}}}",
                "c.Spawner.start_timeout = 60\nc.Spawner.http_timeout = 60",
                "c.JupyterHub.cleanup_servers = True\nc.JupyterHub.cleanup_proxy = True",
                f"c.JupyterHub.services = {services!r}",
                f"c.JupyterHub.load_roles = {roles!r}",
                f"c.JupyterHub.load_groups = {users!r}",
            ]
        )

    # -- use -------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        token: str,
        body: Any = None,
        timeout: float = 30,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        if data is None and method in ("POST", "PATCH"):
            data = b""
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Authorization", f"token {token}")
        req.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            req.add_header(name, value)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def hub_api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return self.request(method, self.api + path, self.admin_token, body)

    def login(self, user: str) -> str:
        """A token of the user's own (what their browser session holds after hub login)."""
        if user not in self.tokens:
            status, reply = self.hub_api("POST", f"/users/{user}/tokens", {"note": "test login"})
            assert status == 201, reply
            self.tokens[user] = reply["token"]
        return self.tokens[user]

    def spawn(self, *users: str, timeout: float = 90) -> None:
        """Start the users' servers together (each takes seconds), wait until all are ready."""
        for user in users:
            status, reply = self.hub_api("POST", f"/users/{user}/server")
            assert status in (201, 202, 400), reply  # 400: already running
        deadline = time.monotonic() + timeout
        waiting = set(users)
        while waiting and time.monotonic() < deadline:
            for user in list(waiting):
                _, model = self.hub_api("GET", f"/users/{user}")
                server = (model.get("servers") or {}).get("", {})
                if server.get("ready"):
                    waiting.discard(user)
            time.sleep(0.3)
        if waiting:
            raise RuntimeError(
                f"servers of {sorted(waiting)} did not start:\n{self.log('hub')[-3000:]}"
            )

    def user_url(self, user: str, path: str) -> str:
        return f"{self.url}/user/{user}{path}"

    def log(self, name: str) -> str:
        path = self.dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start_broker2(self) -> None:
        self.broker2 = self.start_broker("broker2", self.broker2_port)

    def start_broker(self, name: str, port: int, **config: Any) -> subprocess.Popen[bytes]:
        """Another broker process (service ``aiide-broker-2``), config overrides applied."""
        env = {
            **{k: v for k, v in os.environ.items() if "API_KEY" not in k},
            "JUPYTERHUB_API_URL": self.api,
            "JUPYTERHUB_API_TOKEN": self.broker2_token,
            "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}",
            "JUPYTERHUB_SERVICE_PREFIX": "/services/aiide-broker/",
        }
        cfg = self.dir / f"{name}_config.json"
        cfg.write_text(json.dumps({"BrokerApp": {**self.broker_config(), **config}}))
        proc: subprocess.Popen[bytes] = self._spawn(
            name, [sys.executable, "-m", "aiide_server_ext.hub", "--config", str(cfg)], env, ROOT
        )
        _wait_http(
            f"http://127.0.0.1:{port}/services/aiide-broker/api/me", 30, proc, f"broker {name}"
        )
        return proc

    def stop_process(self, proc: subprocess.Popen[bytes], wait: float = 10) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(wait)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.procs.remove(proc)

    # -- outages -------------------------------------------------------------------------

    def hub_pid(self) -> int:
        return int((self.dir / "hub.pid").read_text())

    def broker_pid(self) -> int:
        """The hub-managed broker: the hub's child running ``aiide_server_ext.hub``."""
        found = child_pid(self.hub_pid(), b"aiide_server_ext.hub")
        if found is None:
            raise RuntimeError("the hub-managed broker is not running")
        return found

    @contextlib.contextmanager
    def frozen(self, pid: int) -> Iterator[None]:
        """The process stops answering (SIGSTOP: the worst outage, a hang) until the end."""
        os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(pid, signal.SIGCONT)

    @contextlib.contextmanager
    def redis_down(self) -> Iterator[None]:
        """Redis stops; it comes back empty on the same port."""
        self.redis.stop()
        try:
            yield
        finally:
            self.redis.__enter__()

    # -- stop ------------------------------------------------------------------------------

    def stop(self) -> None:
        """The hub first (it stops the servers it spawned and its managed broker), then ours;
        then whatever of theirs outlived them (a hub killed after its timeout leaves its
        proxy, broker and single-user servers behind, re-parented, still running)."""
        family = {pid: t for proc in self.procs for pid, t in descendants(proc.pid).items()}
        for proc in list(self.procs):
            self.stop_process(proc, wait=20)
        end_all(family)
        self.redis.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
