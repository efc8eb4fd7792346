"""``jupyter aiide run`` stopped by Ctrl-C (exit 130, partial work saved with provenance)
and a kernel that dies under the agent (exit 5)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from fakes import FakeAnthropic, Reply, ToolUse

from .runs import (
    AUTO,
    aiide,
    interrupt_when,
    read_lines,
    run_with_policy,
    write_config,
    write_nb,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.xdist_group("headless")]


async def test_ctrl_c_saves_the_partial_work_and_exits_130(
    tmp_path: Path, afake_anthropic: FakeAnthropic, afake_openai: object
) -> None:
    cfg = write_config(tmp_path, afake_anthropic.url, afake_openai.url)  # type: ignore[attr-defined]
    (tmp_path / "policy.json").write_text(AUTO)
    write_nb(tmp_path / "nb.ipynb")
    afake_anthropic.push(
        Reply(tools=[ToolUse("insert_cell", {"source": "y = 1"}, id="toolu_ins00001")]),
        Reply(text="still thinking about it", stall_after=1),  # the model hangs mid-answer
    )
    code, err = await interrupt_when(
        cfg,
        tmp_path,
        lambda records: len([r for r in records if r["type"] == "model_request"]) >= 2,
        "its second model call",  # under way: it hangs
    )
    assert code == 130, err
    trace = tmp_path / "nb.aiide.trace.jsonl"
    nb = json.loads((tmp_path / "nb.aiide.ipynb").read_text())
    prov = nb["metadata"]["aiide"]
    assert prov["status"] == "interrupted" and prov["exit_code"] == 130
    inserted = [c for c in nb["cells"] if c.get("metadata", {}).get("aiide")]
    assert ["".join(c["source"]) for c in inserted] == ["y = 1"]
    end = read_lines(trace)[-1]
    assert end["type"] == "end" and end["exit_code"] == 130


@pytest.mark.replay(exit_code=5, reason="the recorded cell kills its kernel: so does replay")
async def test_a_kernel_that_dies_exits_5(
    tmp_path: Path, afake_anthropic: FakeAnthropic, afake_openai: object
) -> None:
    cfg = write_config(tmp_path, afake_anthropic.url, afake_openai.url)  # type: ignore[attr-defined]
    (tmp_path / "policy.json").write_text(AUTO)
    write_nb(tmp_path / "nb.ipynb")
    afake_anthropic.push(
        Reply(
            tools=[
                ToolUse("insert_cell", {"source": "import os\nos._exit(1)"}, id="toolu_die00001")
            ]
        ),
        Reply(tools=[ToolUse("run_cell", {"cell_id": "ai-die00001"}, id="toolu_run1")]),
        Reply(text="The kernel died."),
    )
    code, _, err = await run_with_policy(cfg, tmp_path)
    assert code == 5, err
    prov = json.loads((tmp_path / "nb.aiide.ipynb").read_text())["metadata"]["aiide"]
    assert prov["exit_code"] == 5 and prov["cells_written"]
    assert prov["status"] == "kernel_failed"  # not "completed", whatever the model said
    # the terminal says so too: the run's line ends on its outcome, not the model's word
    assert "kernel_failed (exit 5)" in err and "completed" not in err, err


async def test_a_headless_run_uses_a_configured_mcp_servers_tools(
    tmp_path: Path, afake_anthropic: FakeAnthropic, afake_openai: object
) -> None:
    peer = str(Path(__file__).parents[1] / "mcp" / "mcp_peer.py")
    servers = {
        # the longest the run may wait for it (a loaded machine starts Python slowly)
        "peer": {
            "command": sys.executable,
            "args": [peer, "stdio", "ok"],
            "risk": "low",
            "timeout": 60,
        },
        "gone": {"command": "/nonexistent/mcp-server"},
    }
    openai_url: str = afake_openai.url  # type: ignore[attr-defined]
    cfg = write_config(tmp_path, afake_anthropic.url, openai_url, mcp_servers=servers)
    write_nb(tmp_path / "nb.ipynb")
    afake_anthropic.push(
        Reply(tools=[ToolUse("mcp__peer__add", {"a": 40, "b": 2}, id="toolu_mcp1")]),
        Reply(text="42"),
    )
    code, _, err = await aiide("run", "nb.ipynb", "--goal", "g", "--config", str(cfg), cwd=tmp_path)
    assert code == 0, err
    trace = read_lines(tmp_path / "nb.aiide.trace.jsonl")
    (result,) = [r for r in trace if r.get("event") == "tool_result"]
    assert result["ok"] and result["content"] == "42"
    notices = [r for r in trace if r["type"] == "notice"]
    assert notices and "gone" in notices[0]["message"]


SLOW_PEER_UP = (
    "import os, time\n"
    "for _ in range(600):  # until the slow MCP server serves (a minute at most)\n"
    "    if os.path.exists('slow-peer.ready'):\n"
    "        break\n"
    "    time.sleep(0.1)\n"
    "time.sleep(1)\n"
    "print('up')"
)


async def test_a_hanging_mcp_server_is_reported_and_a_slow_one_joins_the_run(
    tmp_path: Path, afake_anthropic: FakeAnthropic, afake_openai: object
) -> None:
    """The run starts without waiting for a server that hangs (reported as unavailable
    before the first model call), and a healthy server slower to start than its timeout
    (a loaded machine) is not skipped: its tools join the steps after it answers."""
    peer = str(Path(__file__).parents[1] / "mcp" / "mcp_peer.py")
    servers = {
        "stuck": {"command": sys.executable, "args": [peer, "stdio", "hang"], "timeout": 1},
        "slow": {
            "command": sys.executable,
            "args": [peer, "stdio", "slow"],
            "timeout": 1,
            "risk": "low",
            "cwd": str(tmp_path),
        },
    }
    openai_url: str = afake_openai.url  # type: ignore[attr-defined]
    cfg = write_config(tmp_path, afake_anthropic.url, openai_url, mcp_servers=servers)
    (tmp_path / "policy.json").write_text(AUTO)
    write_nb(tmp_path / "nb.ipynb")
    afake_anthropic.push(
        Reply(tools=[ToolUse("execute_code", {"code": SLOW_PEER_UP}, id="toolu_wait")]),
        Reply(tools=[ToolUse("mcp__slow__add", {"a": 40, "b": 2}, id="toolu_mcp1")]),
        Reply(text="42"),
    )
    code, _, err = await run_with_policy(cfg, tmp_path, timeout=180)
    assert code == 0, err
    trace = read_lines(tmp_path / "nb.aiide.trace.jsonl")
    kinds = [r["type"] for r in trace]
    (stuck,) = [r for r in trace if r["type"] == "notice" and "stuck" in r["message"]]
    assert "unavailable" in stuck["message"] and "no answer within 1s" in stuck["message"]
    assert trace.index(stuck) < kinds.index("model_request")  # told as the run starts
    assert "stuck is unavailable" in err  # and on the terminal
    (result,) = [
        r for r in trace if r.get("event") == "tool_result" and r["call_id"] == "toolu_mcp1"
    ]
    assert result["ok"] and result["content"] == "42"
    offered = [{t["name"] for t in r.body.get("tools", [])} for r in afake_anthropic.requests]
    assert "mcp__slow__add" in offered[1] and "mcp__slow__add" in offered[2]
    assert not any(name.startswith("mcp__stuck") for names in offered for name in names)
