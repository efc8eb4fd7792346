"""Conversations in the sidebar, kept on the server: a rename survives a reload of the
page (with the workspace reset), search finds a word of an answer, and "Export as
notebook" downloads the conversation with its code blocks as code cells."""

from __future__ import annotations

from typing import Any

import nbformat
import pytest
from browser_support import LabPage

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("aiide-agent-browser")]

FIRST = (
    "Read it with pandas:\n\n```python\nimport pandas as pd\ndf = pd.read_csv('prices.csv')\n```\n"
)
SECOND = "Then plot it (zebrafish colours optional):\n\n```python\ndf.price.plot()\n```\n\nDone."


def test_rename_search_and_export_as_a_notebook(
    chat: LabPage, fake_model: Any, screenshot: Any, tmp_path: Any
) -> None:
    from playwright.sync_api import expect

    fake_model.script({"text": FIRST})
    chat.ask("How do I load prices.csv?")
    chat.finished()
    fake_model.script({"text": SECOND})
    chat.ask("And plot the price?")
    chat.finished(2)

    toggle = chat.chat.locator(".aiide-Header-toggle")
    toggle.click()
    listing = chat.chat.locator(".aiide-Conversations")
    items = listing.locator(".aiide-Conversations-item")
    mine = items.filter(has_text="How do I load prices.csv?")
    mine.get_by_role("button", name="Rename", exact=True).click()
    chat.page.locator(".jp-Dialog input").fill("  Price analysis  ")
    chat.page.locator(".jp-Dialog").get_by_role("button", name="Rename").click()
    expect(items.filter(has_text="Price analysis")).to_have_count(1)

    # The workspace is reset on reload (?reset): the title can only come from the server.
    chat.page.reload(wait_until="domcontentloaded")
    chat.page.locator("#jp-main-statusbar").wait_for()
    chat.open_chat()
    if not listing.is_visible():
        toggle.click()
    expect(items.filter(has_text="Price analysis")).to_have_count(1, timeout=15_000)

    # A word only the second answer has: the server searched the stored text.
    listing.locator(".aiide-Conversations-search").fill("zebrafish")
    expect(items).to_have_count(1)
    expect(items.first.locator(".aiide-Conversations-title")).to_have_text("Price analysis")
    expect(items.first.locator(".aiide-Conversations-snippet")).to_contain_text("zebrafish")
    screenshot(chat.chat, "chat-conversation-search-export")

    with chat.page.expect_download() as download:
        items.first.get_by_role("button", name="Export as notebook").click()
    assert download.value.suggested_filename == "Price analysis.ipynb"
    path = tmp_path / "export.ipynb"
    download.value.save_as(str(path))
    nb = nbformat.read(str(path), as_version=4)  # type: ignore[no-untyped-call]
    nbformat.validate(nb)
    cells = [(c.cell_type, c.source) for c in nb.cells]
    assert cells == [
        ("markdown", "# Price analysis"),
        ("markdown", "**Question**\n\n> How do I load prices.csv?"),
        ("markdown", "Read it with pandas:"),
        ("code", "import pandas as pd\ndf = pd.read_csv('prices.csv')"),
        ("markdown", "**Question**\n\n> And plot the price?"),
        ("markdown", "Then plot it (zebrafish colours optional):"),
        ("code", "df.price.plot()"),
        ("markdown", "Done."),
    ]
    listing.locator(".aiide-Conversations-search").fill("")
    toggle.click()
