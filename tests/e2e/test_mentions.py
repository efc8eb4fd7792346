"""@ mentions of what a data scientist mentions most (issue 19, finding 7): a data file by
its path, summarised for the model rather than sent whole, and a folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from browser_support import LabPage

pytestmark = [
    pytest.mark.browser,
    pytest.mark.xdist_group("aiide-agent-browser"),
]


@pytest.fixture(scope="module", autouse=True)
def workspace_files(agent_lab: Any) -> None:
    """Made before the chat lists any folder (listings are cached for a few seconds)."""
    root = Path(agent_lab.root_dir)
    (root / "data").mkdir(exist_ok=True)
    rows = [f"s{i},{i % 100},2026-11-{1 + i % 28:02d}" for i in range(3000)]
    (root / "data" / "scores.csv").write_text("student,score,date\n" + "\n".join(rows) + "\n")
    (root / "results").mkdir(exist_ok=True)
    (root / "results" / "run1.json").write_text("{}")


def test_a_data_file_is_mentioned_by_its_path_and_summarised(
    chat: LabPage, agent_lab: Any, fake_model: Any, screenshot: Any
) -> None:
    from playwright.sync_api import expect

    box = chat.chat.locator(".aiide-Composer-input")
    box.click()
    box.press_sequentially("Which student scored best in @data/sc")
    option = chat.chat.locator(".aiide-Popup [role=option]", has_text="scores.csv")
    expect(option).to_be_visible(timeout=30_000)
    screenshot(chat.chat, "chat-mention-data-file")
    option.dispatch_event("mousedown")  # the popup picks on mousedown (focus stays in the box)
    expect(box).to_have_value("Which student scored best in @data/scores.csv ")
    fake_model.script({"text": "Read it with pandas."})
    box.press("Enter")
    chat.finished()
    frame = [f for f in chat.sent if f.get("type") == "chat"][-1]
    assert frame["context"]["mentions"] == [{"kind": "file", "path": "data/scores.csv"}]
    prompt = json.dumps(fake_model.requests()[-1]["body"]["messages"])
    assert "3000 rows x 3 columns" in prompt
    assert "score (int)" in prompt and "date (date)" in prompt
    assert "s2999" not in prompt  # the rows themselves stay in the file


def test_a_folder_is_offered_and_sends_its_names(
    chat: LabPage, agent_lab: Any, fake_model: Any
) -> None:
    from playwright.sync_api import expect

    box = chat.chat.locator(".aiide-Composer-input")
    box.click()
    # (A bare "@" lists a handful of entries: the shared lab's root holds other tests' files;
    # that it offers folders at all is unit-tested in mentionSource.test.ts.)
    box.press_sequentially("What is in @res")
    option = chat.chat.locator(".aiide-Popup [role=option]", has_text="results/")
    # "res" is also searched in the index: the first search in a lab loads its model.
    expect(option).to_be_visible(timeout=60_000)
    option.dispatch_event("mousedown")  # the popup picks on mousedown (focus stays in the box)
    expect(box).to_have_value("What is in @results/ ")
    fake_model.script({"text": "One run."})
    box.press("Enter")
    chat.finished()
    frame = [f for f in chat.sent if f.get("type") == "chat"][-1]
    assert frame["context"]["mentions"] == [{"kind": "folder", "path": "results"}]
    prompt = json.dumps(fake_model.requests()[-1]["body"]["messages"])
    assert '<folder path=\\"results\\">\\nrun1.json' in prompt


def test_a_python_file_in_the_editor_is_the_questions_context(
    chat: LabPage, agent_lab: Any, fake_model: Any
) -> None:
    """With a `.py` file focused in the editor, a question carries that file around the
    cursor, not the last notebook (issue 19, finding 7)."""
    from playwright.sync_api import expect

    root = Path(agent_lab.root_dir)
    (root / "etl.py").write_text(
        "import pandas as pd\n\n\ndef load(path):\n    return pd.read_csv(path)\n"
    )
    chat.run_command("docmanager:open", {"path": "etl.py", "factory": "Editor"})
    line = chat.page.locator(".jp-FileEditor .cm-line", has_text="def load(path):")
    line.click()
    expect(chat.chat.locator(".aiide-Composer-context")).to_contain_text(
        "Context: etl.py · line 4", timeout=15_000
    )
    fake_model.script({"text": "It reads a CSV."})
    chat.ask("What does load do?")
    chat.finished()
    frame = [f for f in chat.sent if f.get("type") == "chat"][-1]
    assert frame["context"]["file"] == "etl.py" and frame["context"]["line"] == 4, frame
    assert "notebook" not in frame["context"]
    prompt = json.dumps(fake_model.requests()[-1]["body"]["messages"])
    assert '<open_file path=\\"etl.py\\" line=\\"4\\"' in prompt
    assert "def load(path):" in prompt
