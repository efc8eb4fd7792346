"""``%ai`` wherever a kernel runs under aiide: in a headless run it is answered through the
runner's own channel (and recorded, so replay answers it again without the model); a
question ending in ``?`` is a question, not IPython's help; a failure fails the cell, and
a kernel outside aiide says so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeAnthropic, Reply
from jupyter_client.manager import start_new_async_kernel
from kernelrun import run_code

from .runs import aiide, read_lines, write_config, write_nb

pytestmark = [pytest.mark.asyncio, pytest.mark.xdist_group("headless")]

ASK = "%load_ext aiide_kernel.magics\n%ai --format text what is 2+2?"


def printed(cell: dict[str, Any]) -> str:
    return "".join("".join(o.get("text", "")) for o in cell["outputs"])


async def test_ai_in_a_headless_run_and_its_replay(
    tmp_path: Path, afake_anthropic: FakeAnthropic, afake_openai: Any
) -> None:
    cfg = write_config(tmp_path, afake_anthropic.url, afake_openai.url)
    write_nb(tmp_path / "nb.ipynb", [("code", ASK)])
    afake_anthropic.push(Reply(text="4"), Reply(text="The notebook asked; the answer is 4."))
    code, _, err = await aiide("run", "nb.ipynb", "--goal", "g", "--config", str(cfg), cwd=tmp_path)
    assert code == 0, err
    question = json.dumps(afake_anthropic.requests[0].body["messages"])
    assert "what is 2+2?" in question  # the question mark is the question's
    (cell,) = json.loads((tmp_path / "nb.aiide.ipynb").read_text())["cells"]
    assert printed(cell) == "4\n"
    trace = read_lines(tmp_path / "nb.aiide.trace.jsonl")
    (magic,) = [r for r in trace if r["type"] == "magic"]
    assert magic["status"] == 200 and magic["reply"]["text"] == "4"

    asked = len(afake_anthropic.requests)
    code, _, err = await aiide("replay", "nb.aiide.trace.jsonl", "--config", str(cfg), cwd=tmp_path)
    assert code == 0 and "1 same, 0 differ" in err, err
    assert len(afake_anthropic.requests) == asked  # answered from the trace


async def test_ai_outside_aiide_fails_the_cell_with_a_clear_error() -> None:
    km, kc = await start_new_async_kernel(kernel_name="python3")
    try:
        kc.stop_channels()
        r = await run_code(km, ASK)
    finally:
        await km.shutdown_kernel(now=True)
    assert r.status == "error", r
    assert "needs a kernel started by aiide" in r.error
