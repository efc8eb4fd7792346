"""The reproducibility record: the model that answered each step as the provider reports
it, ``--model`` pinned (fallback only with ``--allow-fallback``), temperature, the kernel's
environment, seeds, cost; ``jupyter aiide diff`` and a citable ``export``."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeAnthropic, Reply, ToolUse

from .runs import aiide, provenance, read_lines, write_config, write_nb

pytestmark = [pytest.mark.asyncio, pytest.mark.xdist_group("headless")]

OVERLOADED = Reply(status=529, error_type="overloaded_error")


async def test_model_is_pinned_unless_fallback_is_allowed(
    tmp_path: Path, afake_anthropic: FakeAnthropic, afake_openai: Any
) -> None:
    cfg = write_config(tmp_path, afake_anthropic.url, afake_openai.url)
    write_nb(tmp_path / "nb.ipynb")
    afake_anthropic.default = OVERLOADED
    args = ["run", "nb.ipynb", "--goal", "g", "--model", "claude", "--config", str(cfg)]
    code, _, err = await aiide(*args, "-o", "pinned.ipynb", cwd=tmp_path)
    assert code == 4, err
    prov = provenance(tmp_path / "pinned.ipynb")
    assert prov["model_requested"] == "claude" and prov["models"] == []
    assert not prov["fallback_allowed"]
    assert not [r for r in afake_openai.requests if "chat" in r.path]  # no other model

    code, _, err = await aiide(*args, "--allow-fallback", "-o", "fell.ipynb", cwd=tmp_path)
    assert code == 0, err
    prov = provenance(tmp_path / "fell.ipynb")
    assert prov["model"] == "local" and prov["provider"] == "local"  # what answered
    assert prov["model_requested"] == "claude" and prov["fallback_allowed"]
    (used,) = prov["models"]
    assert used["reported_model"] == "llama-test" and used["steps"] == 1


async def test_the_record_diff_and_export(
    tmp_path: Path, afake_anthropic: FakeAnthropic, afake_openai: Any
) -> None:
    cfg = write_config(tmp_path, afake_anthropic.url, afake_openai.url)
    config = json.loads(cfg.read_text())
    prices = {"claude-test": {"input_per_mtok": 3, "output_per_mtok": 15}}
    config["Gateway"] = {"model_prices": prices}
    cfg.write_text(json.dumps(config))
    (tmp_path / "policy.json").write_text('{"risk": {"medium": "auto"}}')
    write_nb(
        tmp_path / "nb.ipynb",
        [
            ("code", "# parameters\nseed = 0"),
            ("code", "import random\nrandom.seed(seed)\nprint(random.random())"),
        ],
    )
    for seed in (1, 2):
        afake_anthropic.push(
            Reply(tools=[ToolUse("list_cells", {}, id=f"toolu_l{seed}")]),
            Reply(text=f"done {seed}"),
        )
        code, _, err = await aiide(
            "run",
            "nb.ipynb",
            "--goal",
            "g",
            "-p",
            f"seed={seed}",
            "--temperature",
            "0",
            "--policy",
            "policy.json",
            "-o",
            f"run{seed}.ipynb",
            "--config",
            str(cfg),
            cwd=tmp_path,
        )
        assert code == 0, err
    assert afake_anthropic.requests[-1].body["temperature"] == 0
    prov = provenance(tmp_path / "run1.ipynb")
    assert prov["temperature"] == 0 and prov["seeds"] == {"seed": "1"}
    assert [s["reported_model"] for s in prov["model_steps"]] == ["claude-test"] * 2
    assert all(s["response_id"] for s in prov["model_steps"])
    assert prov["cost"] > 0
    env = prov["environment"]
    assert env["python"].split()[0].count(".") == 2 and "ipykernel" in env["packages"]
    trace = read_lines(tmp_path / "run1.trace.jsonl")
    assert len([r for r in trace if r["type"] == "model_response"]) == 2

    code, out, err = await aiide("diff", "run1.ipynb", "run2.ipynb", "--json", cwd=tmp_path)
    assert code == 1, err
    what = {row["what"] for row in json.loads(out)}
    assert {"parameters", "parameters_used", "cell c1 outputs"} <= what
    assert not any(w.startswith("package") for w in what)
    code, _, err = await aiide("diff", "run1.ipynb", "run1.ipynb", cwd=tmp_path)
    assert code == 0 and "the runs agree" in err

    code, out, err = await aiide("export", "run1.ipynb", "-o", "run1.zip", cwd=tmp_path)
    assert code == 0, err
    archive = tmp_path / "run1.zip"
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert (tmp_path / "run1.zip.sha256").read_text().split()[0] == digest
    assert out.split()[0] == digest
    with zipfile.ZipFile(archive) as z:
        manifest = json.loads(z.read("manifest.json"))
        assert set(manifest["files"]) == {"run1.ipynb", "run1.trace.jsonl", "record.json"}
        for name, sha in manifest["files"].items():
            assert hashlib.sha256(z.read(name)).hexdigest() == sha
        assert json.loads(z.read("record.json"))["run_id"] == prov["run_id"]
