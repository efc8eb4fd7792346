"""What aiide adds to Jupyter server start: a bare server vs one with aiide, one run.

    .venv/bin/python benchmarks/server_start.py [--runs 10]

Each start is timed from process spawn until ``GET /api/status`` answers. The
target is ≤ 150 ms added: heavy libraries must be imported on first use.
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def time_start(with_aiide: bool, root: str) -> float:
    port = free_port()
    token = os.urandom(8).hex()
    enabled = "True" if with_aiide else "False"
    cmd = [
        sys.executable,
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="aiide-bench-")
    bare, aiide = [], []
    for _ in range(args.runs):  # interleaved, so drift hits both alike
        bare.append(time_start(False, root))
        aiide.append(time_start(True, root))
    b, a = statistics.median(bare), statistics.median(aiide)
    print(f"{'server start':24} {'median':>10}")
    print(f"{'bare jupyter server':24} {b * 1000:8.0f}ms")
    print(f"{'with aiide':24} {a * 1000:8.0f}ms   {a / b:.2f}x  {(a - b) * 1000:+.0f}ms added")


if __name__ == "__main__":
    main()
