"""Under root, a sandboxed kernel never changes the owner or mode of a user's files:
the kernel runs as the workspace's owner, or gets a POSIX ACL that is removed when it
stops (and after a crash of the server, at the next start). Each backend."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest
from jupyter_client import AsyncKernelManager
from kernelrun import run_code
from traitlets.config import Config

from aiide_kernel.grants import ACL_XATTR, read_acl

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.xdist_group("sandbox"),
    pytest.mark.skipif(os.geteuid() != 0, reason="ownership changes only happen under root"),
]


def snapshot(path: str) -> tuple[int, int, int, bytes | None]:
    st = os.lstat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), read_acl(path)


def config(backend: str, root: str, run_root: str) -> Config:
    c = Config()
    c.SandboxPolicy.backend = backend
    c.SandboxPolicy.workspace_root = root
    c.SandboxPolicy.memory_limit = "512M"
    c.SandboxPolicy.tmp_size = "64M"
    c.SandboxProvisioner.run_root = run_root
    return c


@pytest.fixture
def run_root() -> Iterator[str]:
    """A run root of the test's own, so its grant records start empty."""
    path = tempfile.mkdtemp(prefix="aiide-rr-", dir="/tmp")
    os.chmod(path, 0o755)
    yield path
    subprocess.run(["rm", "-rf", path], check=False)


@pytest.fixture
def root_workspace(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("rootws"))
    os.chmod(path, 0o750)  # the sandbox uid may not even read it by its mode
    with open(os.path.join(path, "data.csv"), "w") as f:
        f.write("x\n1\n")
    return path


async def test_a_root_owned_workspace_keeps_its_owner_mode_and_acl(
    backend: str, root_workspace: str, run_root: str
) -> None:
    before = snapshot(root_workspace)
    assert before[3] is None
    km = AsyncKernelManager(
        kernel_name="aiide-python", config=config(backend, root_workspace, run_root)
    )
    await km.start_kernel(cwd=root_workspace)
    try:
        r = await run_code(
            km,
            "import os\nprint(open('data.csv').read().split()[1])\n"
            "open('out.txt', 'w').write('written')\nprint(os.getuid())",
        )
        assert r.status == "ok", r
        assert r.stdout.split()[0] == "1"
        during = os.lstat(root_workspace)
        assert (during.st_uid, during.st_gid) == before[:2]  # never chowned, even meanwhile
    finally:
        await km.shutdown_kernel(now=True)
    assert snapshot(root_workspace) == before
    with open(os.path.join(root_workspace, "out.txt")) as f:
        assert f.read() == "written"
    assert not os.path.exists(os.path.join(run_root, "aiide-grants"))  # no record left


async def test_a_users_workspace_runs_the_kernel_as_that_user(
    backend: str, tmp_path_factory: pytest.TempPathFactory, run_root: str
) -> None:
    root = str(tmp_path_factory.mktemp("users"))
    os.chmod(root, 0o755)
    ws = os.path.join(root, "alice")
    os.mkdir(ws, 0o700)
    os.chown(ws, 65534, 65534)  # the test's own directory, standing in for /home/alice
    before = snapshot(ws)
    km = AsyncKernelManager(kernel_name="aiide-python", config=config(backend, root, run_root))
    await km.start_kernel(cwd=ws)
    try:
        r = await run_code(km, "import os\nopen('mine.txt', 'w').write('x')\nprint(os.getuid())")
        assert r.status == "ok", r
        assert r.stdout.strip() == "65534"
    finally:
        await km.shutdown_kernel(now=True)
    assert snapshot(ws) == before
    assert os.stat(os.path.join(ws, "mine.txt")).st_uid == 65534


async def test_a_tmp_style_root_is_never_changed(
    backend: str, tmp_path_factory: pytest.TempPathFactory, run_root: str
) -> None:
    """A server started in /tmp once left /tmp owned by the sandbox uid."""
    tmp_like = str(tmp_path_factory.mktemp("tmplike"))
    os.chmod(tmp_like, 0o1777)
    before = snapshot(tmp_like)
    km = AsyncKernelManager(kernel_name="aiide-python", config=config(backend, tmp_like, run_root))
    await km.start_kernel(cwd=tmp_like)
    try:
        assert snapshot(tmp_like) == before  # no ACL needed: the mode lets anyone write
        r = await run_code(km, "open('k.txt', 'w').write('x')")
        assert r.status == "ok", r
    finally:
        await km.shutdown_kernel(now=True)
    assert snapshot(tmp_like) == before


CRASHING_SERVER = """
import asyncio, os, sys
from jupyter_client import AsyncKernelManager
from traitlets.config import Config

async def main():
    c = Config(json_config)
    km = AsyncKernelManager(kernel_name="aiide-python", config=c)
    await km.start_kernel(cwd=sys.argv[1])
    kc = km.client()
    kc.start_channels()
    await kc.wait_for_ready(timeout=60)
    print("started", flush=True)
    await asyncio.sleep(600)

json_config = __import__("json").loads(sys.argv[2])
asyncio.run(main())
"""


async def test_a_crashed_servers_acl_is_removed_at_the_next_start(
    root_workspace: str, run_root: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    before = snapshot(root_workspace)
    cfg = {
        "SandboxPolicy": {"backend": "bwrap", "workspace_root": root_workspace},
        "SandboxProvisioner": {"run_root": run_root},
    }
    server = subprocess.Popen(
        [sys.executable, "-c", CRASHING_SERVER, root_workspace, json.dumps(cfg)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "started"
        assert read_acl(root_workspace) is not None  # the sandbox uid's entry
    finally:
        server.send_signal(signal.SIGKILL)  # no shutdown, no cleanup
        server.wait(30)
    assert read_acl(root_workspace) is not None  # left behind by the crash
    other = str(tmp_path_factory.mktemp("other"))
    os.chmod(other, 0o700)
    km = AsyncKernelManager(kernel_name="aiide-python", config=config("bwrap", other, run_root))
    await km.start_kernel(cwd=other)
    try:
        assert snapshot(root_workspace) == before
    finally:
        await km.shutdown_kernel(now=True)
    assert snapshot(other)[3] is None


@pytest.mark.filterwarnings("ignore::pytest.PytestWarning")
def test_the_acl_is_set_through_xattrs_not_a_tool(root_workspace: str) -> None:
    """No setfacl needed: the ACL is encoded by aiide and reads back as POSIX ACL."""
    from aiide_kernel.grants import acl_with_user, decode_acl

    data = acl_with_user(0o750, None, 64999)
    os.setxattr(root_workspace, ACL_XATTR, data)
    try:
        entries = decode_acl(os.getxattr(root_workspace, ACL_XATTR))
        assert (0x02, 7, 64999) in entries  # ACL_USER rwx for the sandbox uid
        assert (0x04, 5, 0xFFFFFFFF) in entries  # the group keeps r-x
    finally:
        os.removexattr(root_workspace, ACL_XATTR)
        os.chmod(root_workspace, 0o750)
