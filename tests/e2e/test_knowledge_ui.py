"""Knowledge in a real browser: `/learn` indexes a folder with the real offline model
while the chat shows a progress bar fed by Jupyter's event bus; the assistant (the fake
model, scripted to call `search_knowledge`) answers with a citation; clicking it opens
the notebook with the cited cell active. `@` in the chat box offers what the index finds."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import LabPage, widen_sidebar
from conftest import LabServer, _finish, make_lab, model_env
from knowledge.conftest import MODELS_DIR, require_model
from knowledge.corpus import write_corpus

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("aiide-agent-browser")]

LABEL = "analysis/sensors.ipynb, cell 5 (id cell-4)"
QUESTION = "Where do we clean the sensor data?"
LEARN_TIMEOUT_MS = 120_000
MENTION_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def knowledge_lab(tmp_path_factory: pytest.TempPathFactory, fake_model: Any) -> Iterator[LabServer]:
    """A lab with the agent (fake model) and the knowledge part on the real local model."""
    require_model()
    config = {"Knowledge": {"models_dir": str(MODELS_DIR), "warm_up_delay": 0.0}}
    server = make_lab(
        tmp_path_factory, env=model_env(fake_model), config=config, name="knowledge-lab"
    )
    files = write_corpus(server.root_dir)
    sensors = files["analysis/sensors.ipynb"]
    nb = json.loads(sensors.read_text())
    nb["metadata"]["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    sensors.write_text(json.dumps(nb))
    # Left out by /learn, which says which file and why.
    (server.root_dir / "analysis" / "raw.bin").write_bytes(b"\x00\x01 not text")
    try:
        yield server
    finally:
        _finish(server, "knowledge-lab.log")


@pytest.fixture
def page(
    knowledge_lab: LabServer,
    browser_context: Any,
    artifacts_dir: Path,
    request: pytest.FixtureRequest,
) -> Iterator[LabPage]:
    # A workspace per test: a layout restored from an earlier test (its open notebook)
    # would take the focus from the chat box while the test types in it.
    workspace = "knowledge-" + request.node.name.removeprefix("test_")[:40]
    lab = LabPage.open(browser_context, knowledge_lab.lab_url(workspace=workspace))
    lab.open_chat()
    widen_sidebar(lab.page)
    # What the event bus delivers to this page, to prove the bar is fed by events.
    lab.page.evaluate(
        """() => {
          window.__aiideJobEvents = [];
          window.jupyterapp.serviceManager.events.stream.connect((_, e) => {
            if (e.schema_id === 'https://events.aiide.dev/knowledge/job/v1') {
              window.__aiideJobEvents.push(e);
            }
          });
        }"""
    )
    try:
        yield lab
    finally:
        lab.close(artifacts_dir, "knowledge-ui")


def test_learn_then_a_cited_answer_opens_the_cell(
    page: LabPage, fake_model: Any, screenshot: Any
) -> None:
    from playwright.sync_api import expect

    fake_model.reset()
    page.ask("/learn analysis")
    # What it came to is said in the conversation, with the file left out and why (issue
    # 19): the progress bar's row goes then (its drawing is unit-tested).
    report = page.chat.locator(".aiide-Report")
    expect(report).to_contain_text(
        "Learned analysis (2 files): answers can now cite it. 1 file left out:",
        timeout=LEARN_TIMEOUT_MS,
    )
    left_out = report.locator("li")
    expect(left_out).to_have_count(1)
    expect(left_out).to_contain_text("analysis/raw.bin")
    expect(left_out).to_contain_text("not a text format that is indexed (.bin)")
    expect(page.chat.locator(".aiide-Learning-job")).to_have_count(0)
    expect(page.chat.locator(".aiide-Composer-hint")).to_be_hidden()
    events = page.page.evaluate("() => window.__aiideJobEvents")
    assert events and events[-1]["status"] == "done", events
    assert events[-1]["path"] == "analysis" and events[-1]["files_done"] == 2
    assert events[-1]["skipped_total"] == 1

    fake_model.script(
        {"tools": [{"name": "search_knowledge", "input": {"query": QUESTION}}]},
        {"text": f"The readings are cleaned by `drop_outliers` in [{LABEL}]."},
    )
    page.ask(QUESTION)
    page.finished()
    card = page.chat.locator(".aiide-Call").last
    expect(card.locator(".aiide-Citations a.aiide-Citation").first).to_be_visible()
    answer = page.answers().last
    inline = answer.locator(".jp-RenderedMarkdown a.aiide-Citation")
    expect(inline).to_have_count(1)
    expect(inline).to_have_text(LABEL)
    expect(inline).to_have_attribute("data-cell-id", "cell-4")
    expect(answer.locator(".aiide-Answer-sources a.aiide-Citation")).to_have_text(
        "sensors.ipynb · cell 5"
    )
    # The model was given the passage under the label it cited.
    sent = json.dumps(fake_model.requests()[-1]["body"]["messages"])
    assert f"[{LABEL}]" in sent

    inline.click()
    panel = page.page.locator(".jp-NotebookPanel:visible")
    expect(panel).to_have_count(1, timeout=30_000)
    page.page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget?.content?.activeCell?.model.id === 'cell-4'",
        timeout=30_000,
    )
    active = panel.locator(".jp-Cell.jp-mod-active")
    expect(active).to_contain_text("def drop_outliers")
    expect(active).to_be_in_viewport()
    screenshot(page.page, "knowledge-citations")
    page.check()


def learn(server: LabServer, path: str) -> None:
    """Indexes ``path`` through the REST API and waits for its job to finish (as /learn
    does): the test then types against a finished index, not a job still running."""
    job = server.request("aiide/api/knowledge/index", "POST", {"path": path})
    deadline = time.monotonic() + LEARN_TIMEOUT_MS / 1000
    while job["status"] not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.2)
        job = server.request(f"aiide/api/knowledge/jobs/{job['id']}")
    assert job["status"] == "done", job


def test_at_mentions_offer_what_the_index_finds(
    page: LabPage, knowledge_lab: LabServer, fake_model: Any
) -> None:
    from playwright.sync_api import expect

    # This test's own index, finished, and answering the word typed below.
    learn(knowledge_lab, "analysis")
    hits = knowledge_lab.request("aiide/api/knowledge/search?q=outliers&k=5")["results"]
    assert any(h["cell_id"] == "cell-4" for h in hits), hits

    page.new_chat()
    box = page.chat.locator(".aiide-Composer-input")
    expect(page.chat.locator(".aiide-Connection")).to_have_attribute(
        "data-state", "open", timeout=30_000
    )
    page.settle()
    # Who takes the focus from here on, for the failure message.
    page.page.evaluate(
        """() => {
          window.__aiideFocus = [];
          document.addEventListener('focusin', e => window.__aiideFocus.push(
            `${e.target.tagName}.${e.target.className}`));
        }"""
    )
    box.click()
    expect(box).to_be_focused()
    box.press_sequentially("Explain @outliers")
    popup = page.chat.locator(".aiide-Popup")
    found = popup.locator("[role=option]", has_text="sensors.ipynb · cell 5")
    try:
        expect(found).to_be_visible(timeout=MENTION_TIMEOUT_MS)
    except AssertionError as e:
        focus = page.page.evaluate("() => window.__aiideFocus")
        options = popup.locator("[role=option]").all_inner_texts()
        raise AssertionError(f"{e}\nfocus moved to: {focus}\npopup: {options}") from e
    found.click()
    expect(box).to_have_value("Explain @analysis/sensors.ipynb#cell-4 ")
    expect(box).to_be_focused()
    fake_model.reset()
    fake_model.script({"text": "It drops readings far from the mean."})
    box.press("Enter")
    page.finished()
    frame = [f for f in page.sent if f.get("type") == "chat"][-1]
    assert frame["context"]["mentions"] == [
        {"kind": "cell", "path": "analysis/sensors.ipynb", "cell_id": "cell-4"}
    ]
    page.check()


def test_a_function_found_after_at_is_sent_as_its_lines_once(
    page: LabPage, knowledge_lab: LabServer, fake_model: Any
) -> None:
    """Picking a symbol the index found sends that function's lines, not its whole file,
    and the index's own passages do not send it a second time (issue 19, finding 7)."""
    from playwright.sync_api import expect

    learn(knowledge_lab, "lib")
    page.new_chat()
    page.settle()
    box = page.chat.locator(".aiide-Composer-input")
    box.click()
    box.press_sequentially("Why does @reminder")
    found = page.chat.locator(".aiide-Popup [role=option]", has_text="lib/billing.py:")
    expect(found.first).to_be_visible(timeout=MENTION_TIMEOUT_MS)
    found.first.dispatch_event("mousedown")  # the popup picks on mousedown
    value = box.input_value()
    assert "@lib/billing.py:" in value, value
    box.press_sequentially("fail?")
    fake_model.reset()
    fake_model.script({"text": "The mailer is not imported."})
    box.press("Enter")
    page.finished()
    frame = [f for f in page.sent if f.get("type") == "chat"][-1]
    [mention] = frame["context"]["mentions"]
    assert mention["kind"] == "file" and mention["path"] == "lib/billing.py", mention
    start, end = mention["lines"]
    prompt = "\n".join(
        block.get("text", "") if isinstance(block, dict) else str(block)
        for message in fake_model.requests()[-1]["body"]["messages"]
        for block in (
            message["content"] if isinstance(message["content"], list) else [message["content"]]
        )
    )
    passage = prompt.split(f'<file path="lib/billing.py" lines="{start}-{end}">', 1)[1]
    passage = passage.split("</file>", 1)[0]
    assert "def send_reminder_email" in passage
    assert '"""Invoices and reminders."""' not in passage  # not the whole file
    assert prompt.count("def send_reminder_email") == 1  # and not again from the index
    page.check()
