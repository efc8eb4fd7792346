"""The built wheel, installed into a clean virtualenv, gives a working `jupyter lab`.

What a user of PyPI gets: the wheel is built from this checkout as a release is (the
prebuilt labextension in place), installed with ``pip install --no-deps`` into a fresh
virtualenv, and that virtualenv's own ``bin/jupyter lab`` is started with a fresh HOME
and no Jupyter path pointing at the checkout. So the extension only loads if the wheel
ships its server config, the sandboxed kernel only exists if it ships the kernelspec,
and the lab only has aiide's front end and the LSP default if it ships those data files.

The dependencies come from this test environment (its site-packages listed in a ``.pth``
of the new virtualenv; their data files and the ``jupyter`` scripts linked as their wheels
would have installed them, none of aiide's) instead of a five-minute download: the
editable install's own ``.pth`` there is not processed, so ``aiide_server_ext`` resolves
to the new virtualenv only (checked, and the server's bytecode is written there).

Against that server: the sandboxed kernel runs a cell and cannot read the server user's
home nor reach the network; the chat streams an answer from the fake Anthropic API;
knowledge search installs the embedding model in the background on first use (from the
offline build ``make model`` caches) and then finds a file written here. The wheel's
``jupyter aiide example`` copies the guided start's folder into the lab's root.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from kernelrun import Execution
from optional import require
from sandbox_support import require_backend

from aiide_server_ext.knowledge import model_install as mi
from aiide_server_ext.knowledge.embeddings import MODEL_NAME

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
FAKE_KEY = "sk-ant-wheel-0123456789abcdef"
# Read now: the build `make model` cached for this Python (what the install copies).
CACHE = mi.cache_root()
ANSWER = "The wheel answers from its own virtualenv."
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
FAKE = [sys.executable, "-m", "fakes.fake_anthropic", "--port", "0"]
WHERE = "import aiide_server_ext, aiide_kernel; print(aiide_server_ext.__file__)"

pytestmark = pytest.mark.timeout(240)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(cmd: list[str], **kwargs: Any) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture
def work() -> Iterator[Path]:
    """World-traversable (the sandboxed kernel's uid must reach the virtualenv), not
    under pytest's 0700 temporary folder."""
    path = Path(tempfile.mkdtemp(prefix="aiide-wheel-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def build_wheel(out: Path) -> Path:
    """As a release builds it (benchmarks/install_size.py): the prebuilt labextension."""
    assert (ROOT / "aiide_server_ext" / "labextension" / "package.json").exists(), (
        "the labextension is not built: make setup"
    )
    _run(
        [*PIP, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(ROOT)],
        env={**os.environ, "SKIP_JUPYTER_BUILDER": "1"},
    )
    (wheel,) = out.glob("aiide-*.whl")
    return wheel


def mirror(src: Path, dst: Path) -> None:
    """Links what ``src`` has and ``dst`` lacks, except aiide's own files."""
    dst.mkdir(parents=True, exist_ok=True)
    for child in src.iterdir():
        target = dst / child.name
        if "aiide" in child.name:
            continue
        if not target.exists():
            target.symlink_to(child)
        elif child.is_dir() and target.is_dir():
            mirror(child, target)


def make_venv(prefix: Path, wheel: Path) -> Path:
    """A fresh virtualenv with the wheel; its dependencies from this environment."""
    _run([sys.executable, "-m", "venv", "--without-pip", str(prefix)])
    python = prefix / "bin" / "python"
    site = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
        ).strip()
    )
    deps = sysconfig.get_paths()["purelib"]
    # Only the directory: the editable install's .pth in it is not processed from here.
    (site / "zz_test_dependencies.pth").write_text(deps + "\n")
    _run([*PIP, "--python", str(python), "install", "-q", "--no-deps", "--no-compile", str(wheel)])
    # The dependencies' data files (JupyterLab's application, other extensions' config),
    # as their wheels would have installed them; nothing of aiide's.
    here = Path(sys.prefix)
    for part in ("etc/jupyter", "share/jupyter"):
        if (here / part).is_dir():
            mirror(here / part, prefix / part)
    # The console scripts pip would have made for the dependencies `jupyter lab` runs
    # through (`jupyter` finds `jupyter-lab` next to itself), with this Python.
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    for name in ("jupyter", "jupyter-lab"):
        module, _, func = scripts[name].partition(":")
        script = prefix / "bin" / name
        script.write_text(
            f"#!{python}\nimport sys\nfrom {module} import {func}\nsys.exit({func}())\n"
        )
        script.chmod(0o755)
    return site


class Lab:
    def __init__(self, url: str, token: str, process: subprocess.Popen[bytes], log: Path):
        self.url, self.token, self.process, self.log = url, token, process, log

    def call(self, path: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.url}{path}",
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                code, text = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            code, text = err.code, err.read()
        try:
            return code, json.loads(text) if text else None
        except ValueError:
            return code, text

    def tail(self, lines: int = 80) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"jupyter lab exited:\n{self.tail()}"
            try:
                if self.call("api/status")[0] == 200:
                    return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"jupyter lab not ready in {timeout} s:\n{self.tail()}")


def stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_cell(lab: Lab, kernel_id: str, code: str, timeout: float = 60.0) -> str:
    """Executes ``code`` over the kernel's WebSocket; its stdout (errors fail)."""
    import websocket

    ws = websocket.create_connection(
        f"{lab.url.replace('http', 'ws', 1)}api/kernels/{kernel_id}/channels",
        header=[f"Authorization: token {lab.token}"],
        timeout=timeout,
    )
    run = Execution(code)
    ws.send(run.message)
    deadline = time.monotonic() + timeout
    try:
        while not run.done:
            assert time.monotonic() < deadline, f"no reply to the cell; output so far {run.stdout}"
            run.take(ws.recv())
            if run.errors:
                raise AssertionError(f"the cell failed: {run.errors[0]}")
            assert run.reply is None or run.reply["status"] == "ok", run.reply
    finally:
        ws.close()
    return run.stdout


def chat(lab: Lab, text: str, timeout: float = 60.0) -> list[dict[str, Any]]:
    import websocket

    ws = websocket.create_connection(
        f"{lab.url.replace('http', 'ws', 1)}aiide/api/chat/ws",
        header=[f"Authorization: token {lab.token}"],
        timeout=timeout,
    )
    events: list[dict[str, Any]] = []
    try:
        assert json.loads(ws.recv())["type"] == "hello"
        ws.send(json.dumps({"type": "chat", "id": "m1", "text": text, "task": "chat"}))
        while True:
            event = json.loads(ws.recv())
            events.append(event)
            if event["type"] == "run_finished":
                return events
            assert event["type"] != "error", events
    finally:
        ws.close()


def test_the_wheel_in_a_clean_virtualenv_runs_lab_kernel_chat_and_knowledge(
    work: Path,
) -> None:
    require_backend("bwrap")
    artefact = CACHE / f"{MODEL_NAME}-{mi.inputs_key()}"
    require(
        "embedding-model",
        (artefact / mi.STAMP).exists(),
        f"no cached model build for these inputs in {artefact}",
    )
    wheel = build_wheel(work / "dist")
    prefix = work / "venv"
    site = make_venv(prefix, wheel)

    # What the wheel put into the virtualenv (sys.prefix of its jupyter).
    for data in (
        "etc/jupyter/jupyter_server_config.d/aiide_server_ext.json",
        "etc/jupyter/jupyter_aiide_server_ext_config.json",
        "share/jupyter/kernels/aiide-python/kernel.json",
        "share/jupyter/labextensions/aiide/package.json",
        "share/jupyter/lab/settings/overrides.d/aiide.json",
    ):
        assert (prefix / data).is_file(), f"the wheel did not install {data}"

    home, root = work / "home", work / "root"
    home.mkdir()
    root.mkdir()
    root.chmod(0o777)
    secret = secrets.token_hex(16)
    (home / "secret.txt").write_text(secret)
    (root / "notes.md").write_text(
        "# Lighthouse maintenance\n\nThe lighthouse lamp is cleaned every Tuesday with "
        "vinegar, and the brass fittings are polished with a soft cloth.\n"
    )
    venv_bin = str(Path(sys.executable).parent)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JUPYTER", "ANTHROPIC", "OPENAI", "PYTHON", "VIRTUAL_ENV", "XDG"))
    }
    env.update(
        HOME=str(home),
        # This environment's own scripts are not on the PATH: only the new virtualenv's.
        PATH=os.pathsep.join(
            [str(prefix / "bin")]
            + [p for p in env.get("PATH", "/usr/bin:/bin").split(os.pathsep) if p != venv_bin]
        ),
        VIRTUAL_ENV=str(prefix),
        # The model build `make model` cached (a user's second install): a copy of
        # seconds, never a torch download in a test. The models dir itself is fresh.
        XDG_CACHE_HOME=str(CACHE.parent.parent),
    )

    # The package resolves to the new virtualenv, not the checkout (-B: no bytecode
    # written, so that what the server imports is seen below).
    found = _run(
        [str(prefix / "bin" / "python"), "-B", "-c", WHERE],
        env=env,
        cwd=root,
    ).strip()
    assert Path(found).is_relative_to(site), found
    # The guided start of `make lab`, for pip users: the wheel carries the example and
    # `jupyter aiide example` copies it into the folder the lab serves.
    assert (site / "aiide_server_ext" / "examples" / "getting-started").is_dir()
    said = _run([str(prefix / "bin" / "jupyter"), "aiide", "example"], env=env, cwd=root)
    assert "jupyter lab getting-started/getting-started.ipynb" in said, said
    for name in ("getting-started.ipynb", "sales.csv", "notes/returns-policy.md"):
        assert (root / "getting-started" / name).is_file(), name

    fake = subprocess.Popen(
        [*FAKE, "--api-key", FAKE_KEY, "--default-text", ANSWER],
        cwd=TESTS,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lab_process: subprocess.Popen[bytes] | None = None
    log = work / "lab.log"
    try:
        assert fake.stdout is not None
        fake_url = json.loads(fake.stdout.readline())["url"]
        env.update(ANTHROPIC_API_KEY=FAKE_KEY, ANTHROPIC_BASE_URL=fake_url)
        port, token = _free_port(), secrets.token_hex(24)
        cmd = [str(prefix / "bin" / "jupyter"), "lab", "--no-browser", "--ip=127.0.0.1"]
        cmd += [f"--port={port}", "--ServerApp.port_retries=0", f"--ServerApp.token={token}"]
        cmd += [f"--ServerApp.root_dir={root}", "--AiideExtension.prewarm_kernels=False"]
        # The dependencies outside the virtualenv must be visible inside the sandbox too.
        cmd += [f"--SandboxPolicy.extra_ro_mounts={sysconfig.get_paths()['purelib']}"]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        with log.open("wb") as out:
            lab_process = subprocess.Popen(
                cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        lab = Lab(f"http://127.0.0.1:{port}/", token, lab_process, log)
        lab.wait_ready()
        try:
            check_lab(lab, prefix)
            check_kernel(lab, home, secret, fake_url)
            check_chat(lab)
            check_knowledge(lab, home)
        except BaseException:
            print("jupyter lab log:\n" + lab.tail(200))
            raise
    finally:
        if lab_process is not None:
            stop(lab_process)
        stop(fake)


def check_lab(lab: Lab, prefix: Path) -> None:
    code, status = lab.call("aiide/api/status")
    assert code == 200, status
    assert status["model"]["configured"] is True
    # The example the command copied is what the lab serves.
    code, guide = lab.call("api/contents/getting-started/getting-started.ipynb")
    assert code == 200 and guide["type"] == "notebook", guide
    # The server imported aiide from the virtualenv (compiled there on import: pip was
    # told not to compile).
    pyc = list(prefix.glob("lib/python*/site-packages/aiide_server_ext/agent/__pycache__/*.pyc"))
    assert pyc, "the server did not import aiide_server_ext from the new virtualenv"
    # The front end is served from the wheel's labextension.
    code, page = lab.call("lab")
    assert code == 200
    html = page.decode() if isinstance(page, bytes) else str(page)
    start = html.index('<script id="jupyter-config-data" type="application/json">')
    config = json.loads(html[html.index(">", start) + 1 : html.index("</script>", start)])
    names = [ext["name"] for ext in config["federated_extensions"]]
    assert "aiide" in names, names
    (ext,) = [e for e in config["federated_extensions"] if e["name"] == "aiide"]
    code, _ = lab.call(f"lab/extensions/aiide/{ext['load']}")
    assert code == 200
    # JupyterLab's LSP default from overrides.d.
    code, plugin = lab.call("lab/api/settings/@jupyterlab/lsp-extension:plugin")
    assert code == 200, plugin
    assert plugin["schema"]["properties"]["activate"]["default"] == "on", plugin["schema"]


def check_kernel(lab: Lab, home: Path, secret: str, fake_url: str) -> None:
    code, specs = lab.call("api/kernelspecs")
    assert code == 200
    assert specs["default"] == "aiide-python", specs
    assert specs["kernelspecs"]["aiide-python"]["spec"]["display_name"] == "Python 3 (sandboxed)"
    code, session = lab.call(
        "api/sessions",
        "POST",
        {"path": "wheel.ipynb", "type": "notebook", "name": "wheel.ipynb", "kernel": {}},
    )
    assert code == 201, session
    assert session["kernel"]["name"] == "aiide-python"
    port = int(fake_url.rsplit(":", 1)[1].split("/")[0])
    cell = f"""
import socket, sys
try:
    print("home:", open({str(home / "secret.txt")!r}).read())
except OSError as e:
    print("home: denied", type(e).__name__)
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=3)
    print("net: connected")
except OSError as e:
    print("net: denied", type(e).__name__)
print("answer:", 6 * 7)
"""
    out = run_cell(lab, session["kernel"]["id"], cell)
    assert "answer: 42" in out, out
    assert secret not in out and "home: denied" in out, out
    assert "net: denied" in out, out
    code, _ = lab.call(f"api/sessions/{session['id']}", "DELETE")
    assert code == 204


def check_chat(lab: Lab) -> None:
    events = chat(lab, "Where does this answer come from?")
    text = "".join(e.get("text", "") for e in events if e["type"] == "token")
    assert text == ANSWER, events


def check_knowledge(lab: Lab, home: Path) -> None:
    models = home / ".local" / "share" / "jupyter" / "aiide" / "models"
    assert not (models / MODEL_NAME).exists()
    # The first search starts the install in the background and says so; a copy from
    # the cache can be done before the answer, which then says nothing is indexed yet.
    # Never an empty 200: the user is told what happens or what to do.
    code, body = lab.call("aiide/api/knowledge/search?q=lighthouse")
    assert (code, body.get("code")) in ((503, "model_installing"), (409, "not_indexed")), body
    code, job = lab.call("aiide/api/knowledge/index", "POST", {"path": ""})
    assert code in (200, 202), job
    deadline = time.monotonic() + 120
    report: dict[str, Any] = {}
    while time.monotonic() < deadline:
        code, status = lab.call("aiide/api/knowledge/index")
        assert code == 200, status
        report = status["model_install"]
        if report["state"] == "ready":
            break
        assert report["state"] != "failed", report
        time.sleep(0.2)
    assert report["state"] == "ready", report
    while time.monotonic() < deadline:
        code, state = lab.call(f"aiide/api/knowledge/jobs/{job['id']}")
        assert code == 200, state
        if state["status"] in ("done", "failed"):
            break
        time.sleep(0.1)
    assert state["status"] == "done", state
    code, body = lab.call("aiide/api/knowledge/search?q=how+is+the+lamp+cleaned")
    assert code == 200, body
    assert body["results"], body
    assert body["results"][0]["path"] == "notes.md", body["results"]
    assert (models / MODEL_NAME).is_dir()
