"""Escape battery: each test makes one real attempt to hurt or read the host from a
sandboxed kernel, against each backend, and asserts that the attempt FAILS and that
the host is still healthy afterwards."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import stat
import subprocess
import textwrap
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from jupyter_client import AsyncKernelManager
from kernelrun import run_code
from sandbox_support import require_memory_limit

pytestmark = [pytest.mark.asyncio, pytest.mark.xdist_group("sandbox")]


@pytest.fixture
def host_secret_file() -> Iterator[str]:
    """A secret in the home of the user running the server."""
    path = os.path.join(os.path.expanduser("~"), f".aiide-escape-{os.urandom(4).hex()}")
    with open(path, "w") as f:
        f.write("host-secret-content")
    os.chmod(path, 0o644)  # readable by anyone on the host: only the sandbox stops it
    yield path
    os.unlink(path)


@pytest.fixture(autouse=True)
def host_stays_healthy() -> Iterator[None]:
    yield
    # After every attempt the host can still start processes and has memory left.
    assert subprocess.run(["true"], timeout=10).returncode == 0
    with open("/proc/meminfo") as f:
        avail = next(int(line.split()[1]) for line in f if line.startswith("MemAvailable"))
    assert avail > 1024 * 1024  # > 1 GiB free


async def py(km: AsyncKernelManager, code: str, timeout: float = 60) -> str:
    r = await run_code(km, textwrap.dedent(code), timeout=timeout)
    assert r.status == "ok", r
    return r.stdout.strip()


async def test_cannot_read_files_in_the_server_users_home(
    sandboxed_km: AsyncKernelManager, host_secret_file: str
) -> None:
    out = await py(
        sandboxed_km,
        f"""
        try:
            print(open({host_secret_file!r}).read())
        except OSError as e:
            print('blocked', type(e).__name__)
        """,
    )
    assert out.startswith("blocked"), out


@pytest.fixture
def host_etc_marker() -> Iterator[str | None]:
    """A world-readable file in the host's /etc (needs root to place)."""
    if os.geteuid() != 0:
        yield None
        return
    path = f"/etc/aiide-escape-{os.urandom(4).hex()}"
    with open(path, "w") as f:
        f.write("host-etc")
    os.chmod(path, 0o644)
    yield path
    os.unlink(path)


async def test_cannot_read_etc_shadow_or_host_etc(
    sandboxed_km: AsyncKernelManager, host_etc_marker: str | None
) -> None:
    probes = ["/etc/shadow", "/etc/gshadow", "/etc/sudoers"]
    if host_etc_marker:
        probes.append(host_etc_marker)
    out = await py(
        sandboxed_km,
        f"""
        for p in {probes!r}:
            try:
                open(p).read(); print('READ', p)
            except OSError:
                pass
        print('done')
        """,
    )
    assert out == "done", out


async def test_cannot_read_a_sibling_of_the_workspace(
    sandboxed_km: AsyncKernelManager, workspace: str
) -> None:
    sibling = os.path.join(os.path.dirname(workspace), f"other-{os.urandom(3).hex()}")
    os.mkdir(sibling)
    with open(os.path.join(sibling, "data.txt"), "w") as f:
        f.write("other project")
    out = await py(
        sandboxed_km,
        f"""
        import os
        print(os.path.exists({sibling!r}), os.path.exists({sibling + "/data.txt"!r}))
        """,
    )
    assert out == "False False"


async def test_server_environment_secrets_do_not_leak(
    sandbox_config: object, workspace: str, server_secret: str
) -> None:
    km = AsyncKernelManager(kernel_name="aiide-python", config=sandbox_config)
    await km.start_kernel(cwd=workspace)
    try:
        out = await py(
            km,
            f"""
            import os, glob
            found = [k for k, v in os.environ.items() if {server_secret!r} in v]
            for f in glob.glob('/proc/*/environ'):
                try:
                    if {server_secret!r}.encode() in open(f, 'rb').read():
                        found.append(f)
                except OSError:
                    pass
            print(found, 'ANTHROPIC_API_KEY' in os.environ)
            """,
        )
    finally:
        await km.shutdown_kernel(now=True)
    assert out == "[] False"


@pytest_asyncio.fixture
async def host_listener() -> AsyncIterator[int]:
    """A TCP server on the host's loopback the kernel must not reach."""
    connections = 0

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield port
    server.close()
    assert connections == 0


async def test_cannot_open_tcp_to_host_loopback(
    sandboxed_km: AsyncKernelManager, host_listener: int
) -> None:
    out = await py(
        sandboxed_km,
        f"""
        import socket
        s = socket.socket()
        s.settimeout(3)
        try:
            s.connect(('127.0.0.1', {host_listener})); print('CONNECTED')
        except OSError as e:
            print('blocked', e.errno)
        """,
    )
    assert out.startswith("blocked"), out


async def test_no_route_out_of_the_sandbox(sandboxed_km: AsyncKernelManager) -> None:
    # Only a loopback interface and no routes: nothing outside can be reached
    # (checked without sending a packet anywhere).
    out = await py(
        sandboxed_km,
        """
        import socket
        print(sorted(n for _, n in socket.if_nameindex()))
        print(len(open('/proc/net/route').read().splitlines()) - 1)
        """,
    )
    names, routes = out.splitlines()
    assert names == "['lo']"
    assert routes == "0"


async def test_cannot_reach_host_abstract_unix_sockets(sandboxed_km: AsyncKernelManager) -> None:
    name = f"\0aiide-escape-{os.urandom(4).hex()}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(name)
    listener.listen(1)
    try:
        out = await py(
            sandboxed_km,
            f"""
            import socket
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect({name!r}); print('CONNECTED')
            except OSError as e:
                print('blocked', e.errno)
            """,
        )
    finally:
        listener.close()
    assert out.startswith("blocked"), out


async def test_cannot_reach_the_docker_socket(sandboxed_km: AsyncKernelManager) -> None:
    out = await py(
        sandboxed_km,
        """
        import socket
        for path in ['/var/run/docker.sock', '/run/docker.sock']:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path); print('CONNECTED', path)
            except OSError as e:
                print('blocked', e.errno)
        """,
    )
    assert "CONNECTED" not in out, out


async def test_cannot_see_host_processes(sandboxed_km: AsyncKernelManager) -> None:
    marker = f"aiide-host-process-{os.urandom(4).hex()}"
    host = subprocess.Popen(["python3", "-c", "import time; time.sleep(120)", marker])
    try:
        out = await py(
            sandboxed_km,
            f"""
            import os, signal
            cmds = []
            for pid in os.listdir('/proc'):
                if pid.isdigit():
                    try:
                        cmds.append(open(f'/proc/{{pid}}/cmdline', 'rb').read())
                    except OSError:
                        pass
            try:
                os.kill({host.pid}, signal.SIGKILL)
            except OSError:
                pass
            print(len(cmds), any({marker!r}.encode() in c for c in cmds))
            """,
        )
        assert host.poll() is None, "the kernel killed a host process"
    finally:
        host.kill()
        host.wait()
    count, sees_host = out.split()
    assert sees_host == "False"
    assert int(count) < 10, out


async def test_cannot_write_outside_the_workspace(
    sandboxed_km: AsyncKernelManager, workspace: str
) -> None:
    import sys

    targets = [
        "/usr/aiide-x",
        "/etc/aiide-x",
        "/aiide-x",
        f"{sys.prefix}/aiide-x",
        f"{sys.base_prefix}/aiide-x",
        "/proc/sys/kernel/hostname",
    ]
    out = await py(
        sandboxed_km,
        f"""
        wrote = []
        for p in {targets!r}:
            try:
                with open(p, 'w') as f:
                    f.write('x')
                wrote.append(p)
            except OSError:
                pass
        with open({workspace + "/ok.txt"!r}, 'w') as f:
            f.write('fine')
        print(wrote)
        """,
    )
    assert out == "[]"
    for p in targets[:5]:
        assert not os.path.exists(p)
    with open(os.path.join(workspace, "ok.txt")) as f:
        assert f.read() == "fine"


async def test_symlinks_in_the_workspace_do_not_lead_out(
    sandboxed_km: AsyncKernelManager, workspace: str, host_secret_file: str
) -> None:
    os.symlink("/etc", os.path.join(workspace, "etc-link"))
    os.symlink(host_secret_file, os.path.join(workspace, "secret-link"))
    os.symlink(os.path.dirname(workspace), os.path.join(workspace, "parent-link"))
    with open(os.path.join(os.path.dirname(workspace), f"sibling-{os.urandom(3).hex()}"), "w"):
        pass
    out = await py(
        sandboxed_km,
        """
        import os
        res = []
        for p in ['etc-link/shadow', 'secret-link']:
            try:
                res.append(open(p).read()[:20])
            except OSError:
                res.append('blocked')
        try:
            res.append(os.listdir('parent-link'))
        except OSError:
            res.append('blocked')
        print(res)
        """,
    )
    assert "host-secret-content" not in out
    # The parent shows nothing but the workspace itself: no sibling leaks in.
    allowed = ["blocked", [os.path.basename(workspace)]]
    *files, parent = eval(out)
    assert files == ["blocked", "blocked"], out
    assert parent in allowed, out


async def test_fork_bomb_hits_the_process_limit(sandboxed_km: AsyncKernelManager) -> None:
    out = await py(
        sandboxed_km,
        """
        import os, time
        pids, err = [], None
        try:
            for _ in range(5000):
                pid = os.fork()
                if pid == 0:
                    time.sleep(60)
                    os._exit(0)
                pids.append(pid)
        except OSError as e:
            err = e.errno
        for p in pids:
            os.kill(p, 9)
        for p in pids:
            os.waitpid(p, 0)
        print(len(pids), err)
        """,
        timeout=120,
    )
    count, err = out.split()
    assert err == "11"  # EAGAIN: the pids limit (64 in these tests) stopped it
    assert int(count) < 64
    r = await run_code(sandboxed_km, "print('still alive')")
    assert r.stdout.strip() == "still alive"


async def test_memory_bomb_kills_only_the_kernel_and_says_why(
    sandboxed_km: AsyncKernelManager, backend: str
) -> None:
    from aiide_kernel.events import KernelEvents

    require_memory_limit(backend)

    kc = sandboxed_km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=60)
        kc.execute("chunks = []\nwhile True: chunks.append(b'x' * (64 * 1024 * 1024))")
        for _ in range(600):
            if not await sandboxed_km.is_alive():
                break
            await asyncio.sleep(0.1)
        assert not await sandboxed_km.is_alive()
    finally:
        kc.stop_channels()
    events = KernelEvents.instance().for_kernel(sandboxed_km.kernel_id)
    assert events, "the death was not recorded"
    assert "exceeded its 512 MiB memory limit" in events[-1]["message"]


async def test_filling_disk_stops_at_the_caps(
    sandboxed_km: AsyncKernelManager, workspace: str
) -> None:
    out = await py(
        sandboxed_km,
        """
        import errno
        res = []
        for path in ['/tmp/fill', 'big.bin']:
            written = 0
            try:
                with open(path, 'wb') as f:
                    while written < 1024 ** 3:
                        f.write(b'\\0' * (1 << 20))
                        written += 1 << 20
                    f.flush()
                res.append('UNBOUNDED')
            except OSError as e:
                res.append(errno.errorcode[e.errno])
            res.append(written >> 20)
        print(res)
        """,
        timeout=120,
    )
    tmp_err, tmp_mb, ws_err, ws_mb = eval(out)
    assert tmp_err == "ENOSPC" and tmp_mb <= 64  # c.SandboxPolicy.tmp_size
    assert ws_err == "EFBIG" and ws_mb <= 64  # c.SandboxPolicy.max_file_size
    assert os.path.getsize(os.path.join(workspace, "big.bin")) <= 64 * 1024 * 1024


async def test_setuid_binaries_and_capabilities_give_nothing(
    sandboxed_km: AsyncKernelManager, workspace: str
) -> None:
    # Root on the host prepares a setuid-root copy of `id` in the workspace.
    suid = os.path.join(workspace, "suid-id")
    shutil.copy("/usr/bin/id", suid)
    if os.geteuid() == 0:
        os.chown(suid, 0, 0)
    os.chmod(suid, 0o4755 | stat.S_ISUID)
    out = await py(
        sandboxed_km,
        """
        import os, subprocess
        status = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines()
                      if ':\\t' in l)
        try:
            os.setuid(0); print('SETUID OK')
        except OSError:
            pass
        print(status['CapEff'].strip(), status['NoNewPrivs'].strip())
        print(subprocess.run(['./suid-id', '-u'], capture_output=True, text=True).stdout.strip())
        print(subprocess.run(['unshare', '-r', 'id', '-u'], capture_output=True,
                             text=True).returncode != 0)
        """,
    )
    lines = out.splitlines()
    assert "SETUID OK" not in out
    assert lines[0] == "0000000000000000 1"  # no capabilities, no new privileges
    assert lines[1] != "0"  # the setuid bit gave no root
    assert lines[2] == "True"  # no new user namespace to become 'root' in
