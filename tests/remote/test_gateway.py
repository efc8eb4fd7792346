"""Remote kernels: a Jupyter server with ``--gateway-url`` runs cells in aiide-sandboxed
kernels on a real Enterprise Gateway (its own venv, loopback), through the server's
kernels API and WebSocket as JupyterLab would."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from sandbox_support import kernel_run_dirs
from servers import free_port

from .harness import GATEWAY_SECRET, SERVER_SECRET, Gateway, KernelSocket, Server

pytestmark = [pytest.mark.bwrap, pytest.mark.xdist_group("remote")]

PROBE = """
import json, os, socket, sys
out = {"uid": os.getuid(), "cwd": os.getcwd(), "sandbox": os.environ.get("AIIDE_SANDBOX"),
       "secrets": sorted(k for k, v in os.environ.items()
                         if v.startswith(("eg-secret-", "sk-ant-server-"))),
       "wrote": []}
s = socket.socket(); s.settimeout(3)
try:
    s.connect(("127.0.0.1", GATEWAY_PORT)); out["loopback"] = "reached"
except OSError as e:
    out["loopback"] = type(e).__name__
try:
    socket.create_connection(("192.0.2.1", 80), timeout=3); out["outside"] = "reached"
except OSError as e:
    out["outside"] = e.strerror
for path in ("/probe", "/usr/probe", os.path.join(sys.prefix, "probe")):
    try:
        open(path, "w").close(); out["wrote"].append(path)
    except OSError:
        pass
with open("made-in-sandbox.txt", "w") as f:
    f.write("hello")
print(json.dumps(out))
"""


@pytest.fixture
def kernel(server: Server) -> Iterator[tuple[str, KernelSocket]]:
    kernel_id = server.start_kernel()
    sock = server.connect(kernel_id)
    try:
        yield kernel_id, sock
    finally:
        sock.close()
        server.request("DELETE", f"/api/kernels/{kernel_id}")


def launcher_of(kernel_id: str) -> psutil.Process:
    """The gateway's kernel process for ``kernel_id``: the aiide launcher."""
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "aiide_kernel.launch" in cmdline and any(kernel_id in part for part in cmdline):
            return proc
    raise AssertionError(f"no launcher process for kernel {kernel_id}")


def test_a_cell_runs_in_the_sandbox_on_the_gateway(
    gateway: Gateway, server: Server, kernel: tuple[str, KernelSocket]
) -> None:
    kernel_id, sock = kernel
    result = sock.execute(PROBE.replace("GATEWAY_PORT", str(gateway.port)))
    assert result.status == "ok", result.error
    seen = json.loads(result.stdout)
    assert seen["sandbox"] == "bwrap"
    assert seen["uid"] != 0
    assert seen["secrets"] == []  # neither the gateway's nor the server's environment
    assert seen["loopback"] == "ConnectionRefusedError"  # the gateway listens there
    assert seen["outside"] == "Network is unreachable"
    assert seen["wrote"] == []
    # The server's root does not exist on the gateway host: the launcher's root is used.
    assert seen["cwd"] == os.path.realpath(gateway.workspace_root)
    made = gateway.workspace_root / "made-in-sandbox.txt"
    assert made.read_text() == "hello"
    if os.geteuid() == 0:
        assert made.stat().st_uid == seen["uid"]
    assert kernel_id in {k["id"] for k in gateway.api("/api/kernels")}
    # Both secrets did reach the launcher, which kept them out of the sandbox.
    launcher_env = launcher_of(kernel_id).environ()
    assert launcher_env["KERNEL_AIIDE_TEST_TOKEN"] == SERVER_SECRET
    assert launcher_env["AIIDE_TEST_GATEWAY_SECRET"] == GATEWAY_SECRET


def test_input_reaches_the_kernel_through_the_relay(kernel: tuple[str, KernelSocket]) -> None:
    _, sock = kernel
    result = sock.execute("name = input('who? ')\nprint('hello', name)", stdin_answer="ada")
    assert result.status == "ok", result.error
    assert result.prompts == ["who? "]
    assert result.stdout == "hello ada\n"


def test_interrupt_stops_a_running_cell_and_the_kernel_lives_on(
    server: Server, kernel: tuple[str, KernelSocket]
) -> None:
    kernel_id, sock = kernel
    msg_id = sock.send(
        "execute_request",
        {
            "code": "import time\nprint('sleeping', flush=True)\ntime.sleep(120)",
            "silent": False,
            "stop_on_error": False,  # else the next request may be aborted with it
        },
    )
    while True:  # the cell is running once its first output arrives
        msg = sock.receive()
        if msg["msg_type"] == "stream" and msg["parent_header"].get("msg_id") == msg_id:
            break
    status, body = server.request("POST", f"/api/kernels/{kernel_id}/interrupt")
    assert status == 204, body
    while True:
        msg = sock.receive()
        if msg["msg_type"] == "execute_reply" and msg["parent_header"].get("msg_id") == msg_id:
            break
    assert msg["content"]["ename"] == "KeyboardInterrupt"
    assert sock.execute("print(6 * 7)").stdout == "42\n"


def test_a_kernel_that_dies_mid_run_is_reported_and_restarted(
    gateway: Gateway, kernel: tuple[str, KernelSocket]
) -> None:
    kernel_id, sock = kernel
    first = launcher_of(kernel_id).pid
    assert sock.execute("x = 1").status == "ok"
    sock.states.clear()
    sock.send("execute_request", {"code": "import os\nos.kill(os.getpid(), 9)", "silent": False})
    assert sock.wait_for_state({"restarting", "dead"}) == "restarting"
    # The gateway's log says why (the launcher's stderr).
    deadline = time.monotonic() + 30
    while "killed by SIGKILL" not in gateway.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "The kernel was killed by SIGKILL" in gateway.log.read_text()
    # The gateway restarted it in a new sandbox: state is gone, the kernel works.
    sock.nudge()
    result = sock.execute("print('x' in globals())")
    assert result.stdout == "False\n", (result, sock.states)
    assert launcher_of(kernel_id).pid != first


def test_shutting_a_kernel_down_removes_its_sandbox(gateway: Gateway, server: Server) -> None:
    kernel_id = server.start_kernel()
    sock = server.connect(kernel_id)
    try:
        assert sock.execute("print(1 + 1)").stdout == "2\n"
    finally:
        sock.close()
    launcher = launcher_of(kernel_id)
    sandbox = launcher.children(recursive=True)
    assert sandbox, "the sandbox runs under the launcher"
    run_dirs = kernel_run_dirs(gateway.run_root)
    assert run_dirs
    status, body = server.request("DELETE", f"/api/kernels/{kernel_id}")
    assert status == 204, body
    gone, alive = psutil.wait_procs([launcher, *sandbox], timeout=30)
    assert alive == []
    assert launcher.pid in {p.pid for p in gone}
    assert not any(p.exists() for p in run_dirs)


def test_server_in_gateway_mode_starts_no_local_kernels(server: Server) -> None:
    # prewarm_delay=0: the warm pool's start ran (or was skipped) as the server came up.
    time.sleep(1)
    log = server.log.read_text()
    assert "not pre-starting kernels" not in log
    assert "never awaited" not in log
    assert server.proc is not None
    assert psutil.Process(server.proc.pid).children(recursive=True) == []


def test_gateway_down_gives_a_clear_error(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    srv = Server(home=tmp_path, gateway_url=dead)
    srv.start()
    try:
        status, body = srv.request("POST", "/api/kernels", {"name": "aiide-python"})
    finally:
        srv.stop()
    assert status == 503
    message = body["message"] if isinstance(body, dict) else str(body)
    assert "Gateway" in message
    assert "Check to be sure the Gateway instance is running" in message
