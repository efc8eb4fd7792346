"""The agent reads a notebook while the lab saves it (issue 15's fix loop, any agent read
after an autosave): Jupyter's contents manager rewrites a notebook in place, so a read in
the middle of a save sees a truncated file. The bridge reads such a notebook again until
the save is done, and still calls a notebook that stays broken invalid."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager

from aiide_server_ext.agent.errors import ToolError
from aiide_server_ext.agent.fanout import Fanout
from aiide_server_ext.agent.notebooks import NotebookBridge, read_notebook
from aiide_server_ext.agent.store import Store

CELLS = 150


def big_notebook(version: int) -> dict[str, Any]:
    """A few MB of outputs, so that writing it takes a while."""
    cells = [
        {
            "id": f"c{i}",
            "cell_type": "code",
            "source": f"x{i} = {version}",
            "metadata": {},
            "outputs": [{"output_type": "stream", "name": "stdout", "text": "y" * 20_000}],
            "execution_count": 1,
        }
        for i in range(CELLS)
    ]
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


@pytest.mark.asyncio
async def test_reads_during_the_lab_saves_see_a_whole_notebook(tmp_path: Path) -> None:
    cm = AsyncLargeFileManager(root_dir=str(tmp_path))
    (tmp_path / "big.ipynb").write_text(json.dumps(big_notebook(0)))
    bridge = NotebookBridge(
        cm,
        kernels=None,
        fanout=Fanout(Store(str(tmp_path / "agent.sqlite"))),  # type: ignore[arg-type]
    )
    stop = threading.Event()
    saves = 0

    def save_again_and_again() -> None:
        """The lab saving (as after each agent edit and cell run): the real contents
        manager's save, in its own loop, back to back."""
        nonlocal saves
        loop = asyncio.new_event_loop()
        version = 0
        while not stop.is_set():
            version += 1
            model = {"type": "notebook", "format": "json", "content": big_notebook(version)}
            loop.run_until_complete(cm.save(model, "big.ipynb"))
            saves += 1
        loop.close()

    saver = threading.Thread(target=save_again_and_again)
    saver.start()
    reads = 0
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            nb = await bridge.load("big.ipynb")
            assert len(nb["cells"]) == CELLS
            reads += 1
    finally:
        stop.set()
        saver.join()
    assert saves > 5 and reads > 5, (saves, reads)


def test_a_notebook_that_stays_broken_is_invalid(tmp_path: Path) -> None:
    (tmp_path / "broken.ipynb").write_text('{"cells": [')
    started = time.monotonic()
    with pytest.raises(ToolError, match="is not a valid notebook"):
        read_notebook(str(tmp_path), "broken.ipynb", settle=0.3)
    assert time.monotonic() - started >= 0.3  # read again for the settle time, then said
