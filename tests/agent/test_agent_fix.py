"""The fix loop over the chat socket (the lab's "Fix this error"): a ``fix`` frame, each
attempt a run of the conversation with its approval card, ``fix_attempt`` and
``fix_finished`` events that replay, a patch that breaks a downstream cell caught and
tried again, cancel within one step, and bad frames refused."""

from __future__ import annotations

from typing import Any

import pytest
from fakes import FakeAnthropic, Reply, ToolUse

from .chat import check, connect
from .test_agent_chat import read_notebook, write_notebook

pytestmark = pytest.mark.xdist_group("agent")

CELLS = [("c1", "total = 40"), ("c2", "result = totl + 2"), ("c3", "print(result * 2)")]


def replace(cell_id: str, source: str, n: int) -> ToolUse:
    return ToolUse(
        "replace_cell",
        {"path": "nb.ipynb", "cell_id": cell_id, "source": source},
        id=f"toolu_fix{n:09d}",
    )


async def test_a_fix_is_approved_rerun_and_verified(
    jp_ws_fetch: Any, jp_root_dir: Any, fake_anthropic: FakeAnthropic, jp_serverapp: Any
) -> None:
    write_notebook(jp_root_dir, cells=CELLS)
    fake_anthropic.push(Reply(tools=[replace("c2", "result = total + 2", 1)]), Reply(text="ok"))
    chat = await connect(jp_ws_fetch)
    await chat.send(type="fix", id="f1", path="nb.ipynb", cell_id="c2")
    started = await chat.until("fix_started")
    assert started["reply_to"] == "f1" and started["run_id"].startswith("fix_")
    ask = await chat.approve_next()
    assert ask["name"] == "replace_cell" and ask["run_id"] != started["run_id"]
    attempt = await chat.until("fix_attempt")
    finished = await chat.until("fix_finished")
    for event in (started, attempt, finished):
        check("ServerMessage", event)
    assert attempt["result"] == "verified" and attempt["error"]["ename"] == "NameError"
    assert attempt["patch"] == [
        {
            "cell_id": "c2",
            "op": "replace",
            "before": "result = totl + 2",
            "after": "result = total + 2",
        }
    ]
    assert attempt["attempt_run_id"] == ask["run_id"]
    assert attempt["approvals"][0]["by"].endswith(": approve")
    assert (finished["status"], finished["reason"]) == ("verified", "fixed")
    assert "c3" in attempt["reran"]
    # the diagnosis the model got names the error
    first = fake_anthropic.requests[0].body["messages"][-1]["content"]
    assert "NameError" in str(first)
    assert read_notebook(jp_root_dir).cells[1].source == "result = total + 2"
    # a second client replays the fix's events in order
    other = await connect(jp_ws_fetch)
    await other.send(type="resume", conversation_id=started["conversation_id"], after_seq=0)
    await other.until("resumed")
    kinds = [m["type"] for m in other.received if m["type"].startswith("fix_")]
    assert kinds == ["fix_started", "fix_attempt", "fix_finished"]
    # audited: the attempt (its error, the cells changed, who approved) and the verdict
    from aiide_server_ext.gateway.audit import AuditQuery

    log = jp_serverapp.web_app.settings["aiide_gate"].audit_log
    attempts = await log.query(AuditQuery(action="agent.fix_attempt"))
    verdicts = await log.query(AuditQuery(action="agent.fix"))
    assert [a["outcome"] for a in attempts] == ["verified"], attempts
    assert attempts[0]["detail"]["cells"] == ["replace c2"]
    assert attempts[0]["detail"]["approvals"][0]["by"].endswith(": approve")
    assert [v["outcome"] for v in verdicts] == ["verified"]


async def test_a_patch_that_breaks_a_downstream_cell_is_tried_again(
    jp_ws_fetch: Any, jp_root_dir: Any, fake_anthropic: FakeAnthropic
) -> None:
    write_notebook(jp_root_dir, cells=CELLS)
    fake_anthropic.push(
        Reply(tools=[replace("c2", "reslt = total + 2", 1)]),
        Reply(text="renamed"),
        Reply(tools=[replace("c2", "result = total + 2", 2)]),
        Reply(text="ok"),
    )
    chat = await connect(jp_ws_fetch)
    # c2 and c3 ran before: c3's output is known, so breaking it is breaking downstream
    await chat.send(type="fix", path="nb.ipynb", cell_id="c2")
    await chat.approve_next()
    first = await chat.until("fix_attempt")
    assert first["result"] in ("broke_downstream", "error"), first
    assert first["detail"].startswith("cell c3")
    await chat.approve_next()
    second = await chat.until("fix_attempt")
    finished = await chat.until("fix_finished")
    assert second["number"] == 2 and second["result"] == "verified"
    assert (finished["status"], finished["attempts"]) == ("verified", 2)


async def test_cancel_stops_the_fix_while_its_card_waits(
    jp_ws_fetch: Any, jp_root_dir: Any, fake_anthropic: FakeAnthropic
) -> None:
    write_notebook(jp_root_dir, cells=CELLS)
    fake_anthropic.push(Reply(tools=[replace("c2", "result = total + 2", 1)]), Reply(text="ok"))
    chat = await connect(jp_ws_fetch)
    await chat.send(type="fix", path="nb.ipynb", cell_id="c2")
    ask = await chat.until("approval_required")
    # a chat into the conversation while the fix runs is refused
    await chat.send(type="chat", text="hi", conversation_id=ask["conversation_id"])
    refused = await chat.until("error")
    assert refused["code"] == "run_active"
    await chat.send(type="cancel", conversation_id=ask["conversation_id"], run_id=ask["run_id"])
    finished = await chat.until("fix_finished")
    assert (finished["status"], finished["reason"]) == ("not_verified", "cancelled")
    assert read_notebook(jp_root_dir).cells[1].source == "result = totl + 2"


async def test_cancel_interrupts_a_cell_that_never_ends(jp_ws_fetch: Any, jp_root_dir: Any) -> None:
    """Cancel while the loop's reproduce step runs a cell that never ends: the kernel is
    interrupted (not left running), so the next fix in it runs at once."""
    import asyncio

    loop_cell = "import time\nopen('c2-running', 'w').close()\nwhile True:\n    time.sleep(0.05)"
    write_notebook(jp_root_dir, cells=[("c1", "total = 40"), ("c2", loop_cell)])
    chat = await connect(jp_ws_fetch)
    await chat.send(type="fix", path="nb.ipynb", cell_id="c2")
    started = await chat.until("fix_started")
    for _ in range(600):  # the kernel starts, runs c1, then c2, which never ends
        if (jp_root_dir / "c2-running").exists():
            break
        await asyncio.sleep(0.05)
    assert (jp_root_dir / "c2-running").exists(), "cell c2 never started"
    ids = {"conversation_id": started["conversation_id"], "run_id": started["run_id"]}
    await chat.send(type="cancel", **ids)
    finished = await chat.until("fix_finished")
    assert (finished["status"], finished["reason"]) == ("not_verified", "cancelled")
    # the kernel is free: with c2 now a plain cell, a fix of c1 runs both and finds
    # nothing to fix (a kernel still in the loop would never run them)
    write_notebook(jp_root_dir, cells=[("c1", "total = 40"), ("c2", "print(total)")])
    await chat.send(
        type="fix", path="nb.ipynb", cell_id="c1", conversation_id=ids["conversation_id"]
    )
    again = await chat.until("fix_finished", timeout=30)
    assert (again["status"], again["reason"]) == ("verified", "no_error")


async def test_the_fix_goes_on_when_the_page_that_started_it_goes(
    jp_ws_fetch: Any, jp_root_dir: Any, fake_anthropic: FakeAnthropic
) -> None:
    """A reload mid-fix: the new page resumes the conversation, answers the card the
    fix waits on, and sees it end verified."""
    write_notebook(jp_root_dir, cells=CELLS)
    fake_anthropic.push(Reply(tools=[replace("c2", "result = total + 2", 1)]), Reply(text="ok"))
    first = await connect(jp_ws_fetch)
    await first.send(type="fix", path="nb.ipynb", cell_id="c2")
    ask = await first.until("approval_required")
    first.ws.close()
    second = await connect(jp_ws_fetch)
    await second.send(type="resume", conversation_id=ask["conversation_id"], after_seq=0)
    again = await second.until("approval_required")
    assert again["call_id"] == ask["call_id"]
    await second.decide(again)
    finished = await second.until("fix_finished")
    assert (finished["status"], finished["reason"]) == ("verified", "fixed")
    assert read_notebook(jp_root_dir).cells[1].source == "result = total + 2"


async def test_a_pytest_file_beside_the_notebook_is_a_check(
    jp_ws_fetch: Any, jp_root_dir: Any, fake_anthropic: FakeAnthropic
) -> None:
    """The notebook runs clean, but test_nb.py beside it fails: that is the error to fix,
    and the fix is verified only once the file passes (run in the sandboxed kernel)."""
    write_notebook(jp_root_dir, cells=[("c1", "def double(x):\n    return x * 3")])
    (jp_root_dir / "test_nb.py").write_text(
        "import json\n\n\ndef test_double():\n"
        "    nb = json.load(open('nb.ipynb'))\n"
        "    ns = {}\n"
        "    exec(''.join(nb['cells'][0]['source']), ns)\n"
        "    assert ns['double'](2) == 4\n"
    )
    fake_anthropic.push(
        Reply(tools=[replace("c1", "def double(x):\n    return x * 2", 1)]), Reply(text="ok")
    )
    chat = await connect(jp_ws_fetch)
    await chat.send(type="fix", path="nb.ipynb")
    await chat.approve_next()
    attempt = await chat.until("fix_attempt", timeout=90)
    finished = await chat.until("fix_finished", timeout=90)
    assert attempt["error"]["kind"] == "check_failed", attempt
    assert attempt["result"] == "verified" and "pytest" in attempt["reran"], attempt
    assert finished["status"] == "verified"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"type": "fix"}, "bad_message"),
        ({"type": "fix", "path": "nb.ipynb", "max_attempts": 0}, "bad_message"),
        ({"type": "fix", "path": "nb.txt"}, "bad_message"),
        ({"type": "fix", "path": "nb.ipynb", "cell_id": ""}, "bad_message"),
    ],
)
async def test_bad_fix_frames_are_refused(
    jp_ws_fetch: Any, jp_root_dir: Any, frame: dict[str, Any], code: str
) -> None:
    import json

    chat = await connect(jp_ws_fetch)
    await chat.send_raw(json.dumps(frame))
    assert (await chat.until("error"))["code"] == code


async def test_a_fix_of_a_cell_that_is_not_there_ends_not_verified(
    jp_ws_fetch: Any, jp_root_dir: Any
) -> None:
    write_notebook(jp_root_dir, cells=CELLS)
    chat = await connect(jp_ws_fetch)
    await chat.send(type="fix", path="nb.ipynb", cell_id="nope")
    finished = await chat.until("fix_finished")
    assert (finished["status"], finished["reason"]) == ("not_verified", "bad_input")
