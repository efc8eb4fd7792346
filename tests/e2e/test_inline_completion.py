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
