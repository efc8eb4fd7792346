"""The guided start (examples/getting-started) runs top to bottom in the real sandboxed
kernel: every cell succeeds except the one that fails on purpose, and the sandbox cell
shows the sandbox holding."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client import AsyncKernelManager
from nbclient import NotebookClient
from sandbox_support import require_backend
from traitlets.config import Config

pytestmark = pytest.mark.xdist_group("sandbox")

EXAMPLE = Path(__file__).parents[2] / "examples" / "getting-started"
NOTEBOOK = "getting-started.ipynb"
#: The cell that fails on purpose, to try "Fix this error" on.
DELIBERATE = "raises-exception"


def text_of(cell: Any) -> str:
    return "".join(
        out.get("text", "") if out["output_type"] == "stream" else str(out.get("data", ""))
        for out in cell.get("outputs", [])
    )


@pytest.fixture
def copied(tmp_path: Path) -> Path:
    """The example as `make lab` copies it: a folder under the server root."""
    tmp_path.chmod(0o755)
    folder = tmp_path / "getting-started"
    shutil.copytree(EXAMPLE, folder)
    os.chmod(folder, 0o777)  # the kernel's unprivileged uid writes here (no chown)
    return folder


def test_the_example_is_small_and_uses_the_sandboxed_kernel() -> None:
    nb = nbformat.read(EXAMPLE / NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "aiide-python"
    assert nb.metadata.kernelspec.display_name == "Python 3 (sandboxed)"
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert [c for c in nb.cells if DELIBERATE in c.metadata.get("tags", [])]
    assert (EXAMPLE / "sales.csv").stat().st_size < 10_000
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for step in ("ANTHROPIC_API_KEY", "Fix This Error", "Approve", "/learn"):
        assert step in markdown, step


@pytest.mark.asyncio
async def test_the_notebook_runs_top_to_bottom_in_the_sandbox(copied: Path) -> None:
    require_backend("bwrap")
    config = Config()
    config.SandboxPolicy.backend = "bwrap"
    config.SandboxPolicy.workspace_root = str(copied.parent)
    config.SandboxPolicy.memory_limit = "1G"
    nb = nbformat.read(copied / NOTEBOOK, as_version=4)
    km = AsyncKernelManager(kernel_name=nb.metadata.kernelspec.name, config=config)
    client = NotebookClient(nb, km=km, timeout=180, resources={"metadata": {"path": str(copied)}})
    await client.async_execute()

    failed = [
        c.id
        for c in nb.cells
        if c.cell_type == "code" and any(o["output_type"] == "error" for o in c.outputs)
    ]
    deliberate = [c.id for c in nb.cells if DELIBERATE in c.metadata.get("tags", [])]
    assert failed == deliberate
    [error] = [o for c in nb.cells if c.id in deliberate for o in c.outputs]
    assert error["ename"] == "KeyError" and "revenu" in error["evalue"]

    probes = text_of(next(c for c in nb.cells if "probes = {" in c.source))
    assert "ALLOWED  write ./scratch.txt" in probes
    blocked = [line for line in probes.splitlines() if line.startswith("blocked")]
    assert len(blocked) == 5, probes
    assert "blocked  connect to pypi.org" in probes
    growth = text_of(next(c for c in nb.cells if "growth =" in c.source))
    assert growth.splitlines()[1].startswith("South"), growth  # the region that grows, first
