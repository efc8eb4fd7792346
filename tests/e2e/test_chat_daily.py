"""The chat as a tool used all day (issue 19, finding 8), in a real browser against the
agent server and the fake model: Enter while an approval waits says why and points at
the card, "Thinking…" until the first token, ↑ recalls what was sent, the last question
can be edited, regenerated or retried after a failure, the sidebar tab puts the caret
in the chat box and Escape gives the keyboard back to the notebook."""

from __future__ import annotations

from typing import Any

import pytest
from browser_support import LabPage, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("aiide-agent-browser")]


def chat_frames(chat: LabPage) -> list[dict[str, Any]]:
    return [f for f in chat.sent if f.get("type") == "chat"]


def test_enter_while_an_approval_waits_says_why_and_points_at_the_card(
    chat: LabPage, agent_lab: Any, fake_model: Any
) -> None:
    from playwright.sync_api import expect

    path = write_notebook(agent_lab.root_dir, "daily-approval.ipynb", [("c1", "x = 6")])
    chat.open_notebook(path, kernel=False)
    args = {"path": path, "after_id": "c1", "source": "print(x)"}
    tool = {"name": "insert_cell", "id": "toolu_daily01", "input": args}
    fake_model.script({"text": "Adding.", "tools": [tool]})
    chat.ask("Print x")
    card = chat.awaiting_card()
    sent = len(chat_frames(chat))
    box = chat.chat.locator(".aiide-Composer-input")
    box.fill("and plot it too")
    box.press("Enter")
    note = chat.chat.locator(".aiide-Composer-note")
    expect(note).to_contain_text("waits for your answer to the action above")
    expect(card).to_have_class("aiide-Call aiide-mod-flash")
    expect(card).to_be_in_viewport()
    expect(box).to_have_value("and plot it too")  # kept, not lost
    chat.page.wait_for_timeout(300)
    assert len(chat_frames(chat)) == sent, "a message was sent while the run waits"
    chat.chat.get_by_role("button", name="Stop").click()
    chat.finished()
    box.fill("")
    chat.run_command("docmanager:save-all")


def test_thinking_shows_from_enter_to_the_first_token(chat: LabPage, fake_model: Any) -> None:
    from playwright.sync_api import expect

    fake_model.script({"text": "Here it is.", "first_delay": 3.0})
    chat.ask("Take your time")
    thinking = chat.chat.locator(".aiide-Thinking")
    expect(thinking).to_be_visible(timeout=2_000)
    chat.finished()
    expect(chat.answers().last).to_contain_text("Here it is.")
    expect(thinking).to_have_count(0)


def test_history_edit_regenerate_and_retry(chat: LabPage, fake_model: Any) -> None:
    from playwright.sync_api import expect

    fake_model.script({"text": "One."})
    chat.ask("first question")
    chat.finished()
    box = chat.chat.locator(".aiide-Composer-input")
    box.click()
    box.press("ArrowUp")
    expect(box).to_have_value("first question")
    box.press("ArrowDown")
    expect(box).to_have_value("")

    # A failed answer (the provider refuses the request) offers Retry, which sends the
    # same question again.
    fake_model.script(
        {"status": 400, "error_type": "invalid_request_error", "message": "scripted refusal"}
    )
    chat.ask("second question")
    expect(chat.finished(2)).to_have_attribute("data-status", "failed")
    expect(chat.chat.locator(".aiide-Error").last).to_be_visible()
    actions = chat.chat.locator(".aiide-TurnActions")
    fake_model.script({"text": "Recovered."})
    actions.get_by_role("button", name="Retry").click()
    expect(chat.finished(3)).to_have_attribute("data-status", "completed")
    expect(chat.answers().last).to_contain_text("Recovered.")
    assert [f["text"] for f in chat_frames(chat)][-2:] == ["second question", "second question"]

    # After an answer: Regenerate asks again; Edit question puts it back in the box.
    fake_model.script({"text": "Another answer."})
    actions.get_by_role("button", name="Regenerate").click()
    chat.finished(4)
    expect(chat.answers().last).to_contain_text("Another answer.")
    actions.get_by_role("button", name="Edit question").click()
    expect(box).to_have_value("second question")
    expect(box).to_be_focused()
    box.fill("")


def test_the_tab_focuses_the_chat_box_and_escape_returns_to_the_notebook(
    chat: LabPage, agent_lab: Any
) -> None:
    from playwright.sync_api import expect

    path = write_notebook(agent_lab.root_dir, "daily-focus.ipynb", [("c1", "y = 1")])
    chat.open_notebook(path, kernel=False)
    box = chat.chat.locator(".aiide-Composer-input")
    box.click()
    expect(box).to_be_focused()
    box.press("Escape")
    chat.page.wait_for_function(
        "() => !!document.activeElement?.closest('.jp-NotebookPanel')"
        " && window.jupyterapp.shell.currentWidget?.context?.path === 'daily-focus.ipynb'",
        timeout=10_000,
    )
    tab = chat.page.locator(".jp-SideBar.jp-mod-right .lm-TabBar-tab[data-id='aiide-chat']")
    tab.click()  # the chat was open: this closes it
    expect(box).to_be_hidden()
    tab.click()
    expect(box).to_be_visible()
    expect(box).to_be_focused()
    chat.run_command("docmanager:save-all")
