"""The index costs nothing at server start: chromadb and onnxruntime load later."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.xdist_group("knowledge")

SCRIPT = r"""
import json, sys, time
from jupyter_server.serverapp import ServerApp
from aiide_server_ext.knowledge import part

spent = []
original = part.Knowledge.initialize
def timed(self, settings):
    t = time.perf_counter(); original(self, settings); spent.append(time.perf_counter() - t)
part.Knowledge.initialize = timed
app = ServerApp()
app.initialize(argv=[
    "--ServerApp.jpserver_extensions={'aiide_server_ext': True}",
    "--AiideExtension.prewarm_kernels=False", "--KernelPool.size=0",
    f"--ServerApp.root_dir={sys.argv[1]}", f"--Knowledge.data_dir={sys.argv[2]}",
    "--ServerApp.open_browser=False", "--ServerApp.port=0",
])
heavy = [m for m in ("chromadb", "onnxruntime", "tokenizers", "numpy", "torch")
         if m in sys.modules]
print(json.dumps({"heavy": heavy, "initialize_ms": 1000 * sum(spent),
                  "has_service": "aiide_knowledge" in app.web_app.settings}))
"""


def test_server_start_imports_no_heavy_library(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(root), str(tmp_path / "kn")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={"JUPYTER_PLATFORM_DIRS": "1", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["has_service"] is True
    assert result["heavy"] == [], result
    # How long it takes is benchmarks/server_start.py's figure, not an assertion here.
