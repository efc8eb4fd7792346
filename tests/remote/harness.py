"""A real Jupyter Enterprise Gateway on loopback (its own venv, from tools/install_eg.sh),
with the aiide sandboxed kernelspec, and a real Jupyter server from .venv pointed at it
with ``--gateway-url``. Every process stops at exit; each writes its log to a file."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websocket
from servers import free_port

from aiide_kernel.launch.kernelspec import gateway_kernelspec, install

ROOT = Path(__file__).parents[2]
VENV_BIN = Path(sys.executable).parent
#: A secret in the gateway's environment: no kernel may see it.
GATEWAY_SECRET = "eg-secret-" + os.urandom(8).hex()
#: A secret in the Jupyter server's environment: no kernel may see it either.
SERVER_SECRET = "sk-ant-server-" + os.urandom(8).hex()


def install_gateway() -> Path:
    """The cached EG venv (installed on first use, a check afterwards)."""
    out = subprocess.run(
        ["bash", str(ROOT / "tools" / "install_eg.sh"), str(VENV_BIN)],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"tools/install_eg.sh failed:\n{out.stderr[-3000:]}")
    return Path(out.stdout.strip().splitlines()[-1])


def wait_http(url: str, headers: dict[str, str], proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers (a server whose gateway is down answers 503)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after 60 s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class Gateway:
    """Enterprise Gateway with the ``aiide-python`` kernelspec in a private JUPYTER_PATH."""

    venv: Path
    home: Path
    token: str = field(default_factory=lambda: os.urandom(12).hex())
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.home / "gateway.log"

    @property
    def workspace_root(self) -> Path:
        return self.home / "workspaces"

    #: Outside pytest's 0700 tmp: under root the sandbox uid must reach the run directory.
    run_root: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="aiide-eg-run-", dir="/tmp"))
    )

    def start(self) -> Gateway:
        data = self.home / "data"
        for d in (data / "kernels", self.workspace_root, self.home / "rt"):
            d.mkdir(parents=True, exist_ok=True)
        self.workspace_root.chmod(0o755)
        self.run_root.chmod(0o711)
        spec = gateway_kernelspec(
            sys.executable,
            "bwrap",
            [
                f"--workspace-root={self.workspace_root}",
                f"--SandboxLauncher.run_root={self.run_root}",
                "--memory=512M",
                "--SandboxPolicy.tmp_size=64M",
            ],
        )
        install(str(data / "kernels"), spec)
        env = {
            **os.environ,
            "JUPYTER_PATH": str(data),
            "JUPYTER_CONFIG_DIR": str(self.home / "config"),
            "JUPYTER_RUNTIME_DIR": str(self.home / "rt"),
            "AIIDE_TEST_GATEWAY_SECRET": GATEWAY_SECRET,
        }
        # As root, EG refuses root's kernels unless unauthorized_users leaves root out.
        cmd = [
            str(self.venv / "bin" / "jupyter-enterprisegateway"),
            "--ip=127.0.0.1",
            f"--port={self.port}",
            f"--EnterpriseGatewayApp.auth_token={self.token}",
            "--EnterpriseGatewayApp.unauthorized_users={'nobody'}",
            "--EnterpriseGatewayApp.list_kernels=True",
            "--EnterpriseGatewayApp.default_kernel_name=aiide-python",
            "--KernelSpecManager.whitelist={'aiide-python'}",
            # EG hands these of its own variables to kernel processes: the launcher gets
            # the secret, the sandbox must not.
            "--EnterpriseGatewayApp.env_process_whitelist=['AIIDE_TEST_GATEWAY_SECRET']",
        ]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=self.workspace_root, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        wait_http(
            f"{self.url}/api/kernelspecs",
            {"Authorization": f"token {self.token}"},
            self.proc,
            self.log,
        )
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
        shutil.rmtree(self.run_root, ignore_errors=True)

    def api(self, path: str) -> Any:
        req = urllib.request.Request(
            f"{self.url}{path}", headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())


@dataclass
class Server:
    """A Jupyter server from .venv (aiide extension included) whose kernels live on a gateway."""

    home: Path
    gateway_url: str
    gateway_token: str = ""
    token: str = field(default_factory=lambda: os.urandom(12).hex())
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.home / "server.log"

    def start(self) -> Server:
        root = self.home / "root"
        root.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(self.home / "config"),
            "JUPYTER_RUNTIME_DIR": str(self.home / "rt"),
            "ANTHROPIC_API_KEY": SERVER_SECRET,
            # jupyter_server forwards KERNEL_* variables to the gateway with each start.
            "KERNEL_AIIDE_TEST_TOKEN": SERVER_SECRET,
        }
        cmd = [
            str(VENV_BIN / "jupyter"),
            "server",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            f"--ServerApp.token={self.token}",
            f"--ServerApp.root_dir={root}",
            f"--gateway-url={self.gateway_url}",
            f"--GatewayClient.auth_token={self.gateway_token}",
            "--GatewayClient.request_timeout=60",
            "--AiideExtension.prewarm_delay=0",
        ]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_http(f"{self.url}/api/status", self.headers, self.proc, self.log)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.url}{path}",
            data=data,
            method=method,
            headers={**self.headers, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=90) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw.decode(errors="replace")

    def start_kernel(self) -> str:
        status, body = self.request("POST", "/api/kernels", {"name": "aiide-python"})
        assert status == 201, body
        return str(body["id"])

    def connect(self, kernel_id: str) -> KernelSocket:
        ws = websocket.create_connection(
            f"ws://127.0.0.1:{self.port}/api/kernels/{kernel_id}/channels",
            header=[f"Authorization: token {self.token}"],
            timeout=30,
        )
        return KernelSocket(ws)


@dataclass
class Execution:
    status: str = ""
    stdout: str = ""
    error: str = ""
    prompts: list[str] = field(default_factory=list)
    states: list[str] = field(default_factory=list)


class KernelSocket:
    """The Jupyter kernel protocol over the server's kernel WebSocket, as a browser speaks it."""

    def __init__(self, ws: websocket.WebSocket, timeout: float = 90) -> None:
        self.ws = ws
        self.timeout = timeout
        self.session = uuid.uuid4().hex
        #: Kernel status changes seen while reading (execution_state, in order).
        self.states: list[str] = []

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()

    def send(self, msg_type: str, content: dict[str, Any], channel: str = "shell") -> str:
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": msg_type,
            "username": "student",
            "session": self.session,
            "date": "",
            "version": "5.3",
        }
        msg = {
            "header": header,
            "parent_header": {},
            "metadata": {},
            "content": content,
            "channel": channel,
            "buffers": [],
        }
        self.ws.send(json.dumps(msg))
        return msg_id

    def receive(self, timeout: float | None = None) -> dict[str, Any]:
        """The next kernel message; TimeoutError after ``timeout`` seconds without one
        (the server's WebSocket pings would keep a plain socket timeout from firing)."""
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no kernel message within {limit} s")
            self.ws.settimeout(left)
            try:
                opcode, frame = self.ws.recv_data_frame(True)
            except websocket.WebSocketTimeoutException:
                continue
            if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                break
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                raise ConnectionError("the server closed the kernel WebSocket")
        msg: dict[str, Any] = json.loads(frame.data)
        if msg.get("msg_type") == "status":
            self.states.append(msg["content"]["execution_state"])
        return msg

    def execute(self, code: str, stdin_answer: str | None = None) -> Execution:
        msg_id = self.send(
            "execute_request",
            {
                "code": code,
                "silent": False,
                "store_history": False,
                "user_expressions": {},
                "allow_stdin": stdin_answer is not None,
                "stop_on_error": True,
            },
        )
        result = Execution()
        idle = False  # iopub and shell are separate streams: wait for both ends
        while not (idle and result.status):
            msg = self.receive()
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "status" and content["execution_state"] == "idle":
                idle = True
            if kind == "stream" and content["name"] == "stdout":
                result.stdout += content["text"]
            elif kind == "error":
                result.error = f"{content['ename']}: {content['evalue']}"
            elif kind == "input_request":
                result.prompts.append(content["prompt"])
                self.send("input_reply", {"value": stdin_answer}, channel="stdin")
            elif kind == "execute_reply":
                result.status = content["status"]
        return result

    def nudge(self) -> None:
        """kernel_info until its iopub status arrives, as jupyter_server does on connect:
        after a restart the gateway's iopub subscription to the new kernel may lag."""
        for _ in range(30):
            msg_id = self.send("kernel_info_request", {})
            with contextlib.suppress(TimeoutError):
                while True:
                    msg = self.receive(timeout=1)
                    parent = msg["parent_header"].get("msg_id")
                    if msg["channel"] == "iopub" and parent == msg_id:
                        return
        raise TimeoutError("the kernel's iopub never answered")

    def wait_for_state(self, wanted: set[str]) -> str:
        """Read until a kernel status in ``wanted`` arrives (the socket's timeout bounds it)."""
        while True:
            for state in self.states:
                if state in wanted:
                    return state
            self.receive()
