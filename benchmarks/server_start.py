"""What aiide adds to Jupyter server start: a bare server vs one with aiide, one run.

    .venv/bin/python benchmarks/server_start.py [--runs 10] [--wheel]

Each start is timed from process spawn until ``GET /api/status`` answers. The
target is ≤ 150 ms added: heavy libraries must be imported on first use.

``--wheel`` measures the two ways aiide is installed in the same run: this checkout's
editable install (``.venv``) and the wheel built from it, installed with its
dependencies into a fresh virtualenv (what ``pip install aiide`` gives a user). Each
kind's bare server is its own baseline: an editable install's import hook and the
wheel environment's different package set each change what a bare start costs.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def time_start(with_aiide: bool, root: str, python: str = sys.executable) -> float:
    port = free_port()
    token = os.urandom(8).hex()
    enabled = "True" if with_aiide else "False"
    cmd = [
        python,
        "-m",
        "jupyter_server",
        "--no-browser",
        f"--port={port}",
        f"--ServerApp.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--ServerApp.jpserver_extensions=aiide_server_ext={enabled}",
        "--AiideExtension.prewarm_kernels=False",
    ]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/api/status?token={token}"
        while True:
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - t0
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError("server exited during start") from None
                time.sleep(0.01)
    finally:
        proc.terminate()
        proc.wait(10)


def measure(python: str, runs: int, root: str) -> tuple[float, float]:
    """Median bare and with-aiide start of one Python environment, interleaved so drift
    hits both alike."""
    bare, aiide = [], []
    for _ in range(runs):
        bare.append(time_start(False, root, python))
        aiide.append(time_start(True, root, python))
    return statistics.median(bare), statistics.median(aiide)


def wheel_python(work: Path) -> str:
    """A fresh virtualenv with the wheel of this checkout and its dependencies."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from install_size import build_wheel, install

    wheel = build_wheel(work / "wheel")
    install(work / "venv", str(wheel))
    return str(work / "venv" / "bin" / "python")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--wheel", action="store_true", help="also a wheel install, same run")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="aiide-bench-")
    kinds = [("editable (.venv)", sys.executable)]
    if args.wheel:
        work = Path(tempfile.mkdtemp(prefix="aiide-bench-wheel-"))
        kinds.append(("wheel (fresh venv)", wheel_python(work)))
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print(f"{'install':20} {'bare':>8} {'with aiide':>11} {'added':>8}")
    for name, python in kinds:
        b, a = measure(python, args.runs, root)
        added = (a - b) * 1000
        print(f"{name:20} {b * 1000:6.0f}ms {a * 1000:9.0f}ms {added:+6.0f}ms  {a / b:.2f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
