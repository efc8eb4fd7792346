"""Cell actions against the real agent server and the fake model: "Fix this error"
from the cell's context menu starts a fix loop on the cell (the traceback goes to the model
in its diagnosis); "Explain" by its keyboard shortcut."""

from __future__ import annotations

import json
from typing import Any

import pytest
from browser_support import LabPage, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("aiide-agent-browser")]


def test_fix_this_error_starts_a_fix_with_the_traceback(
    chat: LabPage, agent_lab: Any, fake_model: Any, screenshot: Any
) -> None:
    """From the context menu, "Fix this error" starts a fix loop on the cell (a ``fix``
    frame); the model's diagnosis carries the traceback as plain text; a model that
    changes nothing ends the fix "Not verified" with why."""
    from playwright.sync_api import expect

    path = write_notebook(agent_lab.root_dir, "broken.ipynb", [("c1", "total = 10\ntotal / 0")])
    notebook = chat.open_notebook(path)
    notebook.locator(".jp-Cell").first.click()
    chat.run_command("notebook:run-cell")
    expect(notebook.locator(".jp-OutputArea-output")).to_contain_text("ZeroDivisionError")
    fake_model.script({"text": "Dividing by zero: use a non-zero divisor, e.g. `total / 2`."})
    cell = notebook.locator(".jp-Cell").first
    cell.click()
    # On the cell toolbar (shown when the cell leaves it room) and in the context menu.
    expect(cell.locator('.jp-cell-toolbar [data-command="aiide:fix-cell"]')).to_have_count(1)
    cell.locator(".jp-InputArea-editor").click(button="right")
    chat.page.locator(".lm-Menu-item", has_text="Fix This Error").click()
    end = chat.chat.locator(".aiide-FixEnd")
    expect(end).to_have_count(1, timeout=60_000)
    expect(end.locator(".aiide-FixEnd-verdict")).to_have_text(
        "Not verified: the model changed nothing"
    )
    question = chat.chat.locator(".aiide-Question-text").last
    expect(question).to_contain_text(f"Fix the error in cell 1 of {path}")
    body = fake_model.requests()[-1]["body"]
    sent = json.dumps(body)
    assert "ZeroDivisionError" in sent
    assert "\\u001b[" not in sent  # the traceback went as plain text
    fix_frames = [f for f in chat.sent if f.get("type") == "fix"]
    assert (fix_frames[-1]["path"], fix_frames[-1]["cell_id"]) == (path, "c1")
    assert not [f for f in chat.sent if f.get("type") == "chat"]
    screenshot(chat.page, "fix-this-error")


def test_explain_by_keyboard_shortcut(chat: LabPage, agent_lab: Any, fake_model: Any) -> None:
    from playwright.sync_api import expect

    path = write_notebook(
        agent_lab.root_dir, "explain.ipynb", [("c1", "squares = [n * n for n in range(5)]")]
    )
    notebook = chat.open_notebook(path, kernel=False)
    fake_model.script({"text": "It builds the squares of 0..4."})
    notebook.locator(".jp-Cell").first.click()
    chat.page.keyboard.press("Escape")  # command mode
    chat.page.keyboard.press("Control+Alt+e")
    chat.finished()
    expect(chat.chat.locator(".aiide-Question-text").last).to_contain_text(
        f"Explain what cell 1 of {path} does"
    )
    chat_frames = [f for f in chat.sent if f.get("type") == "chat"]
    assert chat_frames[-1]["task"] == "chat"


def test_fix_is_disabled_without_an_error(chat: LabPage, agent_lab: Any) -> None:
    path = write_notebook(agent_lab.root_dir, "fine.ipynb", [("c1", "1 + 1")])
    chat.open_notebook(path, kernel=False)
    enabled = chat.page.evaluate("() => window.jupyterapp.commands.isEnabled('aiide:fix-cell')")
    assert enabled is False
