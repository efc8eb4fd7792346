"""``jupyter aiide mcp``: the official SDK's stdio client lists aiide's notebook tools,
reads, inserts and runs a cell (in a sandboxed kernel) on a notebook directory."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from agent.conftest import KEY, OAI_KEY
from headless.runs import write_config, write_nb
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

pytestmark = [pytest.mark.asyncio, pytest.mark.xdist_group("mcp")]


def server(root: Path, *extra: str) -> StdioServerParameters:
    cfg = write_config(root, "http://127.0.0.1:9", "http://127.0.0.1:9")
    env = {
        **os.environ,
        "AIIDE_T_ANTHROPIC": KEY,
        "AIIDE_T_OPENAI": OAI_KEY,
        "JUPYTER_CONFIG_DIR": str(root / ".jupyter"),
    }
    args = ["-m", "aiide_server_ext.cli", "mcp", str(root), "--config", str(cfg), *extra]
    return StdioServerParameters(command=sys.executable, args=args, env=env)


def text(result: object) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)  # type: ignore[attr-defined]


async def test_stdio_server_lists_reads_inserts_and_runs_cells(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    write_nb(tmp_path / "nb.ipynb", [("code", "x = 6 * 7")])
    async with (
        stdio_client(server(tmp_path, "--yes")) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        names = {t.name for t in (await session.list_tools()).tools}
        assert {"list_cells", "read_cell", "insert_cell", "replace_cell", "run_cell"} <= names
        assert "search_knowledge" not in names  # no index here
        got = await session.call_tool("read_cell", {"path": "nb.ipynb", "cell_id": "c0"})
        assert not got.isError and "x = 6 * 7" in text(got)
        added = await session.call_tool(
            "insert_cell", {"path": "nb.ipynb", "after_id": "c0", "source": "x = 6 * 7\nprint(x)"}
        )
        assert not added.isError, text(added)
        cells = json.loads((tmp_path / "nb.ipynb").read_text())["cells"]
        new_id = cells[1]["id"]
        ran = await session.call_tool("run_cell", {"path": "nb.ipynb", "cell_id": new_id})
        assert not ran.isError and "42" in text(ran), text(ran)
        refused = await session.call_tool("read_cell", {"path": "../x.ipynb", "cell_id": "c0"})
        assert refused.isError


async def test_without_yes_a_call_that_needs_approval_is_refused(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    write_nb(tmp_path / "nb.ipynb", [("code", "1")])
    async with (
        stdio_client(server(tmp_path)) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        got = await session.call_tool("insert_cell", {"path": "nb.ipynb", "source": "2"})
        assert got.isError and "approval_required" in text(got)
        assert (await session.call_tool("list_cells", {"path": "nb.ipynb"})).isError is False
    assert len(json.loads((tmp_path / "nb.ipynb").read_text())["cells"]) == 1
