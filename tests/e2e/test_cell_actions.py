"""Cell actions against the real agent server and the fake model: "Fix this error"
from the cell's context menu sends the traceback with the cell as context; "Explain" by its
keyboard shortcut."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import LabPage, widen_sidebar, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("aiide-agent-browser")]


@pytest.fixture(scope="module")
def lab(agent_lab: Any, browser_context: Any, artifacts_dir: Path) -> Iterator[LabPage]:
    page = LabPage.open(browser_context, agent_lab.lab_url())
    page.open_chat()
    widen_sidebar(page.page)
    try:
        yield page
    finally:
        page.close(artifacts_dir, "cell-actions")


@pytest.fixture(autouse=True)
def fresh(lab: LabPage, fake_model: Any) -> Iterator[None]:
    fake_model.reset()
    lab.new_chat()
    yield
    lab.check()


def test_fix_this_error_sends_the_traceback_with_the_cell(
    lab: LabPage, agent_lab: Any, fake_model: Any, screenshot: Any
) -> None:
    from playwright.sync_api import expect

    path = write_notebook(agent_lab.root_dir, "broken.ipynb", [("c1", "total = 10\ntotal / 0")])
    notebook = lab.open_notebook(path)
    notebook.locator(".jp-Cell").first.click()
    lab.run_command("notebook:run-cell")
    expect(notebook.locator(".jp-OutputArea-output")).to_contain_text("ZeroDivisionError")
    fake_model.script({"text": "Dividing by zero: use a non-zero divisor, e.g. `total / 2`."})
    cell = notebook.locator(".jp-Cell").first
    cell.click()
    # On the cell toolbar (shown when the cell leaves it room) and in the context menu.
    expect(cell.locator('.jp-cell-toolbar [data-command="aiide:fix-cell"]')).to_have_count(1)
    cell.locator(".jp-InputArea-editor").click(button="right")
    lab.page.locator(".lm-Menu-item", has_text="Fix This Error").click()
    lab.finished()
    question = lab.chat.locator(".aiide-Question-text").last
    expect(question).to_contain_text(f"Fix this error in cell 1 of {path}")
    expect(question).to_contain_text("ZeroDivisionError: division by zero")
    body = fake_model.requests()[-1]["body"]
    sent = json.dumps(body)
    assert "ZeroDivisionError" in sent
    assert "\\u001b[" not in sent  # the traceback went as plain text
    chat_frames = [f for f in lab.sent if f.get("type") == "chat"]
    assert chat_frames[-1]["context"] == {"notebook": path, "cell_id": "c1"}
    assert chat_frames[-1]["task"] == "agent"
    screenshot(lab.page, "fix-this-error")


def test_explain_by_keyboard_shortcut(lab: LabPage, agent_lab: Any, fake_model: Any) -> None:
    from playwright.sync_api import expect

    path = write_notebook(
        agent_lab.root_dir, "explain.ipynb", [("c1", "squares = [n * n for n in range(5)]")]
    )
    notebook = lab.open_notebook(path, kernel=False)
    fake_model.script({"text": "It builds the squares of 0..4."})
    notebook.locator(".jp-Cell").first.click()
    lab.page.keyboard.press("Escape")  # command mode
    lab.page.keyboard.press("Control+Alt+e")
    lab.finished()
    expect(lab.chat.locator(".aiide-Question-text").last).to_contain_text(
        f"Explain what cell 1 of {path} does"
    )
    chat_frames = [f for f in lab.sent if f.get("type") == "chat"]
    assert chat_frames[-1]["task"] == "chat"


def test_fix_is_disabled_without_an_error(lab: LabPage, agent_lab: Any) -> None:
    path = write_notebook(agent_lab.root_dir, "fine.ipynb", [("c1", "1 + 1")])
    lab.open_notebook(path, kernel=False)
    enabled = lab.page.evaluate("() => window.jupyterapp.commands.isEnabled('aiide:fix-cell')")
    assert enabled is False
