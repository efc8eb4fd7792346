"""Issue 21, finding 1: with the documented classroom setup, no kernel a student can start
reads the provider key — not from its environment, /proc, the broker's files, links it
plants for the server to follow, the HTTP answers it can reach or their error messages.

The hunt below is run first on the host (as the hub's processes run): there it finds the
key, so finding nothing in a student's kernel means the kernel cannot, not that the hunt
is blind."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kernelrun import Execution
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from aiide_server_ext.kernelspecs import spec_is_sandboxed

from .harness import GATEWAY_KEY, OPENAI_KEY, PROVIDER_KEY, Hub

pytestmark = pytest.mark.xdist_group("hub")

#: Looks everywhere it can for anything shaped like the course's keys; prints JSON.
HUNT = r"""
import glob, json, os, stat, urllib.request
PREFIXES = ("sk-ant-provider-", "sk-openai-provider-", "gw-provider-")
found, errors = [], []
def look(label, text):
    for p in PREFIXES:
        i = text.find(p)
        if i >= 0:
            found.append([label, text[i:i + 80]])
def read(path, limit=1 << 20):
    try:
        with open(path, "rb") as f:
            look(path, f.read(limit).decode(errors="replace"))
    except Exception as e:
        errors.append(f"{path}: {type(e).__name__}: {e}")
        look("error " + path, str(e))
look("env", json.dumps(dict(os.environ)))
for path in glob.glob("/proc/[0-9]*/environ") + glob.glob("/proc/[0-9]*/cmdline"):
    read(path)
for path in CANDIDATES:
    read(path)
import sys
SKIP = {"/proc", "/sys", "/dev", "/usr", "/lib", "/lib64", "/bin", "/sbin", "/snap",
        "/var/lib/docker", sys.prefix, sys.base_prefix}
read_paths, seen = set(), 0
tops = [os.getcwd(), "/tmp", os.path.expanduser("~"), "/etc", "/run", "/var", "/home",
        "/root", "/srv", "/opt", "/"]
def walk():
    # At most 20,000 files, then the walk stops: on a developer's host "/" holds whole
    # checkouts; a sandbox sees far fewer.
    global seen
    for top in tops:
        for root, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if os.path.join(root, d) not in SKIP]
            for name in files:
                path = os.path.join(root, name)
                if path in read_paths:
                    continue
                if seen >= 20000:
                    return
                read_paths.add(path)
                seen += 1
                try:  # regular files only: a FIFO another test left in /tmp blocks a read
                    st = os.lstat(path)
                    if not stat.S_ISREG(st.st_mode) or st.st_size > (1 << 20):
                        continue
                except OSError:
                    continue
                read(path)
walk()
for url in URLS:
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            look("http " + url, r.read().decode(errors="replace"))
    except Exception as e:
        look("http error " + url, str(e))
        errors.append(f"{url}: {type(e).__name__}")
for i, target in enumerate(CANDIDATES):
    try:
        os.symlink(target, f"aiide-hunt-{i}.txt")
    except OSError as e:
        errors.append(f"symlink {target}: {e}")
print(json.dumps({"found": found, "errors": errors[:40], "files": seen}))
"""


def _hunt(hub: Hub) -> str:
    candidates = [
        str(hub.key_file()),
        str(hub.key_file("openai")),
        str(hub.dir / "broker_config.json"),
        str(hub.dir / "broker.sqlite"),
        str(hub.dir / "jupyterhub_config.py"),
        str(hub.dir / "hub.log"),
        f"/proc/{hub.broker_pid()}/environ",
        f"/proc/{hub.hub_pid()}/environ",
    ]
    urls = [hub.broker_url + "api/me", hub.url + "/hub/api/"]
    return f"CANDIDATES = {candidates!r}\nURLS = {urls!r}\n" + HUNT


async def _run(hub: Hub, user: str, token: str, kernel_id: str, code: str) -> str:
    url = hub.url.replace("http", "ws", 1) + f"/user/{user}/api/kernels/{kernel_id}/channels"
    ws = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {token}"}))
    run = Execution(code, username=user)
    ws.write_message(run.message)
    try:
        while not run.done:
            frame = await asyncio.wait_for(ws.read_message(), 180)
            assert frame is not None, f"the kernel's socket closed; output so far {run.output}"
            run.take(frame)
    finally:
        ws.close()
    return run.output


def _kernels(hub: Hub, user: str, token: str) -> dict[str, Any]:
    status, specs = hub.request("GET", hub.user_url(user, "/api/kernelspecs"), token)
    assert status == 200, specs
    return dict(specs["kernelspecs"])


def test_the_hunt_finds_the_key_where_the_hubs_processes_run(hub: Hub, tmp_path: Path) -> None:
    """The positive control: the same code as the hub's user finds the key file."""
    done = subprocess.run(  # in a folder of its own: the hunt plants links where it runs
        [sys.executable, "-c", _hunt(hub)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    found = json.loads(done.stdout.strip().splitlines()[-1])["found"]
    assert any(PROVIDER_KEY in text for _, text in found), done.stdout[-2000:]
    # ... and the described providers' key (issue 17) the same way.
    assert any(GATEWAY_KEY in text for _, text in found), done.stdout[-2000:]


def test_no_kernel_a_student_can_start_reads_the_provider_key(hub: Hub) -> None:
    user, token = "alice", hub.login("alice")
    specs = _kernels(hub, user, token)
    assert specs, "the student can start no kernel at all"
    unsandboxed = sorted(n for n, s in specs.items() if not spec_is_sandboxed(s))
    assert unsandboxed == [], f"the student is offered unsandboxed kernels {unsandboxed}"
    # Asking for an unsandboxed kernelspec by name does not start one either.
    status, body = hub.request("POST", hub.user_url(user, "/api/kernels"), token,
                               {"name": "python3"})  # fmt: skip
    assert status != 201, body
    code = _hunt(hub)
    for name in sorted(specs):
        status, kernel = hub.request(
            "POST", hub.user_url(user, "/api/kernels"), token, {"name": name}
        )
        assert status == 201, kernel
        try:
            output = asyncio.run(_run(hub, user, token, kernel["id"], code))
        finally:
            hub.request("DELETE", hub.user_url(user, f"/api/kernels/{kernel['id']}"), token)
        for key in (PROVIDER_KEY, OPENAI_KEY, GATEWAY_KEY):
            assert key not in output, (name, output[-3000:])
        report = json.loads(output.strip().splitlines()[-1])
        assert report["found"] == [], (name, report)
        assert report["files"] > 0, report  # it did look
    # The links it planted in the workspace, read back through the student's server
    # (which runs as the hub's user on the host).
    status, listing = hub.request("GET", hub.user_url(user, "/api/contents/"), token)
    assert status == 200, listing
    planted = [e["path"] for e in listing["content"] if e["name"].startswith("aiide-hunt-")]
    for path in planted:
        status, body = hub.request("GET", hub.user_url(user, f"/api/contents/{path}"), token)
        assert PROVIDER_KEY not in json.dumps(body) and OPENAI_KEY not in json.dumps(body), path
        hub.request("DELETE", hub.user_url(user, f"/api/contents/{path}"), token)
