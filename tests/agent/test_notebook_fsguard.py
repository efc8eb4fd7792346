"""The agent's notebook reads and writes against a workspace the sandbox can write (issue
13, "the server's hands"): a notebook, its contents-manager backup (``.~name``) or its
checkpoint planted as a link out of the root, to ``~/.bashrc`` or to a dotfile; a notebook
or its folder swapped for a link during calls; a FIFO named like a notebook.

The workspace here is a home directory, as with ``cd ~ && jupyter lab``. The bridge is the
one the agent's tools, mentions, MCP and headless runs use, on a real contents manager.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from linkswap import swapping

from aiide_server_ext.agent.errors import ToolError
from aiide_server_ext.agent.fanout import Fanout
from aiide_server_ext.agent.notebooks import NotebookBridge, Route
from aiide_server_ext.agent.store import Store
from aiide_server_ext.agent.tools import TOOLS, ToolEnv
from aiide_server_ext.seams import Caller

SECRET = "AWS_SECRET=hunter2"
BASHRC = "alias ll='ls -l'\n"


def notebook(*sources: str) -> str:
    cells = [
        {
            "id": f"c{i}",
            "cell_type": "code",
            "source": src,
            "metadata": {},
            "outputs": [],
            "execution_count": None,
        }
        for i, src in enumerate(sources, 1)
    ]
    nb = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(nb)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    (home / "sub").mkdir(parents=True)
    (home / ".bashrc").write_text(BASHRC)
    (home / ".secret.ipynb").write_text(notebook(SECRET))
    (home / "nb.ipynb").write_text(notebook("print(1)"))
    (home / "sub" / "nb.ipynb").write_text(notebook("x = 1"))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.ipynb").write_text(notebook(SECRET))
    (outside / "nb.ipynb").write_text(notebook(SECRET))
    (outside / "victim").write_text("untouched\n")
    return home


def outside_of(home: Path) -> Path:
    return home.parent / "outside"


@pytest.fixture
def bridge(home: Path) -> NotebookBridge:
    cm = AsyncLargeFileManager(root_dir=str(home))
    store = Store(str(home.parent / "agent.sqlite"))
    return NotebookBridge(cm, kernels=None, fanout=Fanout(store))  # type: ignore[arg-type]


def env(home: Path, bridge: NotebookBridge) -> ToolEnv:
    return ToolEnv(
        root_dir=str(home),
        notebooks=bridge,
        caller=Caller("ada"),  # type: ignore[arg-type]
        route=Route("cv", "run", "ada"),
        call_id="toolu_1",
    )


async def tool(home: Path, bridge: NotebookBridge, name: str, **args: Any) -> str:
    run = TOOLS[name].run(env(home, bridge), args)
    return (await asyncio.wait_for(run, 10)).content


def untouched(home: Path) -> None:
    outside = outside_of(home)
    assert (home / ".bashrc").read_text() == BASHRC
    assert (outside / "victim").read_text() == "untouched\n"
    assert sorted(os.listdir(outside)) == ["nb.ipynb", "secret.ipynb", "victim"]
    assert json.loads((outside / "nb.ipynb").read_text())["cells"][0]["source"] == SECRET


def sources(path: Path) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"]]


# --- links planted in the workspace ---------------------------------------------------


@pytest.mark.asyncio
async def test_a_notebook_linked_out_of_the_root_or_to_a_hidden_file_is_not_read(
    home: Path, bridge: NotebookBridge
) -> None:
    """The bridge itself refuses (mentions, MCP, headless runs and context reach it without
    the tools' own path check): out of the root, to ~/.bashrc, to a dotfile notebook."""
    os.symlink(outside_of(home) / "secret.ipynb", home / "out.ipynb")
    os.symlink(".bashrc", home / "rc.ipynb")
    os.symlink(".secret.ipynb", home / "dot.ipynb")
    os.symlink("../../outside/secret.ipynb", home / "sub" / "up.ipynb")
    for path in ["out.ipynb", "rc.ipynb", "dot.ipynb", "sub/up.ipynb"]:
        with pytest.raises(ToolError) as caught:
            await bridge.load(path)
        assert caught.value.code == "path_outside_root", (path, caught.value.message)
        assert SECRET not in caught.value.message
    assert "'.secret.ipynb'" in str(await _message(bridge.load("dot.ipynb")))
    with pytest.raises(ToolError) as caught:
        await tool(home, bridge, "read_cell", path="out.ipynb", cell_id="c1")
    assert caught.value.code == "path_outside_root"


async def _message(call: Any) -> str:
    try:
        await call
    except ToolError as e:
        return e.message
    raise AssertionError("not refused")


@pytest.mark.asyncio
async def test_an_edit_never_writes_through_a_planted_backup_or_checkpoint_link(
    home: Path, bridge: NotebookBridge
) -> None:
    """The contents manager copies the notebook to ``.~nb.ipynb`` and to its checkpoint
    with ``shutil.copyfile``, which follows a link planted at either name."""
    os.symlink(home / ".bashrc", home / ".~nb.ipynb")
    (home / ".ipynb_checkpoints").mkdir()
    os.symlink(outside_of(home) / "victim", home / ".ipynb_checkpoints" / "nb-checkpoint.ipynb")
    (home / "sub" / ".ipynb_checkpoints").mkdir()
    os.symlink(home / ".bashrc", home / "sub" / ".ipynb_checkpoints" / "nb-checkpoint.ipynb")
    for path in ["nb.ipynb", "sub/nb.ipynb"]:
        done = await tool(home, bridge, "insert_cell", path=path, after_id="c1", source="y = 2")
        assert "saved" in done, done
    untouched(home)
    assert sources(home / "nb.ipynb") == ["print(1)", "y = 2"]
    assert sources(home / "sub" / "nb.ipynb") == ["x = 1", "y = 2"]
    # The planted link was replaced by the checkpoint, not written through.
    checkpoint = home / ".ipynb_checkpoints" / "nb-checkpoint.ipynb"
    assert not checkpoint.is_symlink() and sources(checkpoint) == ["print(1)"]


@pytest.mark.asyncio
async def test_a_checkpoint_folder_planted_as_a_link_refuses_the_edit(
    home: Path, bridge: NotebookBridge
) -> None:
    os.symlink(outside_of(home), home / ".ipynb_checkpoints")
    with pytest.raises(ToolError) as caught:
        await tool(home, bridge, "insert_cell", path="nb.ipynb", source="y = 2")
    assert caught.value.code == "tool_failed"
    assert "symlink" in caught.value.message, caught.value.message
    untouched(home)
    assert sources(home / "nb.ipynb") == ["print(1)"]  # no checkpoint, no edit


@pytest.mark.asyncio
async def test_the_checkpoint_is_the_one_the_lab_reverts_to(
    home: Path, bridge: NotebookBridge
) -> None:
    """Written through fsguard, the checkpoint is still where the contents manager (the
    lab's "Revert to checkpoint") looks, and the notebook keeps its mode."""
    os.chmod(home / "nb.ipynb", 0o640)
    await tool(home, bridge, "replace_cell", path="nb.ipynb", cell_id="c1", source="print(2)")
    assert sources(home / "nb.ipynb") == ["print(2)"]
    assert (home / "nb.ipynb").stat().st_mode & 0o777 == 0o640
    cm = AsyncLargeFileManager(root_dir=str(home))
    assert [c["id"] for c in await cm.list_checkpoints("nb.ipynb")] == ["checkpoint"]
    await cm.restore_checkpoint("checkpoint", "nb.ipynb")
    assert sources(home / "nb.ipynb") == ["print(1)"]
    assert not [n for n in os.listdir(home) if n.endswith(".aiide-tmp")]


# --- a FIFO ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_fifo_named_like_a_notebook_is_refused_without_blocking(
    home: Path, bridge: NotebookBridge
) -> None:
    os.mkfifo(home / "x.ipynb")
    os.symlink("x.ipynb", home / "y.ipynb")
    started = time.monotonic()
    for path in ["x.ipynb", "y.ipynb"]:
        with pytest.raises(ToolError) as caught:
            await asyncio.wait_for(bridge.load(path), 5)
        assert caught.value.code == "tool_failed"
        assert "not a regular file (a FIFO)" in caught.value.message, caught.value.message
        with pytest.raises(ToolError):
            await tool(home, bridge, "insert_cell", path=path, source="y = 2")
    assert time.monotonic() - started < 5


# --- swaps during calls -----------------------------------------------------------------


@pytest.fixture
def flipper(home: Path) -> Iterator[threading.Event]:
    """Swaps, as fast as it can: ``nb.ipynb`` between a notebook and a link to ~/.bashrc
    or to a notebook outside the root, and ``sub`` between a folder and a link to the
    outside folder (which holds an ``nb.ipynb`` of its own)."""
    outside = outside_of(home)
    targets = [home / ".bashrc", outside / "secret.ipynb"]
    with swapping(home / "nb.ipynb", targets, notebook("print(1)"), home / "sub", outside) as stop:
        yield stop


@pytest.mark.asyncio
async def test_a_notebook_or_folder_swapped_for_a_link_during_calls_is_never_followed(
    home: Path, bridge: NotebookBridge, flipper: threading.Event
) -> None:
    reads = writes = 0
    codes: list[str] = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        for path in ["nb.ipynb", "sub/nb.ipynb"]:
            try:
                text = await tool(home, bridge, "read_cell", path=path, cell_id="c1")
                assert SECRET not in text
                reads += 1
            except ToolError as err:
                codes.append(err.code)
            try:
                await tool(home, bridge, "insert_cell", path=path, source="y = 2")
                writes += 1
            except ToolError as err:
                codes.append(err.code)
    flipper.set()
    assert reads > 0 and writes > 0, codes
    assert set(codes) <= {"path_outside_root", "not_found", "tool_failed"}, codes
    untouched(home)
