"""Approvals over the real socket: reject with a reason, expiry, decisions that come too
late or twice, edited arguments."""

from __future__ import annotations

from typing import Any

import pytest
from fakes import FakeAnthropic, Reply, ToolUse

from .chat import Chat, connect
from .test_agent_chat import INSERT, read_notebook, write_notebook

pytestmark = pytest.mark.xdist_group("agent")


async def ask_insert(
    jp_ws_fetch: Any, root: Any, fake: FakeAnthropic, *after: Reply
) -> tuple[Chat, dict[str, Any]]:
    write_notebook(root)
    fake.push(Reply(tools=[INSERT]), *after)
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text="add a cell", context={"notebook": "nb.ipynb"})
    return chat, await chat.until("approval_required")


async def test_reject_with_reason_reaches_the_model(
    jp_ws_fetch: Any, jp_root_dir: Any, fake_anthropic: FakeAnthropic
) -> None:
    chat, ask = await ask_insert(
        jp_ws_fetch, jp_root_dir, fake_anthropic, Reply(text="OK, I won't.")
    )
    await chat.decide(ask, "reject", reason="use seaborn instead")
    resolved = await chat.until("approval_resolved")
    assert resolved["decision"] == "reject" and resolved["reason"] == "use seaborn instead"
    result = await chat.until("tool_result")
    assert not result["ok"] and result["error"]["code"] == "rejected"
    done = await chat.until("run_finished")
    assert done["status"] == "completed"
    tool_results = [
        b
        for m in fake_anthropic.requests[1].body["messages"]
        for b in m["content"]
        if isinstance(b, dict) and b.get("type") == "tool_result"
    ]
    assert "use seaborn instead" in tool_results[0]["content"] and tool_results[0]["is_error"]
    assert [c.id for c in read_notebook(jp_root_dir).cells] == ["c1"]


@pytest.mark.agent_config(approval_timeout=0.5)
async def test_unanswered_approval_expires(
    jp_ws_fetch: Any, jp_root_dir: Any, fake_anthropic: FakeAnthropic
) -> None:
    chat, ask = await ask_insert(jp_ws_fetch, jp_root_dir, fake_anthropic)
    resolved = await chat.until("approval_resolved", timeout=10)
    assert resolved["decision"] == "expired"
    error = await chat.until("error")
    assert error["code"] == "approval_expired" and error["run_id"] == ask["run_id"]
    assert (await chat.until("run_finished"))["status"] == "expired"
    await chat.decide(ask)
    late = await chat.until("error")
    assert late["code"] == "run_not_active" and late["seq"] is None
    assert [c.id for c in read_notebook(jp_root_dir).cells] == ["c1"]


async def test_second_decision_and_unknown_ids_are_refused(
    jp_ws_fetch: Any, jp_root_dir: Any, fake_anthropic: FakeAnthropic
) -> None:
    # The next step waits too, so the first call's decision is checked while the run is live.
    chat, ask = await ask_insert(
        jp_ws_fetch,
        jp_root_dir,
        fake_anthropic,
        Reply(tools=[ToolUse("delete_cell", {"path": "nb.ipynb", "cell_id": "c1"})]),
    )
    await chat.decide(ask, "approve", id="a1")
    await chat.until("approval_required", name="delete_cell")
    await chat.decide(ask, "reject", id="a2")
    assert (await chat.until("error", reply_to="a2"))["code"] == "already_decided"
    await chat.decide(ask, "approve", id="a3", call_id="toolu_nope")
    assert (await chat.until("error", reply_to="a3"))["code"] == "unknown_call"
    await chat.decide(ask, "approve", id="a4", run_id="run_nope")
    assert (await chat.until("error", reply_to="a4"))["code"] == "unknown_run"
    await chat.send(type="cancel", id="a5", conversation_id="cv_nope", run_id=ask["run_id"])
    assert (await chat.until("error", reply_to="a5"))["code"] == "unknown_run"
    await chat.send(type="resume", id="a6", conversation_id="cv_nope", after_seq=0)
    assert (await chat.until("error", reply_to="a6"))["code"] == "unknown_conversation"
    await chat.send(type="chat", id="a7", conversation_id="cv_nope", text="hi")
    assert (await chat.until("error", reply_to="a7"))["code"] == "unknown_conversation"
    await chat.send(type="chat", id="a8", conversation_id=ask["conversation_id"], text="hi")
    assert (await chat.until("error", reply_to="a8"))["code"] == "run_active"
    await chat.send(type="cancel", conversation_id=ask["conversation_id"], run_id=ask["run_id"])
    assert (await chat.until("run_finished"))["status"] == "cancelled"


async def test_approval_may_edit_the_arguments(
    jp_ws_fetch: Any, jp_root_dir: Any, fake_anthropic: FakeAnthropic
) -> None:
    chat, ask = await ask_insert(jp_ws_fetch, jp_root_dir, fake_anthropic, Reply(text="done"))
    await chat.decide(ask, id="bad", arguments={"path": "nb.ipynb", "source": 42})
    assert (await chat.until("error", reply_to="bad"))["code"] == "bad_arguments"
    edited = {"path": "nb.ipynb", "after_id": "c1", "source": "print('edited')"}
    await chat.decide(ask, "approve", arguments=edited)
    assert (await chat.until("tool_result"))["ok"]
    await chat.until("run_finished")
    assert read_notebook(jp_root_dir).cells[1].source == "print('edited')"
