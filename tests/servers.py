"""Real servers for tests and benchmarks: a redis-server and ``jupyter server`` processes.

Both bind 127.0.0.1 on a free port, run from a private temporary directory, and
stop (then are killed) when their ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from types import TracebackType
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Process:
    proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> _Process:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


class RedisServer(_Process):
    """``redis-server`` without persistence; ``url`` once started."""

    def __init__(self, binary: str = "redis-server") -> None:
        self.binary = shutil.which(binary) or binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def __enter__(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError("redis-server did not start")


class JupyterServer(_Process):
    """``jupyter server`` with aiide and the given config, in its own Jupyter dirs."""

    def __init__(
        self,
        config: dict[str, Any],
        env: dict[str, str] | None = None,
        files: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """``files``: more JSON config files for the config dir (name -> content)."""
        self.port = free_port()
        self.token = os.urandom(12).hex()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = config
        self.env = env or {}
        self.files = files or {}
        self._dir = tempfile.TemporaryDirectory(prefix="aiide-server-")
        self.log_path = os.path.join(self._dir.name, "server.log")

    def __enter__(self) -> JupyterServer:
        self.start()
        self.wait()
        return self

    def start(self) -> JupyterServer:
        """Launch without waiting (start several, then ``wait`` for each)."""
        home = self._dir.name
        for sub in ("config", "data", "runtime", "root"):
            os.makedirs(os.path.join(home, sub), exist_ok=True)
        config = _merge(
            {
                "ServerApp": {
                    "jpserver_extensions": {"aiide_server_ext": True},
                    "port": self.port,
                    "ip": "127.0.0.1",
                    "open_browser": False,
                    "allow_root": True,
                    "root_dir": os.path.join(home, "root"),
                    "port_retries": 0,
                },
                "IdentityProvider": {"token": self.token},
                "AiideExtension": {"prewarm_kernels": False},
                "KernelPool": {"size": 0},
            },
            self.config,
        )
        for name, content in {**self.files, "jupyter_server_config.json": config}.items():
            with open(os.path.join(home, "config", name), "w") as f:
                json.dump(content, f)
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": os.path.join(home, "config"),
            "JUPYTER_DATA_DIR": os.path.join(home, "data"),
            "JUPYTER_RUNTIME_DIR": os.path.join(home, "runtime"),
            "JUPYTER_PLATFORM_DIRS": "1",
            **self.env,
        }
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server"],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=home,
        )
        return self

    def wait(self, timeout: float = 60) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                url, auth = self.url + "/api/status", {"Authorization": f"token {self.token}"}
                request = urllib.request.Request(url, headers=auth)
                with urllib.request.urlopen(request, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"jupyter server did not start:\n{self.log()[-3000:]}")

    @property
    def data_dir(self) -> str:
        return os.path.join(self._dir.name, "data")

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self) -> None:
        super().stop()
        log = getattr(self, "_log", None)
        if log is not None:
            log.close()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        self._dir.cleanup()


@contextlib.contextmanager
def running(*servers: JupyterServer) -> Iterator[tuple[JupyterServer, ...]]:
    """Start several servers at once (each start takes seconds), stop them all after."""
    try:
        for server in servers:
            server.start()
        for server in servers:
            server.wait()
        yield servers
    finally:
        for server in servers:
            server.__exit__(None, None, None)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
