"""``jupyter aiide run``: the agent adds and runs cells in a sandboxed kernel, the output
notebook carries provenance, and the trace replays to the same outputs without the model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import FakeAnthropic, Reply, ToolUse

from .runs import AUTO, aiide, read_lines, write_config, write_nb

pytestmark = [pytest.mark.asyncio, pytest.mark.xdist_group("headless")]


def script_add_and_run(fake: FakeAnthropic, code: str) -> None:
    fake.push(
        Reply(
            tools=[ToolUse("insert_cell", {"after_id": "c0", "source": code}, id="toolu_add00001")]
        ),
        Reply(tools=[ToolUse("run_cell", {"cell_id": "ai-add00001"}, id="toolu_run1")]),
        Reply(text="Done: the answer is printed."),
    )


async def test_run_adds_and_runs_cells_with_provenance_and_replays(
    tmp_path: Path, afake_anthropic: FakeAnthropic, afake_openai: object
) -> None:
    cfg = write_config(tmp_path, afake_anthropic.url, afake_openai.url)  # type: ignore[attr-defined]
    (tmp_path / "policy.json").write_text(AUTO)
    write_nb(tmp_path / "nb.ipynb", [("markdown", "# Analysis"), ("code", "# parameters\nn = 1")])
    script_add_and_run(afake_anthropic, "print(n * 21)")
    code, out, err = await aiide(
        "run",
        "nb.ipynb",
        "--goal",
        "print n*21",
        "--policy",
        "policy.json",
        "--config",
        str(cfg),
        "-p",
        "n=2",
        "-o",
        "out.ipynb",
        cwd=tmp_path,
    )
    assert code == 0, err
    assert out.strip().endswith("out.ipynb")
    result = json.loads((tmp_path / "out.ipynb").read_text())
    prov = result["metadata"]["aiide"]
    assert prov["goal"] == "print n*21" and prov["model"] == "claude"
    assert prov["provider"] == "anthropic" and prov["status"] == "completed"
    assert prov["usage"]["steps"] == 3 and prov["usage"]["input_tokens"] > 0
    assert prov["parameters"] == {"n": 2} and prov["started"] <= prov["finished"]
    cells = {c["id"]: c for c in result["cells"]}
    added = cells["ai-add00001"]
    assert added["metadata"]["aiide"] == {"run_id": prov["run_id"], "agent": "inserted"}
    assert "".join(added["outputs"][0]["text"]) == "42\n"
    assert "aiide" not in cells["c0"]["metadata"]
    assert (tmp_path / "nb.ipynb").read_text().count("aiide") == 0  # input untouched

    trace = read_lines(tmp_path / "out.trace.jsonl")
    kinds = [r["type"] for r in trace]
    assert kinds[0] == "header" and kinds[-1] == "end"
    assert len([r for r in trace if r["type"] == "model_request"]) == 3
    assert all(len(r["prompt_sha256"]) == 64 for r in trace if r["type"] == "model_request")
    executed = [r for r in trace if r["type"] == "execute"]
    assert [e["cell_id"] for e in executed] == ["c1", "aiide-params", "ai-add00001"]

    requests = len(afake_anthropic.requests)
    (tmp_path / "out.ipynb").rename(tmp_path / "elsewhere.ipynb")  # the trace is enough
    code, _, err = await aiide(
        "replay", "out.trace.jsonl", "-o", "replayed.ipynb", "--config", str(cfg), cwd=tmp_path
    )
    assert code == 0, err
    assert "3 same, 0 differ" in err
    assert len(afake_anthropic.requests) == requests  # no model
    again = json.loads((tmp_path / "replayed.ipynb").read_text())
    replayed = {c["id"]: c for c in again["cells"]}
    assert "".join(replayed["ai-add00001"]["outputs"][0]["text"]) == "42\n"
    assert [c["id"] for c in again["cells"]] == [c["id"] for c in result["cells"]]
    assert again["metadata"]["aiide"]["run_id"] == prov["run_id"]


@pytest.mark.replay(exit_code=1, reason="the cell prints a fresh random number each time")
async def test_replay_shows_what_was_expected_and_what_came_for_a_step_that_differs(
    tmp_path: Path, afake_anthropic: FakeAnthropic, afake_openai: object
) -> None:
    cfg = write_config(tmp_path, afake_anthropic.url, afake_openai.url)  # type: ignore[attr-defined]
    (tmp_path / "policy.json").write_text(AUTO)
    write_nb(tmp_path / "nb.ipynb")
    script_add_and_run(afake_anthropic, "import random\nprint('draw', random.random())")
    args = ["--policy", "policy.json", "--config", str(cfg)]
    code, _, err = await aiide("run", "nb.ipynb", "--goal", "draw", *args, cwd=tmp_path)
    assert code == 0, err
    trace = read_lines(tmp_path / "nb.aiide.trace.jsonl")
    (step,) = [r for r in trace if r["type"] == "execute" and r["cell_id"] == "ai-add00001"]
    drawn = "".join(step["outputs"][0]["text"]).strip()
    code, _, err = await aiide("replay", "nb.aiide.trace.jsonl", "--config", str(cfg), cwd=tmp_path)
    assert code == 1 and "1/1 ai-add00001: differs" in err, err
    expected = next(line for line in err.splitlines() if "expected:" in line)
    actual = next(line for line in err.splitlines() if "actual:" in line)
    assert drawn in expected and "draw 0." in actual and drawn not in actual
    assert "1 same, 0 differ" not in err and "0 same, 1 differ" in err


async def test_a_looping_goal_stops_at_max_steps_saves_and_exits_3(
    tmp_path: Path, afake_anthropic: FakeAnthropic, afake_openai: object
) -> None:
    cfg = write_config(tmp_path, afake_anthropic.url, afake_openai.url)  # type: ignore[attr-defined]
    write_nb(tmp_path / "nb.ipynb")
    afake_anthropic.default = Reply(tools=[ToolUse("list_cells", {})])
    code, _, err = await aiide(
        "run", "nb.ipynb", "--goal", "loop", "--max-steps", "2", "--config", str(cfg), cwd=tmp_path
    )
    assert code == 3, err
    assert "limit of 2 steps" in err
    prov = json.loads((tmp_path / "nb.aiide.ipynb").read_text())["metadata"]["aiide"]
    assert prov["exit_code"] == 3 and prov["usage"]["steps"] == 2
    assert read_lines(tmp_path / "nb.aiide.trace.jsonl")[-1]["exit_code"] == 3
    code, _, err = await aiide("run", "nb.ipynb", "--goal", "again", cwd=tmp_path)
    assert code == 2 and "exists" in err  # nothing overwritten without -o / --inplace


async def test_approvals_follow_the_policy_file(
    tmp_path: Path, afake_anthropic: FakeAnthropic, afake_openai: object
) -> None:
    cfg = write_config(tmp_path, afake_anthropic.url, afake_openai.url)  # type: ignore[attr-defined]
    write_nb(tmp_path / "nb.ipynb")
    (tmp_path / "p.json").write_text(
        '{"approvals": {"insert_cell": "reject"}, "tools": {"write_file": "deny"}}'
    )
    afake_anthropic.push(
        Reply(tools=[ToolUse("insert_cell", {"source": "1"}, id="toolu_a1")]),
        Reply(tools=[ToolUse("write_file", {"path": "x.txt", "content": "x"}, id="toolu_w1")]),
        Reply(tools=[ToolUse("replace_cell", {"cell_id": "c0", "source": "2"}, id="toolu_r1")]),
    )
    code, _, err = await aiide(
        "run", "nb.ipynb", "--goal", "g", "--policy", "p.json", "--config", str(cfg), cwd=tmp_path
    )
    assert code == 3, err  # replace_cell needs an answer and there is no terminal
    assert "no terminal" in err
    trace = read_lines(tmp_path / "nb.aiide.trace.jsonl")
    answers = {r["call_id"]: r["decision"] for r in trace if r["type"] == "approval"}
    assert answers == {"toolu_a1": "reject", "toolu_r1": "stop"}
    results = {r["call_id"]: r for r in trace if r.get("event") == "tool_result"}
    assert results["toolu_w1"]["error"]["code"] == "denied"
    assert not (tmp_path / "x.txt").exists()


async def test_model_failure_exits_4(
    tmp_path: Path, afake_anthropic: FakeAnthropic, afake_openai: object
) -> None:
    cfg = write_config(tmp_path, afake_anthropic.url, afake_openai.url)  # type: ignore[attr-defined]
    write_nb(tmp_path / "nb.ipynb")
    afake_anthropic.push(Reply(status=400, error_type="invalid_request_error"))
    code, _, err = await aiide("run", "nb.ipynb", "--goal", "g", "--config", str(cfg), cwd=tmp_path)
    assert code == 4, err
    assert (tmp_path / "nb.aiide.ipynb").exists()


async def test_batch_over_parameter_sets_with_a_summary(
    tmp_path: Path, afake_anthropic: FakeAnthropic, afake_openai: object
) -> None:
    cfg = write_config(tmp_path, afake_anthropic.url, afake_openai.url)  # type: ignore[attr-defined]
    write_nb(tmp_path / "a.ipynb", [("code", "# parameters\nn = 1")])
    write_nb(tmp_path / "b.ipynb")
    (tmp_path / "sets.json").write_text('[{"n": 1}, {"n": 2}]')
    (tmp_path / "out").mkdir()
    afake_anthropic.default = Reply(text="nothing to do")
    code, _, err = await aiide(
        "run",
        "a.ipynb",
        "b.ipynb",
        "--goal",
        "g",
        "--param-sets",
        "sets.json",
        "-j",
        "2",
        "-o",
        "out",
        "--config",
        str(cfg),
        cwd=tmp_path,
        timeout=120,
    )
    assert code == 0, err
    names = sorted(p.name for p in (tmp_path / "out").glob("*.ipynb"))
    assert names == ["a-0.ipynb", "a-1.ipynb", "b-0.ipynb", "b-1.ipynb"]
    assert "aiide run" in err and err.count("completed") >= 4
    params = json.loads((tmp_path / "out" / "a-1.ipynb").read_text())["cells"][1]
    assert "n = 2" in "".join(params["source"])
