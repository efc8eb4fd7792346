"""Plain classes without a server: policy, store, context rendering, history cuts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aiide_server_ext.agent.context import (
    ContextBuilder,
    kernel_runs_note,
    split_history,
    tokens,
)
from aiide_server_ext.agent.history import merge
from aiide_server_ext.agent.store import Store
from aiide_server_ext.agent.tool_policy import ToolPolicy
from aiide_server_ext.agent.tools import TOOLS
from aiide_server_ext.seams import Caller

STUDENT = Caller("s", roles=frozenset({"student"}))
ADA = Caller("ada")


@pytest.mark.parametrize(
    ("tool", "caller", "action"),
    [
        ("read_cell", ADA, "auto"),
        ("insert_cell", ADA, "approve"),
        ("run_cell", ADA, "approve"),
        ("delete_cell", ADA, "approve"),
        ("write_file", ADA, "approve"),
        ("read_cell", STUDENT, "auto"),
        ("insert_cell", STUDENT, "approve"),
        ("delete_cell", STUDENT, "deny"),
        ("write_file", STUDENT, "deny"),
    ],
)
def test_default_policy(tool: str, caller: Caller, action: str) -> None:
    assert ToolPolicy().decide(TOOLS[tool], {}, caller).action == action


def test_network_enabled_execution_is_network_risk() -> None:
    decision = ToolPolicy().decide(TOOLS["execute_code"], {"code": "1"}, STUDENT, network=True)
    assert (decision.risk, decision.action) == ("network", "deny")


def test_risk_says_what_the_tool_does() -> None:
    """The approval card's badge: read < edit < run < write < network, not one MEDIUM."""
    risk = {name: ToolPolicy().decide(TOOLS[name], {}, ADA).risk for name in TOOLS}
    assert [risk["read_cell"], risk["insert_cell"], risk["run_cell"], risk["write_file"]] == [
        "read",
        "edit",
        "run",
        "write",
    ]
    assert risk["list_files"] == risk["search_knowledge"] == "read"
    assert risk["replace_cell"] == "edit" and risk["execute_code"] == "run"


def test_a_role_table_may_name_a_risk_over_its_tier() -> None:
    policy = ToolPolicy(roles={"*": {"medium": "approve", "run": "auto"}})
    assert policy.decide(TOOLS["run_cell"], {}, ADA).action == "auto"
    assert policy.decide(TOOLS["insert_cell"], {}, ADA).action == "approve"


def test_safety_fence_denies_whatever_the_role() -> None:
    policy = ToolPolicy(roles={"*": {"low": "auto", "medium": "auto", "high": "auto"}})
    decision = policy.decide(
        TOOLS["execute_code"], {"code": "import os; os.system('rm -rf /')"}, ADA
    )
    assert decision.action == "deny" and "safety fence" in decision.reason
    assert policy.decide(TOOLS["execute_code"], {"code": "print(1)"}, ADA).action == "auto"


def test_strictest_role_wins() -> None:
    both = Caller("x", roles=frozenset({"student"}), groups=frozenset({"staff"}))
    policy = ToolPolicy(roles={"student": {"high": "deny"}, "staff": {"high": "auto"}, "*": {}})
    assert policy.decide(TOOLS["delete_cell"], {}, both).action == "deny"


def test_limits() -> None:
    policy = ToolPolicy(max_steps=3, max_tool_calls=5, max_tokens=100)
    assert policy.over_limit(2, 5, 99) is None
    assert "3 steps" in (policy.over_limit(3, 0, 0) or "")
    assert "5 tool calls" in (policy.over_limit(0, 6, 0) or "")
    assert "100 tokens" in (policy.over_limit(0, 0, 100) or "")


def test_store_survives_reopen_and_keeps_seq(tmp_path: Path) -> None:
    path = str(tmp_path / "a.sqlite")
    store = Store(path)
    store.create_conversation("cv", "ada", "hello")
    for _ in range(3):
        seq = store.next_seq("cv")
        store.append_event("cv", seq, json.dumps({"seq": seq}))
    store.append_turn("cv", "user", "hi", "run")
    store.put_run("run", "cv", "awaiting_approval", {"id": "run", "created": 1})
    store.flush()
    store.db.close()  # no clean close: as after a kill
    again = Store(path)
    assert again.next_seq("cv") == 4
    assert [json.loads(e)["seq"] for e in again.events_after("cv", 1)] == [2, 3]
    assert again.turns("cv")[0]["content"] == "hi"
    assert again.runs_in(("awaiting_approval",))[0]["id"] == "run"
    assert again.conversation("cv", "bob") is None
    assert (tmp_path / "a.sqlite").stat().st_mode & 0o777 == 0o600


def cell(cid: str, source: str, outputs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "id": cid,
        "cell_type": "code",
        "source": source,
        "outputs": outputs or [],
        "execution_count": 1,
    }


def test_cells_near_the_cursor_come_first_under_the_budget() -> None:
    nb = {"cells": [cell(f"c{i}", f"value_{i} = {'x' * 200}") for i in range(10)]}
    text = ContextBuilder().render_notebook("n.ipynb", nb, "c5", budget=200)
    assert "[cell 6 · code · id c5 · In [1]]" in text
    assert "[cell 5 · code · id c4 · In [1]]" in text and "[cell 7 · code · id c6" in text
    assert "id c0 " not in text and "cells not shown" in text
    assert tokens(text) < 260


def test_outputs_are_truncated_but_errors_kept_in_full() -> None:
    trace = (
        ["Traceback:"]
        + [f"  line {i}" for i in range(50)]
        + ["ZeroDivisionError: division by zero"]
    )
    c = cell(
        "c1",
        "1/0",
        [
            {"output_type": "stream", "name": "stdout", "text": "y" * 5000},
            {
                "output_type": "error",
                "ename": "ZeroDivisionError",
                "evalue": "division by zero",
                "traceback": trace,
            },
            {"output_type": "display_data", "data": {"image/png": "AAAA"}, "metadata": {}},
        ],
    )
    text = ContextBuilder(max_output_chars=100).render_cell(c, 1)
    assert text.count("y") < 120 and "[image/png output]" in text
    assert "line 0" in text and "ZeroDivisionError: division by zero" in text


def test_the_model_is_told_when_outputs_predate_the_kernel() -> None:
    """After a restart the outputs stay and the variables do not (issue 19, finding 6)."""
    nb = {
        "cells": [dict(cell(f"c{i}", "x = 1"), execution_count=n) for i, n in enumerate([3, 1, 4])]
    }
    fresh = kernel_runs_note(nb, 0)
    assert "has run no notebook cell since it (re)started" in fresh
    assert "Cells 1, 2, 3 show outputs of an earlier kernel session" in fresh
    after_one = kernel_runs_note(nb, 1)
    assert "has run 1 notebook cell since" in after_one and "Cells 1, 3 show outputs" in after_one
    assert "earlier kernel session" not in kernel_runs_note(nb, 4)


def test_history_cut_never_splits_a_tool_call_from_its_result() -> None:
    turns = [
        {"idx": 0, "role": "user", "content": "q1 " + "x" * 400},
        {
            "idx": 1,
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t", "name": "n", "input": {}}],
        },
        {
            "idx": 2,
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t", "content": "r" * 400}],
        },
        {"idx": 3, "role": "assistant", "content": "a1"},
        {"idx": 4, "role": "user", "content": "q2"},
        {"idx": 5, "role": "assistant", "content": "a2"},
    ]
    assert split_history(turns, 10_000) == 0
    assert split_history(turns, 50) == 4
    assert split_history(turns, 1) == 6


def test_merge_joins_same_role_turns() -> None:
    merged = merge(
        [
            {"role": "user", "content": "a"},
            {"role": "user", "content": [{"type": "text", "text": "b"}]},
            {"role": "assistant", "content": ""},
            {"role": "assistant", "content": "c"},
        ]
    )
    assert merged == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "c"}]},
    ]


def test_tool_definitions_are_small() -> None:
    from aiide_server_ext.agent.tools import definitions

    assert tokens(json.dumps(definitions())) < 1100


def test_server_start_imports_nothing_heavy(tmp_path: Path) -> None:
    """The agent's share of server start: its modules and an empty store, no SDKs.
    (How long that takes is measured by benchmarks/server_start.py, not asserted.)"""
    import subprocess
    import sys

    code = f"""
import sys
import jupyter_server.base.handlers, traitlets  # loaded by the server anyway
import aiide_server_ext.agent.part, aiide_server_ext.agent.service, aiide_server_ext.agent.handlers
from aiide_server_ext.agent.store import Store
Store({str(tmp_path / "s.sqlite")!r})
print(sorted(m for m in ("anthropic", "httpx", "jsonschema") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_calibration_learns_characters_per_token_per_model() -> None:
    from aiide_server_ext.agent.calibration import Calibration

    cal = Calibration(weight=0.5, min_chars=100)
    assert cal.to_estimate("m", 6000) == 6000  # nothing reported yet: the estimate stands
    cal.observe("m", 3000, 1000)  # 3 characters a token: denser than the estimate
    assert cal.chars_per_token("m") == 3.0 and cal.chars_per_token("other") == 4.0
    assert cal.to_estimate("m", 6000) == 4500  # 6000 of its tokens = 18000 characters
    assert cal.from_estimate("m", 4500) == 6000
    cal.observe("m", 5000, 1000)  # moves halfway towards the new sample
    assert cal.chars_per_token("m") == 4.0
    cal.observe("m", 50, 1)  # too small to say anything
    cal.observe("m", 10_000, 0)  # no count reported
    assert cal.chars_per_token("m") == 4.0
    cal.observe("n", 100_000, 1)  # absurd: clamped, never trusted blindly
    assert cal.chars_per_token("n") == cal.high


def test_a_run_round_trips_through_its_json() -> None:
    import json
    from dataclasses import asdict

    from aiide_server_ext.agent.runs import Call, Run

    run = Run("run_1", "cv_1", "ada", "agent", {"username": "ada"}, ["m"], {"notebook": "a"}, 0)
    run.calls = [Call("t1", "insert_cell", {"path": "a.ipynb"}, status="awaiting")]
    data = json.loads(json.dumps(run.to_json()))
    assert data == asdict(run) and Run.from_json(data) == run


def test_every_agent_trait_is_a_field_of_the_agent_config() -> None:
    """A new ``c.Agent`` option reaches the server, headless runs and stdio MCP through
    ``AgentConfig`` alone: a trait it does not carry would be read nowhere."""
    import dataclasses

    from aiide_server_ext.agent.config import Agent, AgentConfig

    traits = set(Agent.class_own_traits(config=True))
    fields = {f.name for f in dataclasses.fields(AgentConfig)} - {"network"}
    assert traits == fields


def test_a_caller_round_trips_through_its_dict() -> None:
    caller = Caller(
        username="ann",
        scopes=frozenset({"chat", "agent:run"}),
        groups=frozenset({"class"}),
        roles=frozenset({"student"}),
        extra={"via": "apikey", "credential_id": "k1"},
    )
    data = json.loads(json.dumps(caller.to_dict()))
    assert data["credential"] == "apikey:k1"  # kept: that key may not approve the run
    assert Caller.from_dict(data) == caller
    assert Caller.from_dict(data).credential == ""  # restored as its user, not its key


def test_event_frames_are_the_same_json_through_orjson_or_json() -> None:
    """Events are serialised by orjson (a dependency: a missing one fails here) and read
    back exactly as json wrote them; what orjson refuses still goes out through json."""
    from aiide_server_ext.agent import fanout

    assert fanout._orjson_dumps is not None
    token = {"type": "token", "run_id": "r", "seq": 3, "ts": 1765130000.123, "text": 'é "x"\n\t'}
    text = fanout.dumps(token)
    assert text == json.dumps(token, separators=(",", ":"), ensure_ascii=False)
    # non-string keys, a 70-bit integer and a lone surrogate: orjson refuses, json does not
    for odd in ({"a": {1: "x"}}, {"n": 2**70}, {"t": "\ud800"}):
        assert fanout.dumps(odd) == json.dumps(odd, separators=(",", ":"), ensure_ascii=False)
