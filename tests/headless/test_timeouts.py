"""Long cells: past ``--execute-timeout`` the kernel is interrupted (restarted when it does
not answer), the cell keeps what it printed, the trace records the execution so replay
runs it too; Ctrl-C keeps the running cell's partial output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeAnthropic, Reply, ToolUse

from .runs import AUTO, aiide, interrupt_when, read_lines, write_config, write_nb

pytestmark = [pytest.mark.asyncio, pytest.mark.xdist_group("headless")]

SLOW = "import time\nprint('started', flush=True)\ntime.sleep(60)"
DEAF = (
    "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "print('deaf', flush=True)\ntime.sleep(60)"
)


def script(fake: FakeAnthropic, code: str) -> None:
    fake.push(
        Reply(tools=[ToolUse("insert_cell", {"source": code}, id="toolu_slow0001")]),
        Reply(tools=[ToolUse("run_cell", {"cell_id": "ai-slow0001"}, id="toolu_run1")]),
        Reply(tools=[ToolUse("execute_code", {"code": "print('after')"}, id="toolu_after")]),
        Reply(text="done"),
    )


def texts(outputs: list[dict[str, Any]]) -> str:
    return "".join(
        "".join(o["text"]) if o["output_type"] == "stream" else o.get("ename", "") for o in outputs
    )


@pytest.mark.parametrize(
    ("code", "printed", "recovery"),
    [(SLOW, "started", "interrupted"), (DEAF, "deaf", "restarted")],
)
async def test_a_cell_past_the_timeout_is_interrupted_and_keeps_its_output(
    tmp_path: Path,
    afake_anthropic: FakeAnthropic,
    afake_openai: object,
    code: str,
    printed: str,
    recovery: str,
) -> None:
    cfg = write_config(tmp_path, afake_anthropic.url, afake_openai.url)  # type: ignore[attr-defined]
    (tmp_path / "policy.json").write_text(AUTO)
    write_nb(tmp_path / "nb.ipynb")
    script(afake_anthropic, code)
    args = ["run", "nb.ipynb", "--goal", "g", "--policy", "policy.json", "--config", str(cfg)]
    code_, _, err = await aiide(*args, "--execute-timeout", "3", cwd=tmp_path, timeout=120)
    assert code_ == 0, err
    trace = read_lines(tmp_path / "nb.aiide.trace.jsonl")
    results = {r["call_id"]: r for r in trace if r.get("event") == "tool_result"}
    assert f"{printed}\n" in results["toolu_run1"]["content"]
    assert "ExecutionTimeout" in results["toolu_run1"]["content"]
    assert results["toolu_after"]["ok"] and "after" in results["toolu_after"]["content"]
    (slow,) = [r for r in trace if r["type"] == "execute" and r["cell_id"] == "ai-slow0001"]
    assert slow["status"] == "timeout" and slow["recovery"] == recovery and slow["timeout"] == 3
    nb = json.loads((tmp_path / "nb.aiide.ipynb").read_text())
    (cell,) = [c for c in nb["cells"] if c["id"] == "ai-slow0001"]
    assert texts(cell["outputs"]) == f"{printed}\nExecutionTimeout"
    if recovery == "interrupted":  # replay runs it too, and it times out the same way
        code_, _, err = await aiide(
            "replay", "nb.aiide.trace.jsonl", "--config", str(cfg), cwd=tmp_path, timeout=120
        )
        assert code_ == 0 and "same (timed out)" in err, err


async def test_ctrl_c_keeps_the_running_cells_partial_output(
    tmp_path: Path, afake_anthropic: FakeAnthropic, afake_openai: object
) -> None:
    cfg = write_config(tmp_path, afake_anthropic.url, afake_openai.url)  # type: ignore[attr-defined]
    (tmp_path / "policy.json").write_text(AUTO)
    write_nb(tmp_path / "nb.ipynb")
    script(afake_anthropic, SLOW)
    code, err = await interrupt_when(
        cfg,
        tmp_path,
        lambda records: any(r.get("call_id") == "toolu_run1" for r in records),
        "the slow cell",  # its run_cell call announced
        settle=3,  # it has printed 'started'
    )
    assert code == 130, err
    trace = tmp_path / "nb.aiide.trace.jsonl"
    nb = json.loads((tmp_path / "nb.aiide.ipynb").read_text())
    (cell,) = [c for c in nb["cells"] if c["id"] == "ai-slow0001"]
    assert texts(cell["outputs"]).startswith("started\n[stopped (Ctrl-C)")
    (slow,) = [r for r in read_lines(trace) if r.get("cell_id") == "ai-slow0001"]
    assert slow["status"] == "interrupted" and texts(slow["outputs"]) == "started\n"
