"""The fix loop in the lab (issue 15, part 1): "Fix this error" on a cell starts a loop
run, not a question. The fake model answers with a replace_cell call, the user approves
its card, the loop re-runs the cells in the notebook's sandboxed kernel and the chat
shows the attempt as one step and "Verified"; "Undo fix" restores the cell. A first patch
that breaks a later cell is caught, and a second attempt fixes both."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from browser_support import LabPage, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("aiide-agent-browser")]

IDS = [f"6becf666-582b-4a0e-9d1c-{n:012d}" for n in range(1, 5)]
ANSWER_TIMEOUT_MS = 60_000


def replace(path: str, cell_id: str, source: str, n: int) -> dict[str, Any]:
    return {
        "text": "Changing the cell.",
        "tools": [
            {
                "name": "replace_cell",
                "id": f"toolu_e2efix{n:03d}",
                "input": {"path": path, "cell_id": cell_id, "source": source},
            }
        ],
    }


def disk_source(root: Any, path: str, index: int) -> str | None:
    try:
        cell = json.loads((root / path).read_text())["cells"][index]
    except (json.JSONDecodeError, IndexError):
        return None
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else str(src)


def settled_source(root: Any, path: str, index: int) -> str | None:
    """``disk_source`` once the file parses: Jupyter writes a notebook in place, so a read
    during a save can see half of it."""
    deadline = time.monotonic() + 15
    while (source := disk_source(root, path, index)) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    return source


def broken(chat: LabPage, root: Any, name: str, cells: list[tuple[str, str]]) -> Any:
    """Opens the notebook, runs it (stopping at the error) and clicks the failing cell."""
    from playwright.sync_api import expect

    path = write_notebook(root, name, cells)
    notebook = chat.open_notebook(path)
    chat.run_command("notebook:run-all-cells")
    expect(notebook.locator(".jp-OutputArea-output").first).to_be_visible(timeout=30_000)
    expect(notebook.locator(".jp-Cell").nth(1).locator(".jp-OutputArea-output")).to_contain_text(
        "NameError", timeout=30_000
    )
    notebook.locator(".jp-Cell").nth(1).click()
    return notebook


def start_fix(chat: LabPage, notebook: Any) -> None:
    """Clicks "Fix This Error" in the failing cell's context menu (the cell toolbar hides
    its buttons when a one-line cell leaves them no room)."""
    cell = notebook.locator(".jp-Cell").nth(1)
    cell.locator(".jp-InputArea-editor").click(button="right")
    chat.page.locator(".lm-Menu-item", has_text="Fix This Error").click()


def test_fix_this_error_is_approved_rerun_verified_and_undone(
    chat: LabPage, agent_lab: Any, fake_model: Any, screenshot: Any
) -> None:
    from playwright.sync_api import expect

    root = agent_lab.root_dir
    cells = [(IDS[0], "total = 40"), (IDS[1], "result = totl + 2"), (IDS[2], "print(result * 2)")]
    notebook = broken(chat, root, "fixme.ipynb", cells)
    path = "fixme.ipynb"
    fake_model.script(replace(path, IDS[1], "result = total + 2", 1), {"text": "Fixed the name."})
    # "Fix this error" under the traceback, in the error's own output area
    failed = notebook.locator(".jp-Cell").nth(1)
    expect(notebook.locator(".aiide-FixOutput")).to_have_count(1)
    failed.get_by_role("button", name="Fix this error").click()
    frame = chat.wait_sent(lambda f: f.get("type") == "fix")
    assert (frame["path"], frame["cell_id"]) == (path, IDS[1])
    expect(chat.chat.locator(".aiide-Question-text").last).to_contain_text(
        f"Fix the error in cell 2 of {path}"
    )
    card = chat.awaiting_card()
    expect(card.locator(".aiide-Call-what")).to_contain_text("cell 2")
    card.get_by_role("button", name="Approve").click()
    end = chat.chat.locator(".aiide-FixEnd")
    expect(end).to_have_count(1, timeout=ANSWER_TIMEOUT_MS)
    expect(end.locator(".aiide-FixEnd-verdict")).to_have_text("Verified")
    step = chat.chat.locator(".aiide-FixStep")
    expect(step).to_have_count(1)
    expect(step).to_contain_text("Attempt 1")
    expect(step).to_contain_text("cell 2: NameError: name 'totl' is not defined")
    expect(step).to_contain_text("changed cell 2")
    expect(step.locator(".aiide-FixStep-result")).to_have_text("verified")
    # the loop re-ran the cells in the notebook: cell 3 printed what it now can
    expect(notebook.locator(".jp-Cell").nth(2).locator(".jp-OutputArea-output")).to_contain_text(
        "84"
    )
    # the model was given the traceback (as plain text) and the cell's inputs
    diagnosis = json.dumps(fake_model.requests()[0]["body"])
    assert "NameError" in diagnosis and "\\u001b[" not in diagnosis
    deadline = time.monotonic() + 15
    while disk_source(root, path, 1) != "result = total + 2":  # None while a save is half written
        assert time.monotonic() < deadline, "the fixed cell was not saved"
        time.sleep(0.1)
    screenshot(chat.page, "fix-loop-verified")

    end.get_by_role("button", name="Undo fix").click()
    expect(end.locator(".aiide-FixEnd-undo")).to_contain_text("Undone: 1 change")
    # and the kernel is brought in line: the cells the fix ran run again, as they are now
    expect(end.locator(".aiide-FixEnd-undo")).to_contain_text(
        "The kernel ran the cells again: cell 2: NameError: name 'totl' is not defined, "
        "as before the fix."
    )
    expect(notebook.locator(".jp-Cell").nth(1).locator(".jp-InputArea-editor")).to_have_text(
        "result = totl + 2"
    )
    deadline = time.monotonic() + 15
    while disk_source(root, path, 1) != "result = totl + 2":  # saved, as Apply saves
        assert time.monotonic() < deadline, "the undone cell was not saved"
        time.sleep(0.1)
    expect(end.get_by_role("button", name="Undo fix")).to_have_count(0)
    # the error is back in the notebook as in the kernel, with its button
    expect(notebook.locator(".jp-Cell").nth(1).locator(".jp-OutputArea-output")).to_contain_text(
        "NameError"
    )
    expect(notebook.locator(".aiide-FixOutput")).to_have_count(1)


def test_a_patch_that_breaks_a_later_cell_is_tried_again(
    chat: LabPage, agent_lab: Any, fake_model: Any
) -> None:
    from playwright.sync_api import expect

    root = agent_lab.root_dir
    cells = [
        (IDS[0], "total = 40"),
        (IDS[1], "result = totl + 2"),
        (IDS[2], "print(result * 2)"),
    ]
    notebook = broken(chat, root, "downstream.ipynb", cells)
    path = "downstream.ipynb"
    fake_model.script(
        replace(path, IDS[1], "answer = total + 2", 2),  # fixes cell 2, breaks cell 3
        {"text": "Renamed."},
        replace(path, IDS[1], "result = total + 2", 3),
        {"text": "Kept the name cell 3 uses."},
    )
    start_fix(chat, notebook)
    chat.awaiting_card().get_by_role("button", name="Approve").click()
    steps = chat.chat.locator(".aiide-FixStep")
    expect(steps).to_have_count(1, timeout=ANSWER_TIMEOUT_MS)
    expect(steps.first).to_contain_text("cell 3: NameError: name 'result' is not defined")
    expect(steps.first.locator(".aiide-FixStep-result")).not_to_have_text("verified")
    chat.awaiting_card().get_by_role("button", name="Approve").click()
    end = chat.chat.locator(".aiide-FixEnd")
    expect(end).to_have_count(1, timeout=ANSWER_TIMEOUT_MS)
    expect(end.locator(".aiide-FixEnd-verdict")).to_have_text("Verified")
    expect(steps).to_have_count(2)
    expect(end).to_contain_text("2 attempts")
    # the second diagnosis told the model what the first change broke
    second = json.dumps(fake_model.requests()[2]["body"])
    assert "cell 3" in second or IDS[2] in second
    expect(notebook.locator(".jp-Cell").nth(2).locator(".jp-OutputArea-output")).to_contain_text(
        "84"
    )
    # one Undo takes back both attempts' changes (newest first) to the cell as it was
    end.get_by_role("button", name="Undo fix").click()
    expect(end.locator(".aiide-FixEnd-undo")).to_contain_text("Undone: 2 changes")
    expect(notebook.locator(".jp-Cell").nth(1).locator(".jp-InputArea-editor")).to_have_text(
        "result = totl + 2"
    )


def test_stop_ends_the_fix_while_its_card_waits(
    chat: LabPage, agent_lab: Any, fake_model: Any
) -> None:
    """Stop during a fix cancels it within one step: the card's run is cancelled, the
    change is never applied, the fix ends "Not verified: cancelled"."""
    from playwright.sync_api import expect

    root = agent_lab.root_dir
    cells = [(IDS[0], "total = 40"), (IDS[1], "result = totl + 2"), (IDS[2], "print(result)")]
    notebook = broken(chat, root, "stopme.ipynb", cells)
    path = "stopme.ipynb"
    fake_model.script(replace(path, IDS[1], "result = total + 2", 4), {"text": "ok"})
    start_fix(chat, notebook)
    chat.awaiting_card()
    chat.chat.get_by_role("button", name="Stop", exact=True).click()
    end = chat.chat.locator(".aiide-FixEnd")
    expect(end).to_have_count(1, timeout=ANSWER_TIMEOUT_MS)
    expect(end.locator(".aiide-FixEnd-verdict")).to_have_text(
        "Not verified: cancelled during the model's turn"
    )
    assert end.get_attribute("data-reason") == "cancelled"
    cancel = chat.wait_sent(lambda f: f.get("type") == "cancel")
    assert cancel["run_id"].startswith(("fix_", "run_"))
    expect(end.get_by_role("button", name="Undo fix")).to_have_count(0)
    assert settled_source(root, path, 1) == "result = totl + 2"
    expect(notebook.locator(".jp-Cell").nth(1).locator(".jp-InputArea-editor")).to_have_text(
        "result = totl + 2"
    )
