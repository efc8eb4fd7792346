"""Inline completion against the real agent server and the fake model: ghost text
appears while typing in a notebook cell and Tab accepts it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import LabPage, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("aiide-agent-browser")]

SUGGESTION = "sum(xs) / len(xs)"


@pytest.fixture(scope="module")
def lab(agent_lab: Any, browser_context: Any, artifacts_dir: Path) -> Iterator[LabPage]:
    page = LabPage.open(browser_context, agent_lab.lab_url())
    try:
        yield page
    finally:
        page.close(artifacts_dir, "inline-completion")


def test_ghost_text_appears_and_tab_accepts_it(
    lab: LabPage, agent_lab: Any, fake_model: Any, screenshot: Any
) -> None:
    from playwright.sync_api import expect

    fake_model.reset()
    # Every request while typing takes one reply: queue enough of them.
    fake_model.script(*[{"text": SUGGESTION} for _ in range(20)])
    path = write_notebook(agent_lab.root_dir, "complete.ipynb", [("c1", "")])
    notebook = lab.open_notebook(path, kernel=False)
    notebook.locator(".jp-Cell").first.locator(".cm-content").click()
    lab.page.keyboard.type("def mean(xs):")
    lab.page.keyboard.press("Enter")
    lab.page.keyboard.type("return ")
    ghost = notebook.locator(".jp-GhostText")
    expect(ghost).to_have_text(SUGGESTION, timeout=15_000)
    screenshot(lab.page, "inline-completion")
    lab.page.keyboard.press("Tab")
    source = lab.page.wait_for_function(
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
    lab.check()
