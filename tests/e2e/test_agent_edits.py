"""Agent edits to an open notebook, against the real agent server and the fake model:
the approval card with its diff, approve → the cell appears and runs in the notebook's
kernel, reject with a reason the model is told, edit the arguments, undo in one step."""

from __future__ import annotations

import json
from typing import Any

import pytest
from browser_support import LabPage, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("aiide-agent-browser")]


def insert(call_id: str, path: str, source: str, text: str = "I'll add a cell.") -> dict[str, Any]:
    args = {"path": path, "after_id": "c1", "source": source}
    return {"text": text, "tools": [{"name": "insert_cell", "id": call_id, "input": args}]}


def new_cell_id(call_id: str) -> str:
    """The id the server gives a cell inserted by this call (tools/notebook.py)."""
    return "ai-" + call_id[-8:].lower().replace("_", "")


def cell_sources(notebook: Any) -> list[str]:
    return [
        cell.locator(".jp-InputArea-editor").inner_text().strip()
        for cell in notebook.locator(".jp-Cell").all()
    ]


def test_approve_inserts_the_cell_and_runs_it_in_the_notebook(
    chat: LabPage, agent_lab: Any, fake_model: Any, screenshot: Any
) -> None:
    from playwright.sync_api import expect

    path = write_notebook(agent_lab.root_dir, "approve.ipynb", [("c1", "x = 6")])
    notebook = chat.open_notebook(path)
    fake_model.script(
        insert("toolu_e2eins01", path, "print(x * 7)"),
        {
            "text": "Running it.",
            "tools": [
                {
                    "name": "run_cell",
                    "id": "toolu_e2erun01",
                    "input": {"path": path, "cell_id": "c1"},
                }
            ],
        },
        {
            "text": "And the new one.",
            "tools": [
                {
                    "name": "run_cell",
                    "id": "toolu_e2erun02",
                    "input": {"path": path, "cell_id": new_cell_id("toolu_e2eins01")},
                }
            ],
        },
        {"text": "It printed **42**."},
    )
    chat.ask("Add a cell that prints x times 7 and run it")

    card = chat.awaiting_card()
    expect(card.locator(".aiide-Call-what")).to_have_text(
        f"Insert a code cell into {path} after cell 1 “x = 6”"
    )
    expect(card.locator(".aiide-Call-risk")).to_have_text("edit")
    expect(card.locator(".aiide-Diff-add")).to_have_text("+added: print(x * 7)")
    screenshot(chat.page, "approval-card")
    card.get_by_role("button", name="Approve").click()
    expect(notebook.locator(".jp-Cell")).to_have_count(2, timeout=15_000)
    assert cell_sources(notebook) == ["x = 6", "print(x * 7)"]

    for _ in range(2):  # run c1, then the new cell
        chat.awaiting_card().get_by_role("button", name="Approve").click()
    chat.finished()
    output = notebook.locator(".jp-Cell").nth(1).locator(".jp-OutputArea-output")
    expect(output).to_have_text("42")
    cards = chat.chat.locator(".aiide-Call")
    expect(cards.nth(0).locator(".aiide-Call-request")).to_contain_text(f"Applied to {path}")
    expect(cards.nth(2).locator(".aiide-Call-status")).to_have_text("Done")
    expect(chat.answers().last).to_contain_text("It printed 42.")
    # The model was told the cell's output (through the run's tool result).
    tool_results = json.dumps(fake_model.requests()[-1]["body"]["messages"])
    assert "42" in tool_results
    screenshot(chat.page, "agent-ran-cell")


def test_reject_with_a_reason_leaves_the_notebook_and_tells_the_model(
    chat: LabPage, agent_lab: Any, fake_model: Any
) -> None:
    from playwright.sync_api import expect

    path = write_notebook(agent_lab.root_dir, "reject.ipynb", [("c1", "import pandas as pd")])
    notebook = chat.open_notebook(path)
    fake_model.script(
        insert("toolu_e2erej01", path, "import matplotlib"),
        {"text": "Understood, seaborn then."},
    )
    chat.ask("Add a plotting import")
    card = chat.awaiting_card()
    card.get_by_role("button", name="Reject").click()
    card.get_by_label("Reason for rejecting").fill("use seaborn instead")
    card.get_by_label("Reason for rejecting").press("Enter")
    chat.finished()
    status = chat.chat.locator(".aiide-Call-status").first
    # One's own decision, not "Rejected by root", and no red "Error" for a call not run.
    expect(status).to_have_text("You rejected this: use seaborn instead")
    card = chat.chat.locator(".aiide-Call").first
    expect(card.locator(".aiide-Call-result summary")).not_to_contain_text("Error")
    assert cell_sources(notebook) == ["import pandas as pd"]
    assert "use seaborn instead" in json.dumps(fake_model.requests()[-1]["body"]["messages"])


def test_edited_arguments_are_applied_and_undone_in_one_step(
    chat: LabPage, agent_lab: Any, fake_model: Any, screenshot: Any
) -> None:
    from playwright.sync_api import expect

    path = write_notebook(agent_lab.root_dir, "edit.ipynb", [("c1", "y = 1")])
    notebook = chat.open_notebook(path)
    fake_model.script(insert("toolu_e2eedt01", path, "print(y)"), {"text": "Added."})
    chat.ask("Print y")
    card = chat.awaiting_card()
    card.get_by_role("button", name="Edit").click()
    card.locator(".aiide-Call-field[data-key=source] .cm-content").click()
    chat.page.keyboard.press("Control+a")
    chat.page.keyboard.insert_text('print("edited", y)')
    screenshot(card, "approval-edit")
    card.get_by_role("button", name="Approve with changes").click()
    expect(notebook.locator(".jp-Cell")).to_have_count(2, timeout=15_000)
    assert cell_sources(notebook) == ["y = 1", 'print("edited", y)']
    chat.finished()
    first = chat.chat.locator(".aiide-Call").first
    expect(first.locator(".aiide-Diff-add")).to_have_text('+added: print("edited", y)')
    first.get_by_role("button", name="Undo").click()
    expect(notebook.locator(".jp-Cell")).to_have_count(1)
    expect(first.locator(".aiide-Call-request")).to_contain_text("Undone")
    assert cell_sources(notebook) == ["y = 1"]


def test_an_edit_from_another_client_waits_for_the_user_of_the_open_notebook(
    chat: LabPage, agent_lab: Any, fake_model: Any, screenshot: Any
) -> None:
    """A run started elsewhere (a script, the %ai magic) that edits a notebook open in
    this page: the page shows the change and applies it only when the user says so."""
    from playwright.sync_api import expect
    from websocket import create_connection

    path = write_notebook(agent_lab.root_dir, "shared.ipynb", [("c1", "data = [3, 1, 2]")])
    notebook = chat.open_notebook(path, kernel=False)
    # The server sends the change to this page only once it knows the page has it open.
    chat.wait_sent(lambda f: f.get("type") == "notebook_open" and f.get("path") == path)
    fake_model.script(insert("toolu_e2eext01", path, "sorted(data)"), {"text": "Inserted."})
    ws_url = agent_lab.url.replace("http", "ws", 1) + "aiide/api/chat/ws"
    other = create_connection(
        ws_url, header=[f"Authorization: token {agent_lab.token}"], timeout=60
    )
    seen: list[dict[str, Any]] = []
    try:

        def until(kind: str) -> dict[str, Any]:
            while True:
                frame: dict[str, Any] = json.loads(other.recv())
                seen.append(frame)
                assert frame["type"] != "error", f"the other client got {frame}; before: {seen}"
                if frame["type"] == kind:
                    return frame

        until("hello")
        other.send(
            json.dumps(
                {"type": "chat", "id": "x1", "text": "Sort the data", "context": {"notebook": path}}
            )
        )
        approval = until("approval_required")
        other.send(
            json.dumps(
                {
                    "type": "approve",
                    "conversation_id": approval["conversation_id"],
                    "run_id": approval["run_id"],
                    "call_id": approval["call_id"],
                    "decision": "approve",
                }
            )
        )
        request = chat.chat.locator(".aiide-Call-request[data-state=confirm]")
        expect(request).to_contain_text(f"Apply this change to {path}?", timeout=30_000)
        expect(chat.chat.locator(".aiide-Diff-add")).to_contain_text("sorted(data)")
        assert cell_sources(notebook) == ["data = [3, 1, 2]"], "applied before the user said so"
        screenshot(chat.chat, "edit-from-another-client")
        request.get_by_role("button", name="Apply").click()
        expect(notebook.locator(".jp-Cell")).to_have_count(2)
        assert cell_sources(notebook) == ["data = [3, 1, 2]", "sorted(data)"]
        result = until("tool_result")
        assert result["ok"] is True, result
        assert "applied in the open notebook" in result["content"]
        until("run_finished")
    finally:
        other.close()
