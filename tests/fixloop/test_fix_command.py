"""``jupyter aiide fix`` beyond the corpus: bad input gets a clear error and exit 2, Ctrl-C
stops the loop within one step (the kernel interrupted, not left running), and a fix's
trace replays like a ``run``'s."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest
from fakes import FakeAnthropic, Reply, ToolUse
from headless.runs import CLI, _env, aiide, read_lines, replay_sync, write_config, write_nb

pytestmark = [pytest.mark.asyncio, pytest.mark.xdist_group("fixloop")]
APPROVE = '{"approvals": {"default": "approve"}}'


def _setup(tmp_path: Path, fake: FakeAnthropic, openai: object, cells: list[str]) -> Path:
    cfg = write_config(tmp_path, fake.url, openai.url)  # type: ignore[attr-defined]
    (tmp_path / "policy.json").write_text(APPROVE)
    write_nb(tmp_path / "nb.ipynb", [("code", c) for c in cells])
    return cfg


async def fix(cfg: Path, cwd: Path, *extra: str) -> tuple[int, str, str]:
    return await aiide(
        "fix", "nb.ipynb", "--policy", "policy.json", "--config", str(cfg), *extra, cwd=cwd
    )


async def test_bad_input_is_refused_with_a_clear_error(
    tmp_path: Path, afake_anthropic: FakeAnthropic, afake_openai: object
) -> None:
    cfg = _setup(tmp_path, afake_anthropic, afake_openai, ["x = 1"])
    code, _, err = await fix(cfg, tmp_path, "--max-attempts", "0")
    assert code == 2 and "--max-attempts must be at least 1" in err
    code, _, err = await aiide("fix", "missing.ipynb", "--config", str(cfg), cwd=tmp_path)
    assert code == 2 and "no notebook 'missing.ipynb'" in err
    (tmp_path / "broken.ipynb").write_text("{not json")
    code, _, err = await aiide("fix", "broken.ipynb", "--config", str(cfg), cwd=tmp_path)
    assert code == 2, err
    code, out, err = await fix(cfg, tmp_path, "--cell", "nope", "--json")
    assert code == 2, err
    row = json.loads(out)[0]
    assert row["fix"]["reason"] == "bad_input" and "no code cell 'nope'" in row["fix"]["message"]
    assert not afake_anthropic.requests  # the model was never asked


async def test_ctrl_c_stops_the_loop_and_interrupts_the_kernel(
    tmp_path: Path, afake_anthropic: FakeAnthropic, afake_openai: object
) -> None:
    cfg = _setup(
        tmp_path,
        afake_anthropic,
        afake_openai,
        ["import time\nopen('started', 'w').close()\ntime.sleep(600)", "print(1)"],
    )
    args = ["fix", "nb.ipynb", "--policy", "policy.json", "--config", str(cfg)]
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        cwd=tmp_path,
        env=_env(tmp_path),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    trace = tmp_path / "nb.aiide.trace.jsonl"
    try:
        for _ in range(2400):  # the kernel is up and sleeping in the first cell
            if (tmp_path / "started").exists():
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the first cell never started")
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 60)  # not the cell's 600 s
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 130, err.decode()
    records = read_lines(trace)
    result = next(r for r in records if r["type"] == "fix_result")
    assert result["reason"] == "cancelled" and result["status"] == "not_verified"
    ran = [r for r in records if r["type"] == "execute"]
    assert ran and ran[0]["cell_id"] == "c0"  # it was running, and was interrupted
    assert "KeyboardInterrupt" in json.dumps(ran[0]["outputs"]), ran[0]
    assert all(r["cell_id"] != "c1" for r in ran)  # nothing ran after the cancel
    assert not afake_anthropic.requests


async def test_a_fix_trace_replays_to_the_same_outputs(
    tmp_path: Path, afake_anthropic: FakeAnthropic, afake_openai: object
) -> None:
    cells = ["rate = 0.5\nunits = 4", "print('unrelated')", "print(rat * units)"]
    cfg = _setup(tmp_path, afake_anthropic, afake_openai, cells)
    afake_anthropic.push(
        Reply(tools=[ToolUse("replace_cell", {"cell_id": "c2", "source": "print(rate * units)"})]),
        Reply(text="Renamed rat to rate."),
    )
    code, _, err = await fix(cfg, tmp_path, "-o", "fixed.ipynb")
    assert code == 0, err
    # the diagnosis: the traceback, the cell it depends on by name (not the one before
    # it), and the live state of the names involved
    prompt = json.dumps(afake_anthropic.requests[0].body["messages"])
    assert "NameError" in prompt and "name 'rat' is not defined" in prompt
    assert "[cell c0, defines what it uses]" in prompt and "[cell c1," not in prompt
    assert "units: int = 4" in prompt and "rate: float = 0.5" in prompt
    saved = json.loads((tmp_path / "fixed.ipynb").read_text())
    assert "".join(saved["cells"][2]["outputs"][0]["text"]) == "2.0\n"
    record = saved["metadata"]["aiide"]["fix"]
    assert record["status"] == "verified" and record["attempts"][0]["approvals"][0]["by"]
    code, err = replay_sync(tmp_path / "fixed.trace.jsonl", cfg)
    assert code == 0 and " 0 differ" in err, err
