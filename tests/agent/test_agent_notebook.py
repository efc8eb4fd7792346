"""Notebook work over the real socket: bad tool calls answered to the model, the front-end
patch path, conflicts, a kernel dying mid-cell, and kernel state in the prompt."""

from __future__ import annotations

from typing import Any

import pytest
from fakes import FakeAnthropic, Reply, ToolUse

from .chat import connect
from .test_agent_chat import INSERT, NEW_CELL, read_notebook, write_notebook

pytestmark = pytest.mark.xdist_group("agent")


def tool_results(request_body: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        b
        for m in request_body["messages"]
        if m["role"] == "user"
        for b in m["content"]
        if b.get("type") == "tool_result"
    ]


async def test_bad_tool_calls_are_answered_to_the_model(
    jp_ws_fetch: Any, jp_root_dir: Any, fake_anthropic: FakeAnthropic
) -> None:
    write_notebook(jp_root_dir)
    fake_anthropic.push(
        Reply(
            tools=[
                ToolUse("read_cell", {"path": "nb.ipynb", "cell_id": 5}, id="toolu_bad"),
                ToolUse("fly_to_mars", {}, id="toolu_unknown"),
                ToolUse("read_cell", raw='{"path": "nb.ipynb", "cell_id": ', id="toolu_json"),
                ToolUse("read_cell", {"path": "nb.ipynb", "cell_id": "c1"}, id="toolu_good"),
            ]
        ),
        Reply(text="recovered"),
    )
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text="read it")
    done = await chat.until("run_finished")
    assert done["status"] == "completed" and done["text"] == "recovered"
    codes = {r["call_id"]: (r["error"] or {}).get("code") for r in chat.of("tool_result")}
    assert codes == {
        "toolu_bad": "validation_error",
        "toolu_unknown": "unknown_tool",
        "toolu_json": "invalid_json",
        "toolu_good": None,
    }
    seen = {r["tool_use_id"]: r for r in tool_results(fake_anthropic.requests[1].body)}
    assert seen["toolu_bad"]["is_error"] and "cell_id" in seen["toolu_bad"]["content"]
    assert "x = 6 * 7" in seen["toolu_good"]["content"]


async def test_patches_go_to_the_front_end_that_has_the_notebook_open(
    jp_ws_fetch: Any, jp_root_dir: Any, fake_anthropic: FakeAnthropic
) -> None:
    write_notebook(jp_root_dir)
    fake_anthropic.push(
        Reply(tools=[INSERT]),
        Reply(tools=[ToolUse("run_cell", {"path": "nb.ipynb", "cell_id": NEW_CELL})]),
        Reply(text="done"),
    )
    chat = await connect(jp_ws_fetch)
    await chat.send(type="notebook_open", path="nb.ipynb")
    await chat.send(type="chat", text="add and run")
    await chat.approve_next()
    patch = await chat.until("notebook_patch")
    assert patch["patch"]["ops"][0]["cell"]["id"] == NEW_CELL
    await chat.send(
        type="notebook_result",
        conversation_id=patch["conversation_id"],
        run_id=patch["run_id"],
        request_id=patch["request_id"],
        status="applied",
    )
    assert "open notebook" in (await chat.until("tool_result"))["content"]
    await chat.approve_next()
    run = await chat.until("notebook_execute")
    assert run["cell_id"] == NEW_CELL
    await chat.send(
        type="notebook_result",
        conversation_id=run["conversation_id"],
        run_id=run["run_id"],
        request_id=run["request_id"],
        status="ok",
        outputs=[{"output_type": "stream", "name": "stdout", "text": "84\n"}],
    )
    result = await chat.until("tool_result")
    assert result["ok"] and "84" in result["content"]
    assert (await chat.until("run_finished"))["status"] == "completed"
    assert [c.id for c in read_notebook(jp_root_dir).cells] == ["c1"]  # the browser owns the file


async def test_a_changed_cell_is_a_conflict_not_an_overwrite(
    jp_ws_fetch: Any, jp_root_dir: Any, fake_anthropic: FakeAnthropic
) -> None:
    write_notebook(jp_root_dir)
    fake_anthropic.push(
        Reply(
            tools=[
                ToolUse("replace_cell", {"path": "nb.ipynb", "cell_id": "c1", "source": "x = 0"})
            ]
        ),
        Reply(text="ok"),
    )
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text="change it")
    ask = await chat.until("approval_required")
    assert ask["patch"]["ops"][0]["expected_source"] == "x = 6 * 7"
    write_notebook(jp_root_dir, cells=[("c1", "x = 'edited by the user'")])
    await chat.decide(ask)
    result = await chat.until("tool_result")
    assert result["error"]["code"] == "conflict"
    await chat.until("run_finished")
    assert read_notebook(jp_root_dir).cells[0].source == "x = 'edited by the user'"


async def test_a_kernel_dying_mid_cell_is_reported(
    jp_ws_fetch: Any, jp_root_dir: Any, fake_anthropic: FakeAnthropic
) -> None:
    write_notebook(jp_root_dir, cells=[("c1", "import os\nos._exit(1)")])
    fake_anthropic.push(
        Reply(tools=[ToolUse("run_cell", {"path": "nb.ipynb", "cell_id": "c1"})]),
        Reply(text="it died"),
    )
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text="run it")
    await chat.approve_next()
    result = await chat.until("tool_result", timeout=60)
    assert result["error"]["code"] == "kernel_died"
    assert (await chat.until("run_finished"))["status"] == "completed"
    assert read_notebook(jp_root_dir).cells[0].source == "import os\nos._exit(1)"


async def test_kernel_state_and_cells_are_in_the_prompt(
    jp_ws_fetch: Any, jp_root_dir: Any, fake_anthropic: FakeAnthropic
) -> None:
    write_notebook(jp_root_dir)
    fake_anthropic.push(
        Reply(
            tools=[
                ToolUse(
                    "execute_code",
                    {"path": "nb.ipynb", "code": "x = 6 * 7\nname = 'ada'\nclass Frame:\n    pass"},
                )
            ]
        ),
        Reply(text="ran"),
        Reply(text="x is 42"),
    )
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text="run setup")
    await chat.approve_next()
    first = await chat.until("run_finished", timeout=60)
    await chat.send(
        type="chat",
        text="what is x?",
        conversation_id=first["conversation_id"],
        context={"notebook": "nb.ipynb"},
    )
    context = await chat.until("context")
    kinds = {i["kind"] for i in context["items"]}
    assert {"system", "tools", "notebook", "kernel", "question", "history"} <= kinds
    await chat.until("run_finished")
    prompt = fake_anthropic.requests[-1].body["messages"][-1]["content"][0]["text"]
    assert "x: int = 42" in prompt and "name: str len 3 = 'ada'" in prompt
    assert "Frame" not in prompt.split("<kernel_state>")[1]  # classes are not variables
    # Named as the user sees it (position), with the id the tools take.
    assert "[cell 1 · code · id c1]\nx = 6 * 7" in prompt
    # The agent's own code and the state reads are not notebook cells: not counted.
    assert "The kernel has run no notebook cell since it (re)started." in prompt


class StubKnowledge:
    """The knowledge part's service contract: ``search(caller, query, k)``."""

    def __init__(self) -> None:
        self.queries: list[tuple[str, str]] = []

    async def search(self, caller: Any, query: str, k: int = 8) -> list[dict[str, Any]]:
        self.queries.append((caller.username, query))
        return [{"path": "notes.md", "citation": "notes.md:3-4", "text": "Prices are in cents."}]


async def test_knowledge_passages_and_search_tool(
    jp_ws_fetch: Any, jp_serverapp: Any, fake_anthropic: FakeAnthropic
) -> None:
    stub = StubKnowledge()
    [ext] = jp_serverapp.extension_manager.extension_apps["aiide_server_ext"]
    ext.settings["aiide_knowledge"] = stub  # where the knowledge part puts its service
    fake_anthropic.push(
        Reply(tools=[ToolUse("search_knowledge", {"query": "price units"})]), Reply(text="cents")
    )
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text="what unit are prices in?")
    result = await chat.until("tool_result")
    assert result["ok"] and "[notes.md:3-4]" in result["content"], result["content"]
    assert [(c["path"], c["label"]) for c in result["citations"]] == [("notes.md", "notes.md:3-4")]
    await chat.until("run_finished")
    first = fake_anthropic.requests[0].body
    assert "<knowledge>" in first["messages"][0]["content"][0]["text"]
    assert "search_knowledge" in {t["name"] for t in first["tools"]}
    assert stub.queries[0][1] == "what unit are prices in?"
    [passage] = [i for i in chat.of("context")[0]["items"] if i["kind"] == "knowledge"]
    assert passage["ref"] == "notes.md:3-4" and passage["citation"]["path"] == "notes.md"


async def test_no_knowledge_part_means_no_search_tool(
    jp_ws_fetch: Any, fake_anthropic: FakeAnthropic
) -> None:
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text="hi")
    await chat.until("run_finished")
    assert "search_knowledge" not in {t["name"] for t in fake_anthropic.requests[0].body["tools"]}


async def test_a_front_end_leaving_before_it_answers_keeps_the_run_consistent(
    jp_ws_fetch: Any, jp_root_dir: Any, fake_anthropic: FakeAnthropic
) -> None:
    """The patch went to a browser that closed before acknowledging: whether it applied
    the edit is unknown, so the server does not write the file behind a document that may
    still be open elsewhere; the model is told (``frontend_gone``), the run goes on and
    ends normally, and a late answer for the abandoned request is refused."""
    write_notebook(jp_root_dir)
    fake_anthropic.push(Reply(tools=[INSERT]), Reply(text="I will re-read it."))
    browser = await connect(jp_ws_fetch)
    await browser.send(type="notebook_open", path="nb.ipynb")
    await browser.send(type="chat", text="add a cell")
    await browser.approve_next()
    patch = await browser.until("notebook_patch")
    cid = patch["conversation_id"]
    watcher = await connect(jp_ws_fetch)
    await watcher.send(type="resume", conversation_id=cid, after_seq=patch["seq"])
    watcher.last_seq[cid] = patch["seq"]  # the checker proves no gap and no repeat after it
    await watcher.until("resumed")
    browser.ws.close()  # gone without a notebook_result

    result = await watcher.until("tool_result")
    assert result["call_id"] == INSERT.id and not result["ok"]
    assert result["error"]["code"] == "frontend_gone"
    done = await watcher.until("run_finished")
    assert done["status"] == "completed" and done["text"] == "I will re-read it."
    # The model saw the outcome as an error it can act on, in the very next request.
    [told] = [r for r in tool_results(fake_anthropic.requests[1].body)]
    assert told["tool_use_id"] == INSERT.id and told["is_error"]
    assert "went away" in str(told["content"])
    # Nothing was half-written: the file is as it was, and no request is left waiting.
    assert [c.id for c in read_notebook(jp_root_dir).cells] == ["c1"]
    await watcher.send(
        type="notebook_result",
        id="late",
        conversation_id=cid,
        run_id=patch["run_id"],
        request_id=patch["request_id"],
        status="applied",
    )
    late = await watcher.until("error", reply_to="late")
    assert late["code"] == "unknown_request"
    # The conversation's record agrees with what was streamed.
    tool_events = [e for e in watcher.received if e["type"] in ("tool_result", "run_finished")]
    assert [e["type"] for e in tool_events] == ["tool_result", "run_finished"]
