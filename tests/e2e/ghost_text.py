"""Typing to a ghost text and taking it with Tab, as the inline-completion and the
fill-in-the-middle browser tests both do."""

from __future__ import annotations

from typing import Any

from browser_support import LabPage


def type_to_the_middle(lab: LabPage, notebook: Any) -> Any:
    """Types ``def mean(xs):`` and ``return `` in the first cell; the ghost text's locator."""
    notebook.locator(".jp-Cell").first.locator(".cm-content").click()
    lab.page.keyboard.type("def mean(xs):")
    lab.page.keyboard.press("Enter")
    lab.page.keyboard.type("return ")
    return notebook.locator(".jp-GhostText")


def accept(lab: LabPage, want: str) -> str:
    """Tab, then the active cell's source once it ends with ``want``."""
    lab.page.keyboard.press("Tab")
    source: str = lab.page.wait_for_function(
        """want => {
          const cell = window.jupyterapp.shell.currentWidget.content.activeCell;
          const text = cell.model.sharedModel.getSource();
          return text.endsWith(want) ? text : null;
        }""",
        arg=want,
    ).json_value()
    return source
