"""Approval cards a data scientist can read (issue 19): cells named as the user sees them
(position and first line, never an id), the code a run will run, the target cell shown
in the notebook, risks that differ by what the call does, an Edit form with a cell choice
and a code editor; a card that shows what was done when the user edited it; a card that
notices the notebook's own undo, and a card Undo that saves the notebook like Apply."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from browser_support import LabPage, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("aiide-agent-browser")]

#: Cell ids as JupyterLab makes them: the card must never show one.
IDS = [f"6becf666-582b-4a0e-9d1c-{n:012d}" for n in range(1, 31)]
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}|ai-[0-9a-f]{6}")


def long_notebook(root: Path, name: str) -> str:
    """30 cells: the last ones are out of view when the notebook opens."""
    return write_notebook(root, name, [(IDS[n], f"y{n + 1} = {n + 1}") for n in range(30)])


def disk_sources(root: Path, path: str) -> list[str] | None:
    """The cells' sources in the file, or None while a save is half written."""
    try:
        cells = json.loads((root / path).read_text())["cells"]
    except json.JSONDecodeError:
        return None
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in cells]


def wait_for(check: Any, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_cards_name_cells_show_code_and_the_cell_and_rate_what_they_do(
    chat: LabPage, agent_lab: Any, fake_model: Any, screenshot: Any
) -> None:
    from playwright.sync_api import expect

    path = long_notebook(agent_lab.root_dir, "scores.ipynb")
    notebook = chat.open_notebook(path)
    target = notebook.locator(".jp-Cell").nth(24)  # cell 25, below the fold
    fake_model.script(
        {
            "text": "Doubling it.",
            "tools": [
                {
                    "name": "replace_cell",
                    "id": "toolu_e2ecrd01",
                    "input": {"path": path, "cell_id": IDS[24], "source": "y25 = 50"},
                }
            ],
        },
        {
            "text": "Running it.",
            "tools": [
                {
                    "name": "run_cell",
                    "id": "toolu_e2ecrd02",
                    "input": {"path": path, "cell_id": IDS[24]},
                }
            ],
        },
        {"text": "Done."},
    )
    chat.ask("Double y25 and run it")

    card = chat.awaiting_card()
    what = card.locator(".aiide-Call-what")
    expect(what).to_have_text(f"Change cell 25 “y25 = 25” in {path}")
    expect(card.locator(".aiide-Diff-title")).to_have_text(f"{path}: Change cell 25 “y25 = 25”")
    expect(card.locator(".aiide-Call-risk")).to_have_text("edit")
    # Before approval the notebook shows the cell the card is about, highlighted.
    expect(target).to_be_in_viewport(timeout=10_000)
    expect(target).to_have_class(re.compile(r"\baiide-Flash\b"))
    assert not UUID.search(card.inner_text()), card.inner_text()
    screenshot(chat.page, "card-names-a-cell")
    # Scrolled away, a click on the card's header shows the cell again.
    notebook.locator(".jp-Cell").first.scroll_into_view_if_needed()
    expect(target).not_to_be_in_viewport()
    what.click()
    expect(target).to_be_in_viewport(timeout=10_000)

    card.get_by_role("button", name="Approve").click()
    expect(target.locator(".jp-InputArea-editor")).to_have_text("y25 = 50", timeout=15_000)

    run = chat.awaiting_card()
    expect(run.locator(".aiide-Call-what")).to_have_text(
        f"Run cell 25 “y25 = 50” of {path} in its kernel"
    )
    expect(run.locator(".aiide-Call-risk")).to_have_text("run")
    expect(run.locator(".aiide-Call-code")).to_have_text("y25 = 50")
    assert not UUID.search(run.inner_text()), run.inner_text()
    run.get_by_role("button", name="Approve").click()
    chat.finished()
    # The badge differs by what the call does.
    badges = chat.chat.locator(".aiide-Call .aiide-Call-risk")
    expect(badges).to_have_text(["edit", "run"])


def test_the_edit_form_offers_cells_and_a_code_editor(
    chat: LabPage, agent_lab: Any, fake_model: Any, screenshot: Any
) -> None:
    from playwright.sync_api import expect

    path = write_notebook(
        agent_lab.root_dir, "where.ipynb", [(IDS[0], "import pandas as pd"), (IDS[1], "df = 1")]
    )
    notebook = chat.open_notebook(path)
    args = {"path": path, "after_id": IDS[0], "source": "df.head()"}
    fake_model.script(
        {
            "text": "Adding.",
            "tools": [{"name": "insert_cell", "id": "toolu_e2ecrd03", "input": args}],
        },
        {"text": "Added."},
    )
    chat.ask("Show the head")
    card = chat.awaiting_card()
    expect(card.locator(".aiide-Call-what")).to_have_text(
        f"Insert a code cell into {path} after cell 1 “import pandas as pd”"
    )
    expect(card.locator(".aiide-Diff-title")).to_have_text(
        f"{path}: New code cell after cell 1 “import pandas as pd”"
    )
    card.get_by_role("button", name="Edit").click()
    where = card.locator(".aiide-Call-field[data-key=after_id] select")
    expect(where.locator("option")).to_have_text(
        ["at the top", "after cell 1 “import pandas as pd”", "after cell 2 “df = 1”"]
    )
    expect(where).to_have_value(IDS[0])
    source = card.locator(".aiide-Call-field[data-key=source]")
    expect(source.locator(".cm-editor")).to_have_count(1)  # JupyterLab's CodeMirror
    expect(source.locator("textarea")).to_have_count(0)
    assert not UUID.search(card.inner_text()), card.inner_text()
    where.select_option(label="after cell 2 “df = 1”")
    source.locator(".cm-content").click()
    chat.page.keyboard.press("Control+a")
    chat.page.keyboard.insert_text("df.tail()")
    screenshot(card, "approval-edit-form")
    card.get_by_role("button", name="Approve with changes").click()
    expect(notebook.locator(".jp-Cell")).to_have_count(3, timeout=15_000)
    expect(notebook.locator(".jp-Cell").nth(2).locator(".jp-InputArea-editor")).to_have_text(
        "df.tail()"
    )
    chat.finished()


def test_an_edited_approval_shows_what_was_done(
    chat: LabPage, agent_lab: Any, fake_model: Any, screenshot: Any
) -> None:
    from playwright.sync_api import expect

    path = write_notebook(agent_lab.root_dir, "edited.ipynb", [("c1", "total = 3")])
    notebook = chat.open_notebook(path)
    fake_model.script(
        {
            "text": "Replacing.",
            "tools": [
                {
                    "name": "replace_cell",
                    "id": "toolu_e2ecrd04",
                    "input": {"path": path, "cell_id": "c1", "source": "total = 4"},
                }
            ],
        },
        {"text": "Replaced."},
    )
    chat.ask("Change the total")
    card = chat.awaiting_card()
    card.get_by_role("button", name="Edit").click()
    card.locator(".aiide-Call-field[data-key=source] .cm-content").click()
    chat.page.keyboard.press("Control+a")
    chat.page.keyboard.insert_text("total = 5")
    card.get_by_role("button", name="Approve with changes").click()
    expect(notebook.locator(".jp-Cell").first.locator(".jp-InputArea-editor")).to_have_text(
        "total = 5", timeout=15_000
    )
    chat.finished()
    done = chat.chat.locator(".aiide-Call").first
    # The card shows the user's version, not the model's, and says who changed it.
    expect(done.locator(".aiide-Diff-add")).to_have_text("+added: total = 5")
    expect(done.locator(".aiide-Diff-body")).not_to_contain_text("total = 4")
    expect(done.locator(".aiide-Call-edited")).to_contain_text("Edited by you")
    screenshot(done, "card-edited-by-you")


def approved_insert(chat: LabPage, root: Path, fake_model: Any, name: str) -> tuple[str, Any, Any]:
    """A notebook `a = 1` where the agent inserted `b = 2`, approved and applied: its
    path, the notebook and the card."""
    path = write_notebook(root, name, [("c1", "a = 1")])
    notebook = chat.open_notebook(path)
    args = {"path": path, "after_id": "c1", "source": "b = 2"}
    call_id = f"toolu_e2e{name[:5]}"
    fake_model.script(
        {"text": "Adding.", "tools": [{"name": "insert_cell", "id": call_id, "input": args}]},
        {"text": "Added."},
    )
    chat.ask("Add b")
    chat.awaiting_card().get_by_role("button", name="Approve").click()
    chat.finished()
    return path, notebook, chat.chat.locator(".aiide-Call").first


def test_the_card_notices_the_notebooks_own_undo(
    chat: LabPage, agent_lab: Any, fake_model: Any
) -> None:
    from playwright.sync_api import expect

    path, notebook, card = approved_insert(chat, agent_lab.root_dir, fake_model, "stale.ipynb")
    request = card.locator(".aiide-Call-request")
    expect(request).to_contain_text(f"Applied to {path}")
    expect(request.get_by_role("button", name="Undo")).to_be_enabled()

    # The notebook's own undo (`z` in command mode) takes the change back: the card says so.
    notebook.locator(".jp-Cell").first.locator(".jp-InputPrompt").click()
    chat.page.keyboard.press("Escape")
    chat.page.keyboard.press("z")
    expect(notebook.locator(".jp-Cell")).to_have_count(1)
    expect(request).to_contain_text("No longer in")
    expect(request.get_by_role("button", name="Undo")).to_have_count(0)


def test_the_cards_undo_saves_the_notebook_as_apply_does(
    chat: LabPage, agent_lab: Any, fake_model: Any
) -> None:
    """The file the agent reads loses the cell too."""
    from playwright.sync_api import expect

    root = agent_lab.root_dir
    path, notebook, card = approved_insert(chat, root, fake_model, "unsaved.ipynb")
    wait_for(lambda: disk_sources(root, path) == ["a = 1", "b = 2"], "Apply did not save")
    card.get_by_role("button", name="Undo").click()
    expect(notebook.locator(".jp-Cell")).to_have_count(1)
    expect(card.locator(".aiide-Call-request")).to_contain_text("Undone")
    wait_for(lambda: disk_sources(root, path) == ["a = 1"], "Undo did not save the notebook")


def test_a_conflict_is_said_once_shows_both_versions_and_applies_anyway(
    chat: LabPage, agent_lab: Any, fake_model: Any, screenshot: Any
) -> None:
    """The user changes the cell while the card waits: the change does not overwrite it;
    the card says so in words (no id, not twice), shows both versions, and the user may
    apply the assistant's anyway."""
    from playwright.sync_api import expect

    path = write_notebook(agent_lab.root_dir, "conflict.ipynb", [(IDS[0], "total = 3")])
    notebook = chat.open_notebook(path)
    fake_model.script(
        {
            "text": "Replacing.",
            "tools": [
                {
                    "name": "replace_cell",
                    "id": "toolu_e2ecrd09",
                    "input": {"path": path, "cell_id": IDS[0], "source": "total = 4"},
                }
            ],
        },
        {"text": "It did not apply."},
    )
    chat.ask("Change the total")
    card = chat.awaiting_card()
    editor = notebook.locator(".jp-Cell").first.locator(".jp-InputArea-editor .cm-content")
    editor.click()
    chat.page.keyboard.press("Control+a")
    chat.page.keyboard.insert_text("total = 7")
    card.get_by_role("button", name="Approve").click()
    chat.finished()
    done = chat.chat.locator(".aiide-Call").first
    request = done.locator(".aiide-Call-request")
    expect(request).to_contain_text(
        "Not applied: cell 1 (total = 7) changed since the assistant read it"
    )
    expect(done.locator(".aiide-Call-status")).to_have_text("Not applied")
    expect(done.locator(".aiide-Call-result")).to_have_count(0)  # said once, not twice
    assert not UUID.search(done.inner_text())
    request.get_by_role("button", name="Show the notebook's version").click()
    expect(done.locator(".aiide-Call-theirs")).to_have_text("total = 7")
    expect(done.locator(".aiide-Call-ours")).to_have_text("total = 4")
    screenshot(done, "card-conflict")
    request.get_by_role("button", name="Apply anyway").click()
    expect(notebook.locator(".jp-Cell").first.locator(".jp-InputArea-editor")).to_have_text(
        "total = 4"
    )
    expect(request).to_contain_text(f"Applied anyway to {path}, by you")
    root = agent_lab.root_dir
    wait_for(lambda: disk_sources(root, path) == ["total = 4"], "Apply anyway did not save")
    request.get_by_role("button", name="Undo").click()
    expect(notebook.locator(".jp-Cell").first.locator(".jp-InputArea-editor")).to_have_text(
        "total = 7"
    )


def test_a_larger_edit_is_shown_in_the_notebook_while_it_waits(
    chat: LabPage, agent_lab: Any, fake_model: Any, screenshot: Any
) -> None:
    from playwright.sync_api import expect

    path = write_notebook(
        agent_lab.root_dir, "larger.ipynb", [(IDS[0], "x = 1"), (IDS[1], "y = 2")]
    )
    notebook = chat.open_notebook(path)
    source = "\n".join(f"feature_{n} = x * {n}" for n in range(10))
    fake_model.script(
        {
            "text": "Adding features.",
            "tools": [
                {
                    "name": "replace_cell",
                    "id": "toolu_e2ecrd10",
                    "input": {"path": path, "cell_id": IDS[1], "source": source},
                }
            ],
        },
        {"text": "Done."},
    )
    chat.ask("Add ten features")
    card = chat.awaiting_card()
    shown = notebook.locator(".jp-Cell").nth(1).locator(".aiide-NotebookDiff")
    expect(shown).to_be_visible()
    expect(shown).to_contain_text("feature_9 = x * 9")
    expect(shown).to_contain_text("Waiting for your approval in the chat")
    screenshot(notebook, "notebook-diff-waiting")
    card.get_by_role("button", name="Approve").click()
    chat.finished()
    expect(notebook.locator(".aiide-NotebookDiff")).to_have_count(0)
    expect(notebook.locator(".jp-Cell").nth(1).locator(".jp-InputArea-editor")).to_contain_text(
        "feature_9 = x * 9"
    )
