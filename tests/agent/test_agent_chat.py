"""The chat socket end to end: a real Jupyter server, the fakes as model providers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fakes import FakeAnthropic, Reply, ToolUse

from .chat import connect

pytestmark = pytest.mark.xdist_group("agent")


async def test_plain_chat_streams_tokens_and_finishes(
    jp_ws_fetch: Any, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.push(Reply(text="Hello from the fake model", input_tokens=50, output_tokens=6))
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", id="m1", text="hi", task="chat")
    started = await chat.until("run_started")
    assert started["reply_to"] == "m1" and started["model"] == "claude"
    done = await chat.until("run_finished")
    assert done["status"] == "completed" and done["text"] == "Hello from the fake model"
    assert chat.text(started["run_id"]) == "Hello from the fake model"
    assert done["usage"]["input_tokens"] == 50 and done["usage"]["model_calls"] == 1
    assert fake_anthropic.requests[0].body["messages"][-1]["content"][-1]["text"] == "hi"


def write_notebook(
    root: Any, name: str = "nb.ipynb", cells: list[tuple[str, str]] | None = None
) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    for cid, source in cells or [("c1", "x = 6 * 7")]:
        cell = nbformat.v4.new_code_cell(source)
        cell.id = cid
        nb.cells.append(cell)
    nbformat.write(nb, str(root / name))


def read_notebook(root: Any, name: str = "nb.ipynb") -> Any:
    import nbformat

    return nbformat.read(str(root / name), as_version=4)


INSERT = ToolUse(
    "insert_cell",
    {"path": "nb.ipynb", "after_id": "c1", "source": "print(6 * 7 * 2)"},
    id="toolu_0000insert",
)
NEW_CELL = "ai-00insert"


async def test_agent_inserts_a_cell_runs_it_in_the_sandbox_and_answers(
    jp_ws_fetch: Any, jp_root_dir: Any, fake_anthropic: FakeAnthropic
) -> None:
    write_notebook(jp_root_dir)
    fake_anthropic.push(
        Reply(text="I'll add a cell.", tools=[INSERT]),
        Reply(tools=[ToolUse("run_cell", {"cell_id": NEW_CELL}, id="toolu_00000run")]),
        Reply(text="The cell printed 84."),
    )
    chat = await connect(jp_ws_fetch)
    await chat.send(
        type="chat",
        text="double x in a new cell and run it",
        context={"notebook": "nb.ipynb", "cell_id": "c1"},
    )
    ask = await chat.until("approval_required")
    assert ask["name"] == "insert_cell" and ask["risk"] == "edit"
    op = ask["patch"]["ops"][0]
    assert op == {
        "op": "insert",
        "after_id": "c1",
        "cell": {"id": NEW_CELL, "cell_type": "code", "source": "print(6 * 7 * 2)"},
    }
    assert [c.id for c in read_notebook(jp_root_dir).cells] == ["c1"]  # nothing before approval
    await chat.decide(ask)
    inserted = await chat.until("tool_result", call_id="toolu_0000insert")
    assert inserted["ok"], inserted
    ask = await chat.until("approval_required", name="run_cell")
    await chat.decide(ask)
    ran = await chat.until("tool_result", call_id="toolu_00000run", timeout=90)
    assert ran["ok"] and "84" in ran["content"], ran
    assert ran["outputs"][0]["text"] == "84\n"
    done = await chat.until("run_finished")
    assert done["status"] == "completed" and done["text"] == "The cell printed 84."
    assert done["usage"]["model_calls"] == 3 and done["usage"]["tool_calls"] == 2
    nb = read_notebook(jp_root_dir)
    assert [c.id for c in nb.cells] == ["c1", NEW_CELL]
    assert nb.cells[1].outputs[0]["text"] == "84\n"
    # The model saw the notebook in its first prompt, and each tool's result after.
    first = fake_anthropic.requests[0].body
    assert "x = 6 * 7" in first["messages"][0]["content"][0]["text"]
    last = fake_anthropic.requests[2].body["messages"]
    results = [
        b
        for m in last
        if m["role"] == "user"
        for b in m["content"]
        if b.get("type") == "tool_result"
    ]
    assert "84" in results[-1]["content"]
    assert {e["type"] for e in chat.received} >= {
        "run_started",
        "context",
        "token",
        "tool_call",
        "approval_required",
        "approval_resolved",
        "tool_result",
        "run_finished",
    }


@pytest.mark.agent_config(ToolPolicy={"max_steps": 2})
async def test_per_run_limits_stop_a_looping_model(
    jp_ws_fetch: Any, jp_root_dir: Any, fake_anthropic: FakeAnthropic
) -> None:
    write_notebook(jp_root_dir)
    fake_anthropic.default = Reply(tools=[ToolUse("list_cells", {"path": "nb.ipynb"})])
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text="loop")
    error = await chat.until("error")
    assert error["code"] == "limit_exceeded" and "2 steps" in error["message"]
    done = await chat.until("run_finished")
    assert done["status"] == "failed" and done["usage"]["steps"] == 2
    # The transcript stays valid for the next turn: every tool_use got its tool_result.
    fake_anthropic.default = Reply(text="fine")
    await chat.send(type="chat", text="stop", conversation_id=done["conversation_id"])
    assert (await chat.until("run_finished"))["status"] == "completed"
    roles = [m["role"] for m in fake_anthropic.requests[-1].body["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user"]


@pytest.mark.agent_config(ContextBuilder={"history_budget": 30})
async def test_old_turns_are_summarised_over_the_budget(
    jp_ws_fetch: Any, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.push(
        Reply(text="first answer " + "x" * 400),
        Reply(text="SUMMARY: they said hi"),
        Reply(text="second answer"),
    )
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text="hello there", task="chat")
    first = await chat.until("run_finished")
    await chat.send(
        type="chat", text="and now?", task="chat", conversation_id=first["conversation_id"]
    )
    notice = await chat.until("notice")
    assert notice["code"] == "summarised"
    assert (await chat.until("run_finished"))["text"] == "second answer"
    summarise, answer = fake_anthropic.requests[1].body, fake_anthropic.requests[2].body
    assert "hello there" in summarise["messages"][0]["content"] and "tools" not in summarise
    assert "SUMMARY: they said hi" in answer["messages"][0]["content"][0]["text"]
    assert all("x" * 400 not in json.dumps(m) for m in answer["messages"])


async def test_context_budget_follows_the_models_reported_token_counts(
    jp_ws_fetch: Any, jp_root_dir: Any, fake_anthropic: FakeAnthropic
) -> None:
    """A model whose provider counts many more tokens than the estimate gets less context
    next time: the budget is in its tokens, not in 4-character estimates."""
    cells = [(f"c{i}", f"v{i} = '{i}'  # " + "z" * 1500) for i in range(10)]
    write_notebook(jp_root_dir, cells=cells)  # ~4,000 estimated tokens: under the budget
    fake_anthropic.push(Reply(text="one", input_tokens=100_000), Reply(text="two"))
    chat = await connect(jp_ws_fetch)
    context = {"notebook": "nb.ipynb", "cell_id": "c9"}
    for text in ("first", "second"):
        await chat.send(type="chat", text=text, task="chat", context=context)
        await chat.until("run_finished")
    first, second = chat.of("context")
    assert first["budget"] == second["budget"] == 6000
    sent = [json.dumps(r.body["messages"]) for r in fake_anthropic.requests]
    assert all(f"v{i} = " in sent[0] for i in range(10))  # all of it, uncalibrated
    # 100,000 tokens for ~17,000 characters: 1.5 characters a token at most (the clamp),
    # so 6,000 tokens now hold ~9,000 characters: the cells nearest the cursor only.
    kept = [i for i in range(10) if f"v{i} = " in sent[1]]
    assert 0 < len(kept) < 10 and 9 in kept
    assert second["tokens"] <= 6000 < sum(i["tokens"] for i in first["items"]) * 4 / 1.5


async def test_a_full_disk_refuses_a_new_chat_with_store_unavailable(
    jp_ws_fetch: Any, jp_serverapp: Any, fake_anthropic: FakeAnthropic
) -> None:
    """sqlite's own error (here: no page left) is the store failing, said as such."""
    store = jp_serverapp.web_app.settings["aiide_agent"].store
    store.flush()
    raw = store.db.raw
    raw.execute(f"PRAGMA max_page_count = {raw.execute('PRAGMA page_count').fetchone()[0]}")
    chat = await connect(jp_ws_fetch)
    try:
        await chat.send(type="chat", id="m1", text="x" * 200_000, task="chat")
        error = await chat.until("error")
    finally:
        raw.execute("PRAGMA max_page_count = 1073741823")
    assert error["code"] == "store_unavailable" and error["reply_to"] == "m1"
    assert "full" in error["message"] and fake_anthropic.requests == []
    fake_anthropic.push(Reply(text="Back"))
    await chat.send(type="chat", id="m2", text="hi", task="chat")
    done = await chat.until("run_finished")
    assert done["status"] == "completed" and done["text"] == "Back"
