"""What the browser benchmarks share: a free port, and ``jupyter lab`` with aiide in its own
process with its own config, settings and runtime folders (no update checks, no news).

Imported by the benchmark scripts run as ``python benchmarks/<name>.py`` (their folder is
then on ``sys.path``), so one change to how a lab starts or stops serves them all.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

_FOLDERS = ("root", "config", "settings", "ws", "runtime", "data")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def notebook(root: Path, name: str, kernel: str, display: str) -> str:
    """An empty one-cell notebook on ``kernel``, written to ``root / name``."""
    nb = {
        "cells": [{"cell_type": "code", "id": "c1", "metadata": {}, "source": "",
                   "outputs": [], "execution_count": None}],
        "metadata": {"kernelspec": {"name": kernel, "display_name": display,
                                    "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }  # fmt: skip
    (root / name).write_text(json.dumps(nb))
    return name


def lab_folders(tmp: Path) -> dict[str, Path]:
    """The lab's own folders below ``tmp`` (``root`` is where the notebooks go)."""
    dirs = {name: tmp / name for name in _FOLDERS}
    for path in dirs.values():
        path.mkdir()
    return dirs


@contextmanager
def running_lab(dirs: dict[str, Path], env: Mapping[str, str], token: str) -> Iterator[str]:
    """``jupyter lab`` with aiide on a free port, its folders ``dirs`` (from
    ``lab_folders``), over ``env``; yields its base URL once it answers, and stops it on
    exit (killed, and said so, if it does not stop within 15 s: the figures stand)."""
    lab_env = {
        **env,
        "JUPYTER_CONFIG_DIR": str(dirs["config"]),
        "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
        "JUPYTERLAB_WORKSPACES_DIR": str(dirs["ws"]),
        "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
        "JUPYTER_DATA_DIR": str(dirs["data"]),
    }
    notify = dirs["settings"] / "@jupyterlab" / "apputils-extension"
    notify.mkdir(parents=True)
    (notify / "notification.jupyterlab-settings").write_text(
        json.dumps({"checkForUpdates": False, "fetchNews": "false"})
    )
    port = free_port()
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
        f"--port={port}", f"--ServerApp.token={token}", f"--ServerApp.root_dir={dirs['root']}",
        "--AiideExtension.prewarm_kernels=False", "--LabApp.expose_app_in_browser=True",
    ]  # fmt: skip
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    proc = subprocess.Popen(
        cmd, env=lab_env, cwd=dirs["root"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{base}api/status?token={token}", timeout=2)
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise SystemExit("jupyter lab did not start")
        yield base
    finally:
        stop(proc, "jupyter lab")


def stop(proc: subprocess.Popen[bytes], name: str) -> None:
    """SIGTERM, then SIGKILL after 15 s, said on stderr rather than a traceback."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        print(f"{name} did not stop within 15 s of SIGTERM: killed", file=sys.stderr)
        proc.kill()
        proc.wait()
