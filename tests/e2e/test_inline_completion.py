"""Inline completion against the real agent server and the fake model: ghost text
appears while typing in a notebook cell and Tab accepts it."""

from __future__ import annotations

from typing import Any

import pytest
from browser_support import LabPage, write_notebook

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
    notebook.locator(".jp-Cell").first.locator(".cm-content").click()
    agent_page.page.keyboard.type("def mean(xs):")
    agent_page.page.keyboard.press("Enter")
    agent_page.page.keyboard.type("return ")
    ghost = notebook.locator(".jp-GhostText")
    expect(ghost).to_have_text(SUGGESTION, timeout=15_000)
    screenshot(agent_page.page, "inline-completion")
    agent_page.page.keyboard.press("Tab")
    source = agent_page.page.wait_for_function(
        """want => {
          const cell = window.jupyterapp.shell.currentWidget.content.activeCell;
          const text = cell.model.sharedModel.getSource();
          return text.endsWith(want) ? text : null;
        }""",
        arg=SUGGESTION,
    ).json_value()
    assert source.startswith("def mean(xs):\n")
    assert source.endswith(f"return {SUGGESTION}")
    requests = [r for r in fake_model.requests() if "CURSOR" in str(r["body"])]
    assert requests, "no completion request reached the model"
    agent_page.check()
