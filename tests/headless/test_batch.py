"""Batches: one failing run never takes down the others and still leaves its record;
``--skip-existing`` / ``--resume``; Ctrl-C stops the queue; ``--json`` with each run's
final answer, which the terminal shows too (brackets and all)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from agent.conftest import KEY, OAI_KEY
from fakes import FakeAnthropic, Reply

from .runs import CLI, aiide, provenance, read_lines, write_config, write_nb

pytestmark = [pytest.mark.asyncio, pytest.mark.xdist_group("headless")]

UNKNOWN_KERNEL = {"kernelspec": {"name": "no-such-kernel", "display_name": "gone"}}


async def test_a_run_whose_kernel_cannot_start_leaves_the_others_alone(
    tmp_path: Path, afake_anthropic: FakeAnthropic, afake_openai: Any
) -> None:
    cfg = write_config(tmp_path, afake_anthropic.url, afake_openai.url)
    write_nb(tmp_path / "a.ipynb", [("code", "# parameters\nn = 0")], **UNKNOWN_KERNEL)
    write_nb(tmp_path / "b.ipynb", [("code", "# parameters\nn = 0")])
    (tmp_path / "out").mkdir()
    afake_anthropic.default = Reply(text="n is [1] (see cell c0)")
    code, out, err = await aiide(
        "run",
        "a.ipynb",
        "b.ipynb",
        "--goal",
        "g",
        "-p",
        "n=1",
        "-o",
        "out",
        "--json",
        "--config",
        str(cfg),
        cwd=tmp_path,
        timeout=120,
    )
    assert code == 5, err
    assert "Traceback" not in err
    runs = {Path(r["notebook"]).name: r for r in json.loads(out)}
    assert runs["b.ipynb"]["exit_code"] == 0 and runs["b.ipynb"]["status"] == "completed"
    assert runs["b.ipynb"]["answer"] == "n is [1] (see cell c0)"
    assert "n is [1] (see cell c0)" in err  # shown, brackets and all
    assert runs["a.ipynb"]["exit_code"] == 5 and "no-such-kernel" in runs["a.ipynb"]["message"]
    done = provenance(tmp_path / "out" / "b.ipynb")
    assert done["exit_code"] == 0 and done["answer"] == "n is [1] (see cell c0)"
    failed = provenance(tmp_path / "out" / "a.ipynb")
    assert failed["exit_code"] == 5 and failed["status"] == "kernel_failed"
    assert read_lines(tmp_path / "out" / "a.trace.jsonl")[-1]["exit_code"] == 5


async def test_skip_existing_and_resume(
    tmp_path: Path, afake_anthropic: FakeAnthropic, afake_openai: Any
) -> None:
    cfg = write_config(tmp_path, afake_anthropic.url, afake_openai.url)
    write_nb(tmp_path / "nb.ipynb", [("code", "# parameters\nn = 0")])
    (tmp_path / "sets.json").write_text('[{"n": 1}, {"n": 2}]')
    (tmp_path / "out").mkdir()
    args = ["run", "nb.ipynb", "--goal", "g", "--param-sets", "sets.json", "-j", "1"]
    args += ["-o", "out", "--config", str(cfg), "--json"]
    afake_anthropic.push(
        Reply(text="first done"), Reply(status=400, error_type="invalid_request_error")
    )
    code, _, err = await aiide(*args, cwd=tmp_path, timeout=120)
    assert code == 4, err
    first = provenance(tmp_path / "out" / "nb-0.ipynb")
    unfinished = provenance(tmp_path / "out" / "nb-1.ipynb")
    assert first["exit_code"] == 0 and unfinished["exit_code"] == 4

    asked = len(afake_anthropic.requests)
    afake_anthropic.push(Reply(text="second done"))
    code, out, err = await aiide(*args, "--resume", cwd=tmp_path, timeout=120)
    assert code == 0, err
    assert len(afake_anthropic.requests) == asked + 1  # only the unfinished run ran
    runs = json.loads(out)
    assert [r["status"] for r in runs] == ["skipped", "completed"]
    assert runs[0]["answer"] == "first done" and runs[1]["answer"] == "second done"
    resumed = provenance(tmp_path / "out" / "nb-1.ipynb")
    assert resumed["resumed_from"]["run_id"] == unfinished["run_id"]
    kept = tmp_path / "out" / resumed["resumed_from"]["trace"]
    assert read_lines(kept)[-1]["exit_code"] == 4  # the unfinished run's trace is kept
    assert provenance(tmp_path / "out" / "nb-0.ipynb")["run_id"] == first["run_id"]

    code, out, err = await aiide(*args, "--skip-existing", cwd=tmp_path, timeout=120)
    assert code == 0, err
    assert len(afake_anthropic.requests) == asked + 1
    assert [r["status"] for r in json.loads(out)] == ["skipped", "skipped"]


async def test_ctrl_c_stops_the_queue(
    tmp_path: Path, afake_anthropic: FakeAnthropic, afake_openai: Any
) -> None:
    cfg = write_config(tmp_path, afake_anthropic.url, afake_openai.url)
    for name in ("a", "b", "c"):
        write_nb(tmp_path / f"{name}.ipynb")
    (tmp_path / "out").mkdir()
    afake_anthropic.default = Reply(text="thinking about it", stall_after=1)
    env = {
        **os.environ,
        "AIIDE_T_ANTHROPIC": KEY,
        "AIIDE_T_OPENAI": OAI_KEY,
        "JUPYTER_CONFIG_DIR": str(tmp_path / ".jupyter"),
    }
    args = ["run", "a.ipynb", "b.ipynb", "c.ipynb", "--goal", "g", "-j", "1", "-o", "out"]
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        "--config",
        str(cfg),
        cwd=tmp_path,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    trace = tmp_path / "out" / "a.trace.jsonl"
    try:
        for _ in range(2400):  # until the first run waits for its (hanging) model
            try:
                records = read_lines(trace) if trace.exists() else []
            except ValueError:
                records = []
            if any(r["type"] == "model_request" for r in records):
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the first run never called the model")
        pressed = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        took = time.monotonic() - pressed
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 130, err.decode()
    assert provenance(tmp_path / "out" / "a.ipynb")["status"] == "interrupted"
    assert not (tmp_path / "out" / "b.ipynb").exists()
    assert not (tmp_path / "out" / "c.ipynb").exists()
    assert took < 30, took  # not the queue's runs one after another
