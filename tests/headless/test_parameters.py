"""Parameters mean what papermill makes them mean: the notebook's defaults, the injected
values over them, the rest of the notebook, in that order before the agent starts; a model
that re-runs the defaults does not reset them. Checked against papermill itself, run on the
same notebook with the same parameters."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeAnthropic, Reply, ToolUse

from .runs import AUTO, aiide, read_lines, run_with_policy, write_config, write_nb

pytestmark = [pytest.mark.asyncio, pytest.mark.xdist_group("headless")]

CELLS = [
    ("markdown", "# Sampling"),
    ("code", "# parameters\nn = 100\nseed = 0\nscale = 1.0"),
    (
        "code",
        "import random\nrandom.seed(seed)\nxs = [random.gauss(0, scale) for _ in range(n)]\n"
        "print(f'mean {sum(xs) / n:.4f}')",
    ),
    ("code", "print(n, seed, scale)"),
]


def text_of(cell: dict[str, Any]) -> str:
    return "".join(
        "".join(o["text"]) if isinstance(o["text"], list) else o["text"]
        for o in cell.get("outputs", [])
        if o.get("output_type") == "stream"
    )


async def papermill(tmp_path: Path, source: Path, params: dict[str, Any]) -> dict[str, Any]:
    out = tmp_path / "papermill.ipynb"
    args = [str(source), str(out), "-k", "python3", "--language", "python", "--no-progress-bar"]
    for k, v in params.items():
        args += ["-p", k, str(v)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "papermill",
        *args,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    return dict(json.loads(out.read_text()))


async def test_parameters_match_papermill_even_when_the_model_reruns_the_defaults(
    tmp_path: Path, afake_anthropic: FakeAnthropic, afake_openai: object
) -> None:
    cfg = write_config(tmp_path, afake_anthropic.url, afake_openai.url)  # type: ignore[attr-defined]
    (tmp_path / "policy.json").write_text(AUTO)
    source = write_nb(tmp_path / "nb.ipynb", CELLS)
    expected = await papermill(tmp_path, source, {"n": 500, "seed": 7})
    # A model that runs the notebook in order: the defaults first, then the sampling.
    afake_anthropic.push(
        Reply(tools=[ToolUse("run_cell", {"cell_id": "c1"}, id="toolu_p1")]),
        Reply(tools=[ToolUse("run_cell", {"cell_id": "c2"}, id="toolu_p2")]),
        Reply(
            tools=[
                ToolUse(
                    "replace_cell",
                    {"cell_id": "aiide-params", "source": "n = 1"},
                    id="toolu_p3",
                )
            ]
        ),
        Reply(text="The mean is printed."),
    )
    code, _, err = await run_with_policy(
        cfg, tmp_path, "-p", "n=500", "-p", "seed=7", goal="print the mean"
    )
    assert code == 0, err
    result = json.loads((tmp_path / "nb.aiide.ipynb").read_text())
    ours = {c["id"]: c for c in result["cells"]}
    theirs = {c["id"]: c for c in expected["cells"]}
    assert text_of(theirs["c2"]).startswith("mean ")
    assert text_of(ours["c2"]) == text_of(theirs["c2"])  # the same sample, the same mean
    assert text_of(ours["c3"]) == text_of(theirs["c3"]) == "500 7 1.0\n"  # defaults kept
    prov = result["metadata"]["aiide"]
    assert prov["parameters"] == {"n": 500, "seed": 7}
    assert prov["parameters_used"] == {"n": "500", "seed": "7", "scale": "1.0"}
    assert "parameters_at_end" not in prov  # the re-run defaults did not win

    trace = read_lines(tmp_path / "nb.aiide.trace.jsonl")
    ran = [r["cell_id"] for r in trace if r["type"] == "execute"]
    assert ran == ["c1", "aiide-params", "c2", "c3", "c1", "aiide-params", "c2"]
    results = {r["call_id"]: r for r in trace if r.get("event") == "tool_result"}
    assert results["toolu_p3"]["error"]["code"] == "read_only_cell"
    code, _, err = await aiide("replay", "nb.aiide.trace.jsonl", "--config", str(cfg), cwd=tmp_path)
    assert code == 0 and "7 same, 0 differ" in err, err


async def test_a_failing_cell_stops_the_preparation_and_the_agent_is_told(
    tmp_path: Path, afake_anthropic: FakeAnthropic, afake_openai: object
) -> None:
    cfg = write_config(tmp_path, afake_anthropic.url, afake_openai.url)  # type: ignore[attr-defined]
    write_nb(tmp_path / "nb.ipynb", [("code", "x = 1"), ("code", "1 / 0"), ("code", "y = 2")])
    afake_anthropic.push(Reply(text="I see the error."))
    code, _, err = await aiide(
        "run", "nb.ipynb", "--goal", "fix", "--config", str(cfg), cwd=tmp_path
    )
    assert code == 0, err
    trace = read_lines(tmp_path / "nb.aiide.trace.jsonl")
    assert [r["cell_id"] for r in trace if r["type"] == "execute"] == ["c0", "c1"]
    (prepared,) = [r for r in trace if r["type"] == "prepared"]
    assert prepared["failed"] == "c1"
    question = afake_anthropic.requests[-1].body["messages"][0]["content"]
    assert "Cell c1 failed (ZeroDivisionError" in json.dumps(question)
