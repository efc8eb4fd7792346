"""The corpus (``corpus.py``): ``jupyter aiide fix`` as a user runs it, a real sandboxed
kernel, the fake model scripted per notebook; every case ends verified or not verified for
its reason, with the attempts it should take. One command per group of cases (one process,
two notebooks at a time), run once for the module; each case is its own test."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from fakes import FakeAnthropic, Reply, ToolUse
from headless.runs import aiide, read_lines, replay_sync, write_config

from .corpus import CASES, GROUPS, Case, notebook, replies

pytestmark = [pytest.mark.asyncio, pytest.mark.xdist_group("fixloop")]

#: group -> (exit code, stderr, {case name: its JSON summary}), filled by the first test.
RESULTS: dict[str, tuple[int, str, dict[str, Any], Path]] = {}


def _script(fake: FakeAnthropic, case: Case) -> None:
    for r in replies(case):
        tools = [ToolUse(**t) for t in r.get("tools", [])]
        fake.push_for(case.name, Reply(text=r.get("text", ""), tools=tools))


async def _run_group(group: str, root: Path, fake: FakeAnthropic, openai_url: str) -> None:
    folder = root / group
    (folder / "out").mkdir(parents=True)
    cfg = write_config(folder, fake.url, openai_url)  # type: ignore[attr-defined]
    spec = GROUPS[group]
    (folder / "policy.json").write_text(json.dumps(spec["policy"]))
    cases = [c for c in CASES if c.group == group]
    names = []
    for case in cases:
        (folder / f"{case.name}.ipynb").write_text(json.dumps(notebook(case)))
        for name, text in case.files.items():
            (folder / name).write_text(text)
        _script(fake, case)
        names.append(f"{case.name}.ipynb")
    code, out, err = await aiide(
        "fix",
        *names,
        "-o",
        "out",
        "--policy",
        "policy.json",
        "--config",
        str(cfg),
        "--json",
        "--no-input",
        *spec["args"],
        cwd=folder,
        timeout=600,
    )
    try:
        rows = json.loads(out)
    except ValueError:
        pytest.fail(f"fix {group}: exit {code}, no JSON summary\n{out}\n{err}")
    by_case = {Path(r["notebook"]).stem: r for r in rows}
    RESULTS[group] = (code, err, by_case, folder)


@pytest_asyncio.fixture
async def corpus_results(
    tmp_path_factory: pytest.TempPathFactory, afake_anthropic: FakeAnthropic, afake_openai: Any
) -> dict[str, tuple[int, str, dict[str, Any], Path]]:
    """Every group's command, once for the module (later tests read what it left)."""
    if not RESULTS:
        root = tmp_path_factory.mktemp("corpus")
        groups = list(GROUPS)
        # two commands at a time: each runs its notebooks two at a time
        for i in range(0, len(groups), 2):
            await asyncio.gather(
                *(_run_group(g, root, afake_anthropic, afake_openai.url) for g in groups[i : i + 2])
            )
    return RESULTS


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_case_ends_as_expected(
    case: Case, corpus_results: dict[str, tuple[int, str, dict[str, Any], Path]]
) -> None:
    _, err, by_case, _ = corpus_results[case.group]
    row = by_case.get(case.name)
    assert row is not None, f"{case.name} missing from the summary:\n{err}"
    fix = row["fix"]
    assert fix is not None, row
    what = f"{case.name} ({case.why}): {fix['reason']}: {fix['message']}\n{err[-3000:]}"
    assert (fix["status"], fix["reason"]) == (case.status, case.reason), what
    assert len(fix["attempts"]) == case.attempts, what
    if case.results is not None:
        assert [a["result"] for a in fix["attempts"]] == case.results, what
    assert row["exit_code"] == (0 if case.status == "verified" else 6), what
    if case.error_cell:
        assert fix["error_cell"] == case.error_cell and fix["target"] == case.cell, what
    # the output notebook carries the loop's record and the last attempt's patch
    saved = json.loads(Path(row["output"]).read_text())
    record = saved["metadata"]["aiide"]["fix"]
    assert record["status"] == case.status and len(record["attempts"]) == case.attempts
    sources = {c["id"]: "".join(c["source"]) for c in saved["cells"]}
    for attempt in fix["attempts"]:
        for approval in attempt["approvals"]:  # every edit says who let it through
            assert approval["decision"] in ("auto", "approve", "deny"), attempt
            if approval["ok"]:
                assert approval["by"], attempt
    if case.status == "verified" and fix["attempts"]:
        last = fix["attempts"][-1]["patch"]
        assert last and all(sources[p["cell_id"]] == p["after"] for p in last), last
    # the trace has one record per attempt, and the result
    trace = read_lines(Path(row["trace"]))
    kinds = [r["type"] for r in trace]
    assert kinds.count("fix_attempt") == case.attempts and "fix_result" in kinds
    audited = [r["result"] for r in trace if r["type"] == "fix_attempt"]
    assert audited == [a["result"] for a in fix["attempts"]]


async def test_group_exit_codes(
    corpus_results: dict[str, tuple[int, str, dict[str, Any], Path]],
) -> None:
    """A command exits 0 only when every notebook it fixed was verified, else 6."""
    for group, (code, err, by_case, _) in corpus_results.items():
        expected = 0 if all(r["fix"]["status"] == "verified" for r in by_case.values()) else 6
        assert code == expected, f"{group}: exit {code}\n{err[-2000:]}"


@pytest.mark.parametrize("name", ["case08_fix_breaks_downstream", "case33_inserted_import"])
async def test_a_fix_trace_with_several_patches_replays(
    name: str, corpus_results: dict[str, tuple[int, str, dict[str, Any], Path]]
) -> None:
    """Every cell the loop ran (the broken ones, each attempt's) replays to the same
    outputs, without the model, as a ``run``'s trace does."""
    _, _, by_case, folder = corpus_results["main"]
    trace = Path(by_case[name]["trace"])
    code, err = await asyncio.to_thread(replay_sync, trace, folder / "aiide_config.json")
    assert code == 0 and " 0 differ" in err, err
