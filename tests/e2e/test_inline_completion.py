"""Inline completion against the real agent server and the fake model: ghost text
appears while typing in a notebook cell and Tab accepts it."""

from __future__ import annotations

from typing import Any

import pytest
from browser_support import LabPage, write_notebook
from ghost_text import accept, type_to_the_middle

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("aiide-agent-browser")]

SUGGESTION = "sum(xs) / len(xs)"


def test_ghost_text_appears_and_tab_accepts_it(
    agent_page: LabPage, agent_lab: Any, fake_model: Any, screenshot: Any
) -> None:
    from playwright.sync_api import expect

    fake_model.reset()
    # Every request while typing takes one reply: queue enough of them.
    fake_model.script(*[{"text": SUGGESTION} for _ in range(20)])
    path = write_notebook(agent_lab.root_dir, "complete.ipynb", [("c1", "")])
    notebook = agent_page.open_notebook(path, kernel=False)
    ghost = type_to_the_middle(agent_page, notebook)
    expect(ghost).to_have_text(SUGGESTION, timeout=15_000)
    screenshot(agent_page.page, "inline-completion")
    source = accept(agent_page, SUGGESTION)
    assert source.startswith("def mean(xs):\n")
    assert source.endswith(f"return {SUGGESTION}")
    requests = [r for r in fake_model.requests() if "CURSOR" in str(r["body"])]
    assert requests, "no completion request reached the model"
    agent_page.check()


def test_no_completion_call_for_a_cell_left_within_the_debounce(
    agent_page: LabPage, agent_lab: Any, fake_model: Any
) -> None:
    """Shift+Enter right after typing: the debounced request would complete a cell the
    user has left (with that cell also in the text above). It is not sent."""
    from playwright.sync_api import expect

    fake_model.reset()
    fake_model.script(*[{"text": "1"} for _ in range(10)])
    path = write_notebook(agent_lab.root_dir, "left.ipynb", [("c1", "")])
    notebook = agent_page.open_notebook(path)
    notebook.locator(".jp-Cell").first.locator(".cm-content").click()
    keyboard = agent_page.page.keyboard
    keyboard.type("left_behind = ")
    keyboard.press("Shift+Enter")  # well within the 250 ms debounce
    # Typing on at once would abort that request; a pause lets it reach the model.
    agent_page.page.wait_for_timeout(1500)
    # Then a cell the user stays in: its request shows the debounce has long passed.
    keyboard.type("stayed = ")
    expect(notebook.locator(".jp-GhostText")).to_have_text("1", timeout=15_000)
    prompts = [str(r["body"]) for r in fake_model.requests() if "CURSOR" in str(r["body"])]
    assert any("stayed = <CURSOR>" in p for p in prompts), prompts
    assert not any("left_behind = <CURSOR>" in p for p in prompts), prompts


def test_an_agent_edit_to_the_cell_being_typed_in_asks_for_no_completion(
    chat: LabPage, agent_lab: Any, fake_model: Any
) -> None:
    """Ghost text answers the user's typing, not every change to the cell: the agent
    replacing the cell the cursor is in costs no completion call (nor a scripted reply
    meant for the agent's next step). Typing there afterwards asks again."""
    from playwright.sync_api import expect

    cell_id = "3f0e9a43-2c1b-4f52-9a55-000000000001"
    path = write_notebook(agent_lab.root_dir, "agent_edit.ipynb", [(cell_id, "value = 41")])
    notebook = chat.open_notebook(path, kernel=False)
    editor = notebook.locator(".jp-Cell").first.locator(".cm-content")
    editor.click()
    chat.page.keyboard.press("End")  # the cursor after the code, where ghost text goes
    fake_model.script(
        {
            "text": "Changing it.",
            "tools": [
                {
                    "name": "replace_cell",
                    "id": "toolu_agentedit001",
                    "input": {"path": path, "cell_id": cell_id, "source": "value = 42"},
                }
            ],
        },
        {"text": "Done."},
    )
    chat.ask("Make the value 42")
    chat.awaiting_card().get_by_role("button", name="Approve").click()
    expect(editor).to_have_text("value = 42", timeout=30_000)
    chat.finished()
    chat.page.wait_for_timeout(1500)  # well past the 250 ms debounce
    # (the test before may still have a request of its own under way: only this cell's)
    asked = [r["body"] for r in fake_model.requests() if "value = 42<CURSOR>" in str(r["body"])]
    assert not asked, f"the agent's edit asked for a completion: {asked}"
    # the user's own typing in that cell still does
    fake_model.script(*[{"text": " + 0"} for _ in range(5)])
    editor.click()
    chat.page.keyboard.press("End")
    chat.page.keyboard.type(" * 1")
    expect(notebook.locator(".jp-GhostText")).to_have_text(" + 0", timeout=15_000)
