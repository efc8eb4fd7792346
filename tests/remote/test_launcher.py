"""The kernelspec launcher on its own: its pure pieces, then a real launcher process
with a TCP connection file, as any gateway would start it."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from jupyter_client import BlockingKernelClient
from jupyter_client.connect import write_connection_file
from sandbox_support import left_behind, require_backend, require_memory_limit

from aiide_kernel.launch.kernelspec import gateway_kernelspec, install
from aiide_kernel.launch.launcher import EXIT_LAUNCH_FAILED, choose_workspace, exit_status
from aiide_kernel.launch.reaper import BOOT_LABEL, PID_LABEL, boot_id, orphans
from aiide_kernel.launch.relay import (
    Endpoints,
    RelayError,
    kernel_side_info,
    read_connection_file,
)
from aiide_kernel.policy import SandboxConfigError, SandboxPolicy

TCP_INFO: dict[str, Any] = {
    "transport": "tcp",
    "ip": "127.0.0.1",
    "key": "k3y",
    "signature_scheme": "hmac-sha256",
    "shell_port": 5001,
    "iopub_port": 5002,
    "stdin_port": 5003,
    "control_port": 5004,
    "hb_port": 5005,
}

# -- pure pieces ---------------------------------------------------------------------


def test_endpoints_name_every_channel() -> None:
    outside = Endpoints.from_info(TCP_INFO)
    assert outside.url("shell") == "tcp://127.0.0.1:5001"
    assert outside.url("hb") == "tcp://127.0.0.1:5005"
    assert Endpoints("tcp", "::1", outside.ports).url("iopub") == "tcp://[::1]:5002"
    inside = Endpoints.from_info(kernel_side_info(TCP_INFO, "/run/x/k"))
    assert inside.url("control") == "ipc:///run/x/k-4"


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"hb_port": 0}, "no usable hb_port"),
        ({"stdin_port": None}, "no usable stdin_port"),
        ({"iopub_port": 5001}, "same port to two channels"),
        ({"transport": "udp"}, "neither tcp nor ipc"),
    ],
)
def test_connection_files_a_relay_cannot_serve_are_refused(
    change: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(RelayError, match=complaint):
        Endpoints.from_info({**TCP_INFO, **change})


def test_a_connection_file_without_a_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({**TCP_INFO, "key": ""}))
    with pytest.raises(RelayError, match="no HMAC key"):
        read_connection_file(str(path))
    with pytest.raises(RelayError, match="does not exist"):
        read_connection_file(str(tmp_path / "missing.json"))


def test_the_kernel_side_keeps_the_key_and_uses_private_ipc_sockets() -> None:
    inner = kernel_side_info(TCP_INFO, "/run/x/k")
    assert inner["transport"] == "ipc"
    assert inner["key"] == "k3y"
    assert inner["signature_scheme"] == "hmac-sha256"
    assert len({inner[f"{c}_port"] for c in ("shell", "iopub", "stdin", "control", "hb")}) == 5


def test_exit_status_of_a_signalled_kernel() -> None:
    assert exit_status(0) == 0
    assert exit_status(-9) == 137
    assert exit_status(1) == 1


def test_workspace_hint_from_a_gateway_client_stays_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "course").mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    policy = SandboxPolicy(workspace_root=str(root))
    inside = str(root / "course")
    assert choose_workspace(policy, "", {"KERNEL_WORKING_DIR": inside}) == inside
    # A client-chosen path outside the root, or one missing on this host: the root.
    assert choose_workspace(policy, "", {"KERNEL_WORKING_DIR": str(outside)}) == str(root)
    assert choose_workspace(policy, "", {"KERNEL_WORKING_DIR": "/no/such"}) == str(root)
    assert choose_workspace(policy, "", {}) == str(root)
    # The host's own --workspace setting must be right: no silent fallback.
    with pytest.raises(SandboxConfigError, match="outside"):
        choose_workspace(policy, str(outside), {})


def test_the_gateway_kernelspec_runs_the_launcher(tmp_path: Path) -> None:
    spec = gateway_kernelspec("/opt/py/bin/python", "docker", ["--memory=1G"])
    assert spec["argv"] == [
        "/opt/py/bin/python",
        "-m",
        "aiide_kernel.launch",
        "--backend=docker",
        "--memory=1G",
        "-f",
        "{connection_file}",
    ]
    assert spec["interrupt_mode"] == "message"
    assert "kernel_provisioner" not in spec["metadata"]
    dest = Path(install(str(tmp_path), spec))
    assert json.loads((dest / "kernel.json").read_text()) == spec
    assert dest.name == "aiide-python"


# -- a real launcher -------------------------------------------------------------------


@dataclass
class Launched:
    proc: subprocess.Popen[str]
    client: BlockingKernelClient
    workspace: Path
    run_root: Path

    def run(self, code: str) -> tuple[str, str]:
        out: list[str] = []

        def hook(msg: dict[str, Any]) -> None:
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])

        reply = self.client.execute_interactive(code, timeout=60, output_hook=hook)
        return reply["content"]["status"], "".join(out)


@pytest.fixture
def sandbox_dirs() -> Iterator[tuple[Path, Path]]:
    # Under /tmp, not pytest's 0700 tmp: under root the sandbox uid must reach both.
    base = Path(tempfile.mkdtemp(prefix="aiide-launch-test-", dir="/tmp"))
    base.chmod(0o755)
    workspace, run_root = base / "ws", base / "run"
    workspace.mkdir(mode=0o755)
    run_root.mkdir(mode=0o711)
    try:
        yield workspace, run_root
    finally:
        shutil.rmtree(base, ignore_errors=True)


def start_launcher(
    workspace: Path, run_root: Path, *extra: str, backend: str = "bwrap", ip: str = "127.0.0.1"
) -> subprocess.Popen[str]:
    conn = str(run_root.parent / "connection.json")
    write_connection_file(conn, ip=ip, key=os.urandom(16).hex().encode())
    env = {**os.environ, "AIIDE_TEST_LAUNCHER_SECRET": "launcher-secret-123"}
    cmd = [
        sys.executable,
        "-m",
        "aiide_kernel.launch",
        f"--backend={backend}",
        f"--workspace-root={workspace}",
        f"--SandboxLauncher.run_root={run_root}",
        "--memory=512M",
        *extra,
        "-f",
        conn,
    ]
    return subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)


def wait_for_kernel(client: BlockingKernelClient) -> None:
    """Nudge with kernel_info until the kernel answers on shell *and* iopub, as
    jupyter_server does: a shell reply alone does not mean iopub is subscribed yet."""
    for _ in range(60):
        client.kernel_info()
        try:
            client.get_iopub_msg(timeout=1)
        except queue.Empty:
            continue
        for get in (client.get_shell_msg, client.get_iopub_msg):  # drain the nudges
            with contextlib.suppress(queue.Empty):
                while True:
                    get(timeout=0.5)
        return
    raise TimeoutError("the launched kernel never answered on iopub")


@pytest.fixture
def launched(backend: str, sandbox_dirs: tuple[Path, Path]) -> Iterator[Launched]:
    """A launcher on a fresh connection file, for each backend (tests/conftest.py)."""
    require_backend(backend)
    workspace, run_root = sandbox_dirs
    proc = start_launcher(workspace, run_root, backend=backend)
    client = BlockingKernelClient()
    client.load_connection_file(str(run_root.parent / "connection.json"))
    client.start_channels()
    try:
        wait_for_kernel(client)
        yield Launched(proc, client, workspace, run_root)
    finally:
        client.stop_channels()
        if proc.poll() is None:
            proc.terminate()  # not kill: a docker sandbox would outlive a killed launcher
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        assert proc.stderr is not None
        proc.stderr.close()


def test_the_launcher_runs_the_kernel_sandboxed(launched: Launched) -> None:
    status, out = launched.run(
        "import os\nprint(os.getuid(), os.getcwd(), os.environ.get('AIIDE_TEST_LAUNCHER_SECRET'))"
    )
    assert status == "ok"
    uid, cwd, secret = out.split()
    assert cwd == str(launched.workspace)
    assert secret == "None"
    if os.geteuid() == 0:
        assert uid != "0"


def test_sigint_to_the_launcher_interrupts_the_cell(launched: Launched) -> None:
    msg_id = launched.client.execute(
        "import time\nprint('go', flush=True)\ntime.sleep(120)", stop_on_error=False
    )
    while True:
        msg = launched.client.get_iopub_msg(timeout=30)
        if msg["msg_type"] == "stream" and msg["parent_header"].get("msg_id") == msg_id:
            break
    launched.proc.send_signal(signal.SIGINT)
    reply = launched.client.get_shell_msg(timeout=30)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = launched.client.get_shell_msg(timeout=30)
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert launched.run("print(3 * 3)") == ("ok", "9\n")


def running_sandboxes(launched: Launched, backend: str) -> list[Any]:
    """The processes (bwrap) or containers (docker) of this launcher's sandbox."""
    if backend == "bwrap":
        return [p for p in psutil.Process(launched.proc.pid).children(recursive=True)]
    import docker

    return list(docker.from_env().containers.list(filters={"label": "aiide.launcher=1"}))


def test_sigterm_stops_the_sandbox_and_cleans_up(launched: Launched, backend: str) -> None:
    sandbox = running_sandboxes(launched, backend)
    assert sandbox
    assert any(launched.run_root.iterdir())
    launched.proc.send_signal(signal.SIGTERM)
    assert launched.proc.wait(30) == 0
    if backend == "bwrap":
        _, alive = psutil.wait_procs(sandbox, timeout=10)
        assert alive == []
    else:
        left = {c.id for c in running_sandboxes(launched, backend)}
        assert not left & {c.id for c in sandbox}
    assert left_behind(launched.run_root) == []


@pytest.mark.bwrap
@pytest.mark.parametrize("backend", ["bwrap"])  # --die-with-parent; a container outlives it
def test_the_sandbox_dies_with_a_killed_launcher(launched: Launched) -> None:
    sandbox = psutil.Process(launched.proc.pid).children(recursive=True)
    assert sandbox
    launched.proc.kill()
    launched.proc.wait(10)
    _, alive = psutil.wait_procs(sandbox, timeout=10)
    assert alive == []


def test_a_dead_kernel_ends_the_launcher_with_the_reason(launched: Launched) -> None:
    launched.client.execute("import os\nos.kill(os.getpid(), 9)")
    assert launched.proc.wait(30) == 137
    assert launched.proc.stderr is not None
    assert "The kernel was killed by SIGKILL" in launched.proc.stderr.read()
    assert left_behind(launched.run_root) == []


def test_a_kernel_over_its_memory_limit_ends_the_launcher_saying_so(
    launched: Launched, backend: str
) -> None:
    require_memory_limit(backend)
    launched.client.execute("chunks = []\nwhile True: chunks.append(b'x' * (64 * 1024 * 1024))")
    code = launched.proc.wait(120)
    assert launched.proc.stderr is not None
    err = launched.proc.stderr.read()
    assert code != 0
    assert "exceeded its 512 MiB memory limit" in err


@pytest.mark.bwrap
def test_a_port_in_use_fails_the_launch_naming_it(sandbox_dirs: tuple[Path, Path]) -> None:
    require_backend("bwrap")
    workspace, run_root = sandbox_dirs
    proc = start_launcher(workspace, run_root)
    proc.kill()
    proc.wait()
    assert proc.stderr is not None
    proc.stderr.close()
    info = json.loads((run_root.parent / "connection.json").read_text())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", info["shell_port"]))
        taken.listen()
        conn = str(run_root.parent / "connection.json")
        out = subprocess.run(
            [sys.executable, "-m", "aiide_kernel.launch", f"--workspace-root={workspace}",
             f"--SandboxLauncher.run_root={run_root}", "-f", conn],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert out.returncode == EXIT_LAUNCH_FAILED
    assert f"cannot listen on tcp://127.0.0.1:{info['shell_port']}" in out.stderr
    assert left_behind(run_root) == []


def test_bad_settings_fail_the_launch_naming_the_setting(tmp_path: Path) -> None:
    conn = tmp_path / "c.json"
    conn.write_text(json.dumps(TCP_INFO))
    out = subprocess.run(
        [sys.executable, "-m", "aiide_kernel.launch", "--memory=lots", "-f", str(conn)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == EXIT_LAUNCH_FAILED
    assert "c.SandboxPolicy.memory_limit='lots' is not a size" in out.stderr


@pytest.mark.bwrap
def test_a_wildcard_connection_file_is_served_on_loopback_only(
    sandbox_dirs: tuple[Path, Path],
) -> None:
    """Enterprise Gateway writes ip 0.0.0.0 into every connection file."""
    require_backend("bwrap")
    workspace, run_root = sandbox_dirs
    proc = start_launcher(workspace, run_root, ip="0.0.0.0")
    try:
        info = json.loads((run_root.parent / "connection.json").read_text())
        ports = {info[f"{c}_port"] for c in ("shell", "iopub", "stdin", "control", "hb")}
        client = BlockingKernelClient()
        client.load_connection_file(str(run_root.parent / "connection.json"))
        client.start_channels()
        try:
            wait_for_kernel(client)  # reachable: 0.0.0.0 reaches loopback on Linux
        finally:
            client.stop_channels()
        listening = {
            (c.laddr.ip, c.laddr.port)
            for c in psutil.Process(proc.pid).net_connections("tcp")
            if c.status == psutil.CONN_LISTEN
        }
        assert {port for _, port in listening} == ports
        assert {ip for ip, _ in listening} == {"127.0.0.1"}
    finally:
        proc.terminate()
        proc.wait(30)
        assert proc.stderr is not None
        proc.stderr.close()


@dataclass
class _Labelled:
    labels: dict[str, str]


def test_orphans_are_containers_whose_launcher_is_gone() -> None:
    boot = boot_id()
    stand_in = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "aiide_kernel.launch"]
    )
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        alive = _Labelled({PID_LABEL: str(stand_in.pid), BOOT_LABEL: boot})
        gone = _Labelled({PID_LABEL: str(dead.pid), BOOT_LABEL: boot})
        not_a_launcher = _Labelled({PID_LABEL: str(os.getpid()), BOOT_LABEL: boot})
        other_boot = _Labelled({PID_LABEL: str(dead.pid), BOOT_LABEL: "another-boot"})
        garbled = _Labelled({PID_LABEL: "x", BOOT_LABEL: boot})
        found = orphans([alive, gone, not_a_launcher, other_boot, garbled], boot)
        assert found == [gone, not_a_launcher]
    finally:
        stand_in.kill()
        stand_in.wait()


@pytest.mark.docker
@pytest.mark.parametrize("backend", ["docker"])
def test_a_killed_launchers_container_is_removed_by_the_next_launch(
    launched: Launched, backend: str, sandbox_dirs: tuple[Path, Path]
) -> None:
    import docker

    client = docker.from_env()
    mine = {PID_LABEL: str(launched.proc.pid)}
    (container,) = [
        c for c in client.containers.list() if c.labels.get(PID_LABEL) == mine[PID_LABEL]
    ]
    launched.proc.kill()
    launched.proc.wait(10)
    container.reload()
    assert container.status == "running"  # the daemon's, not the launcher's child
    workspace, run_root = sandbox_dirs
    # A second launcher (start_launcher writes it a fresh connection file).
    again = start_launcher(workspace, run_root, backend="docker")
    try:
        client_ = BlockingKernelClient()
        client_.load_connection_file(str(run_root.parent / "connection.json"))
        client_.start_channels()
        try:
            wait_for_kernel(client_)
        finally:
            client_.stop_channels()
        with pytest.raises(docker.errors.NotFound):
            container.reload()
    finally:
        again.terminate()
        again.wait(30)
        assert again.stderr is not None
        assert "left by a killed launcher" in again.stderr.read()
        again.stderr.close()
