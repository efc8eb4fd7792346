"""A headless run writes its output and nothing it was not asked to: the input notebook
(and every other notebook) is read-only to the agent's tools and to the kernel, files the
agent replaces are checkpointed first, and every file it wrote is in the provenance with
its sha256. The kernel works in the input's folder whatever ``-o`` says."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from fakes import FakeAnthropic, Reply, ToolUse

from aiide_server_ext.cli import main

from .runs import aiide, read_lines, run_with_policy, write_config, write_nb

pytestmark = pytest.mark.xdist_group("headless")

EVERYTHING_AUTO = '{"risk": {"medium": "auto", "high": "auto"}}'


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.asyncio
async def test_the_input_and_other_notebooks_are_never_written(
    tmp_path: Path, afake_anthropic: FakeAnthropic, afake_openai: object
) -> None:
    cfg = write_config(tmp_path, afake_anthropic.url, afake_openai.url)  # type: ignore[attr-defined]
    (tmp_path / "policy.json").write_text(EVERYTHING_AUTO)
    write_nb(tmp_path / "nb.ipynb", [("code", "# parameters\nn = 1")])
    write_nb(tmp_path / "earlier.aiide.ipynb", [("markdown", "an earlier run's result")])
    (tmp_path / "data.csv").write_text("0,0\n")
    untouched = {p: p.read_bytes() for p in tmp_path.glob("*.ipynb")}
    kernel_writes = "open('nb.ipynb', 'w').write('{}')"
    afake_anthropic.push(
        Reply(
            tools=[
                ToolUse("insert_cell", {"path": "nb.ipynb", "source": "x = 1"}, id="toolu_c1"),
                ToolUse("run_cell", {"path": "nb.ipynb", "cell_id": "c0"}, id="toolu_c2"),
                ToolUse(
                    "delete_cell", {"path": "earlier.aiide.ipynb", "cell_id": "c0"}, id="toolu_c3"
                ),
                ToolUse("write_file", {"path": "nb.ipynb", "content": "gone"}, id="toolu_c4"),
                ToolUse("write_file", {"path": "./NB.IPYNB", "content": "x"}, id="toolu_c5"),
                ToolUse("write_file", {"path": "data.csv", "content": "1,2\n"}, id="toolu_c6"),
                ToolUse("write_file", {"path": "new.txt", "content": "hello"}, id="toolu_c7"),
                ToolUse("execute_code", {"code": kernel_writes}, id="toolu_c8"),
                ToolUse("insert_cell", {"source": "y = 2"}, id="toolu_c9"),
            ]
        ),
        Reply(text="done"),
    )
    code, _, err = await run_with_policy(cfg, tmp_path)
    assert code == 0, err
    for path, data in untouched.items():
        assert path.read_bytes() == data, path
    trace = read_lines(tmp_path / "nb.aiide.trace.jsonl")
    results = {r["call_id"]: r for r in trace if r.get("event") == "tool_result"}
    codes = {k: (r["error"] or {}).get("code") for k, r in results.items()}
    assert codes["toolu_c1"] == codes["toolu_c2"] == codes["toolu_c3"] == "read_only_notebook"
    assert codes["toolu_c4"] == codes["toolu_c5"] == "protected_file"
    assert codes["toolu_c6"] is codes["toolu_c7"] is codes["toolu_c9"] is None
    # the kernel sees the input empty and read-only
    assert "Error" in results["toolu_c8"]["content"], results["toolu_c8"]

    assert (tmp_path / "data.csv").read_text() == "1,2\n"
    checkpoint = tmp_path / ".ipynb_checkpoints" / "data-checkpoint.csv"
    assert checkpoint.read_text() == "0,0\n"
    prov = json.loads((tmp_path / "nb.aiide.ipynb").read_text())["metadata"]["aiide"]
    written = {f["path"]: f for f in prov["files_written"]}
    assert set(written) == {"data.csv", "new.txt"}
    assert written["data.csv"]["sha256"] == sha256(tmp_path / "data.csv")
    assert written["data.csv"]["status"] == "modified"
    assert written["data.csv"]["checkpoint"] == ".ipynb_checkpoints/data-checkpoint.csv"
    assert written["new.txt"]["status"] == "created" and "checkpoint" not in written["new.txt"]
    assert prov["input_sha256"] == sha256(tmp_path / "nb.ipynb")
    assert prov["cells_written"] == 1
    assert trace[-1]["output_sha256"] == sha256(tmp_path / "nb.aiide.ipynb")
    # replay confines its kernel as the run did: the recorded write fails again
    code, _, err = await aiide("replay", "nb.aiide.trace.jsonl", "--config", str(cfg), cwd=tmp_path)
    assert code == 0 and " 0 differ" in err, err
    assert (tmp_path / "nb.ipynb").read_bytes() == untouched[tmp_path / "nb.ipynb"]


@pytest.mark.asyncio
async def test_the_kernel_works_in_the_inputs_folder_whatever_the_output(
    tmp_path: Path, afake_anthropic: FakeAnthropic, afake_openai: object
) -> None:
    cfg = write_config(tmp_path, afake_anthropic.url, afake_openai.url)  # type: ignore[attr-defined]
    (tmp_path / "study").mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "study" / "data.csv").write_text("4,2\n")
    write_nb(tmp_path / "study" / "nb.ipynb", [("code", "print(open('data.csv').read())")])
    earlier = write_nb(tmp_path / "results" / "nb.ipynb", [("markdown", "an earlier result")])
    before = earlier.read_bytes()
    afake_anthropic.push(
        Reply(tools=[ToolUse("list_cells", {}, id="toolu_l1")]), Reply(text="read")
    )
    code, _, err = await aiide(
        "run", "study/nb.ipynb", "--goal", "g", "-o", "results", "--config", str(cfg), cwd=tmp_path
    )
    assert code == 0, err
    result = json.loads(earlier.read_text())
    assert "".join(result["cells"][0]["outputs"][0]["text"]) == "4,2\n\n"
    prov = result["metadata"]["aiide"]
    assert prov["cwd"] == str(tmp_path / "study")
    # the output replaced an earlier file: its checkpoint holds it
    checkpoint = tmp_path / "results" / prov["replaced_checkpoint"]
    assert checkpoint.read_bytes() == before
    code, _, err = await aiide(
        "replay", "results/nb.trace.jsonl", "--config", str(cfg), cwd=tmp_path
    )
    assert code == 0 and "1 same, 0 differ" in err, err


@pytest.mark.parametrize("output", [".", "nb.ipynb", "./nb.ipynb"])
def test_an_output_that_is_the_input_is_refused(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    output: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    nb = write_nb(tmp_path / "nb.ipynb")
    before = nb.read_bytes()
    assert main(["run", "nb.ipynb", "--goal", "g", "-o", output]) == 2
    assert "would overwrite the input notebook" in capsys.readouterr().err
    assert nb.read_bytes() == before
